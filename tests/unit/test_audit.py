"""Tests for taskward.audit: detection, scopes, kept/discarded, scan_paths, --fix and the CLI."""

from __future__ import annotations

import ast
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from taskward.audit import DEFAULT_SKIP_DIRS, Finding, fix_source, main, scan_paths, scan_source

TREE = Path(__file__).resolve().parent.parent / "fixtures" / "audit_tree"


def scan(code: str) -> list[Finding]:
    return scan_source(textwrap.dedent(code))


def calls(code: str) -> list[str]:
    return [finding.call for finding in scan(code)]


# --- what counts as a task call -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import asyncio\nasyncio.create_task(c())", "asyncio.create_task"),
        ("import asyncio\nasyncio.ensure_future(c())", "asyncio.ensure_future"),
        ("loop.create_task(c())", "loop.create_task"),
        ("self.loop.create_task(c())", "self.loop.create_task"),
        ("asyncio.get_running_loop().create_task(c())", "asyncio.get_running_loop().create_task"),
        ("import asyncio as aio\naio.create_task(c())", "aio.create_task"),
        ("import asyncio as aio\naio.ensure_future(c())", "aio.ensure_future"),
        ("from asyncio import create_task\ncreate_task(c())", "create_task"),
        ("from asyncio import create_task as ct\nct(c())", "ct"),
        ("from asyncio import ensure_future\nensure_future(c())", "ensure_future"),
        ("from asyncio import ensure_future as ef\nef(c())", "ef"),
        ("from asyncio import *\nensure_future(c())", "ensure_future"),
        ("import asyncio.tasks\nasyncio.tasks.ensure_future(c())", "asyncio.tasks.ensure_future"),
        ("from asyncio import tasks\ntasks.ensure_future(c())", "tasks.ensure_future"),
        ("import asyncio.tasks as t\nt.ensure_future(c())", "t.ensure_future"),
    ],
)
def test_reports_each_call_form(code: str, expected: str) -> None:
    assert calls(code) == [expected]


@pytest.mark.parametrize(
    "code",
    [
        "create_task(c())",  # not imported from asyncio
        "ensure_future(c())",
        "loop.ensure_future(c())",  # only asyncio's module-level ensure_future exists
        "from taskward.aio import safe_create_task\nsafe_create_task(c(), name='x')",
        "import taskward.aio\ntaskward.aio.safe_create_task(c())",
        "from other import create_task\ncreate_task(c())",
        "import trio as asyncio\nasyncio.ensure_future(c())",
        "asyncio.sleep(1)",
    ],
)
def test_ignores_other_calls(code: str) -> None:
    assert calls(code) == []


def test_import_later_in_module_still_counts() -> None:
    code = """
        def start():
            aio.ensure_future(c())

        import asyncio as aio
    """
    assert calls(code) == ["aio.ensure_future"]


# --- TaskGroup calls are supervised -------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        """
        import asyncio
        async def f():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(c())
        """,
        """
        import asyncio as aio
        async def f():
            async with aio.TaskGroup() as tg, other() as x:
                tg.create_task(c())
        """,
        """
        from asyncio import TaskGroup as TG
        async def f():
            async with TG() as group:
                group.create_task(c())
                group.create_task(d())
        """,
        """
        from asyncio import TaskGroup
        async def f():
            tg = TaskGroup()
            async with tg:
                tg.create_task(c())
        """,
        """
        import asyncio
        async def spawn(tg: asyncio.TaskGroup, *, other: asyncio.TaskGroup):
            tg.create_task(c())
            other.create_task(c())
        """,
        """
        import asyncio
        class Service:
            async def __aenter__(self):
                self._tg = asyncio.TaskGroup()
            async def spawn(self):
                self._tg.create_task(c())
        """,
        """
        import asyncio
        class Service:
            def __init__(self):
                self._tg: asyncio.TaskGroup | None = None
            def spawn(self):
                self._tg.create_task(c())
        """,
        """
        import asyncio
        async def f():
            async with asyncio.TaskGroup() as tg:
                def helper():
                    tg.create_task(c())
        """,
        "import asyncio\nasyncio.TaskGroup().create_task(c())",
        """
        from taskward.aio import TaskSupervisor
        async def f():
            async with TaskSupervisor() as sup:
                sup.create_task(c())
        """,
        "import taskward.aio as aio\naio.get_default_supervisor().create_task(c())",
    ],
)
def test_taskgroup_calls_are_not_reported(code: str) -> None:
    assert calls(code) == []


def test_taskgroup_name_is_scoped_to_its_function() -> None:
    code = """
        import asyncio
        async def supervised():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(c())
        async def unsupervised(tg):
            tg.create_task(c())
    """
    assert [(f.call, f.function) for f in scan(code)] == [("tg.create_task", "unsupervised")]


def test_taskgroup_in_scope_does_not_hide_other_receivers() -> None:
    code = """
        import asyncio
        async def f(loop):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(c())
                loop.create_task(c())
    """
    assert calls(code) == ["loop.create_task"]


# --- kept or discarded --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "kept"),
    [
        ("asyncio.create_task(c())", False),
        ("_ = asyncio.create_task(c())", False),
        ("task = asyncio.create_task(c())", True),
        ("task: asyncio.Task = asyncio.create_task(c())", True),
        ("self.task = asyncio.create_task(c())", True),
        ("tasks[0] = asyncio.create_task(c())", True),
        ("tasks.add(asyncio.create_task(c()))", True),
        ("tasks.append(asyncio.create_task(c()))", True),
        ("return asyncio.create_task(c())", True),
        ("await asyncio.create_task(c())", True),
        ("keep([asyncio.create_task(c())])", True),
        ("asyncio.create_task(c()).add_done_callback(done)", True),
        ("x = [asyncio.create_task(c()) for c in coros]", True),
    ],
)
def test_kept_or_discarded(statement: str, kept: bool) -> None:
    code = f"import asyncio\nasync def f(self, tasks):\n    {statement}\n"
    [finding] = scan_source(code)
    assert finding.kept is kept


# --- enclosing function names -------------------------------------------------------------


def test_enclosing_function_names() -> None:
    code = """
        import asyncio
        asyncio.ensure_future(c())

        class Service:
            task = asyncio.ensure_future(c())

            async def start(self):
                asyncio.ensure_future(c())

                def inner():
                    asyncio.ensure_future(c())

            class Nested:
                def method(self):
                    asyncio.ensure_future(c())

        async def outer():
            async def inner():
                asyncio.ensure_future(c())
            callback = lambda: asyncio.ensure_future(c())

        @decorate(asyncio.ensure_future(c()))
        def decorated(arg=asyncio.ensure_future(c())):
            pass
    """
    assert [f.function for f in scan(code)] == [
        "<module>",
        "Service",
        "Service.start",
        "Service.start.inner",
        "Service.Nested.method",
        "outer.inner",
        "outer.<lambda>",
        "<module>",  # decorators and defaults run in the enclosing scope
        "<module>",
    ]


# --- positions and parsing ----------------------------------------------------------------


def test_positions_are_one_based_character_columns() -> None:
    code = 'import asyncio\nasync def f():\n    s = "é"; asyncio.ensure_future(c())\n'
    [finding] = scan_source(code, "pkg/mod.py")
    assert (finding.path, finding.line, finding.col) == ("pkg/mod.py", 3, 14)


def test_findings_are_in_source_order() -> None:
    # ast visits positional arguments before keywords, whatever their order in the source.
    code = "from asyncio import ensure_future as ef\nf(k=ef(a()), *[ef(b())])\n"
    assert [(f.line, f.col) for f in scan_source(code)] == [(2, 5), (2, 16)]


def test_syntax_error_is_raised() -> None:
    with pytest.raises(SyntaxError):
        scan_source("def f(:\n")


def test_warnings_in_scanned_code_are_not_raised() -> None:
    # filterwarnings=error would turn the invalid escape sequence's warning into an exception.
    assert calls('import asyncio\ns = "\\d"\nasyncio.ensure_future(c())\n') == [
        "asyncio.ensure_future"
    ]


def test_finding_to_dict() -> None:
    [finding] = scan_source("loop.create_task(c())", "a.py")
    assert finding.to_dict() == {
        "path": "a.py",
        "line": 1,
        "col": 1,
        "call": "loop.create_task",
        "function": "<module>",
        "kept": False,
    }


# --- scan_paths on the fixture tree -------------------------------------------------------


def relative(path: str) -> str:
    return Path(path).relative_to(TREE).as_posix()


FIXTURE_FINDINGS = [
    ("legacy/spawn_legacy.py", 7, 12, "schedule", "kick", True),
    ("spawn_aliases.py", 13, 5, "ct", "start", False),
    ("spawn_aliases.py", 14, 13, "aio.create_task", "start", True),
    ("spawn_aliases.py", 15, 5, "ensure_future", "start", False),
    ("spawn_service.py", 6, 14, "loop.create_task", "<module>", True),
    ("spawn_service.py", 15, 9, "self._loop.create_task", "Poller.start", False),
    ("spawn_service.py", 16, 25, "self._loop.create_task", "Poller.start", True),
    ("spawn_service.py", 20, 13, "asyncio.ensure_future", "Poller.poll.schedule", False),
]


def test_scan_paths_on_fixture_tree() -> None:
    report = scan_paths([TREE])
    found = [(relative(f.path), f.line, f.col, f.call, f.function, f.kept) for f in report.findings]
    assert found == FIXTURE_FINDINGS
    assert [(relative(e.path), e.message) for e in report.errors] == [
        ("spawn_broken.py", "syntax error: invalid syntax (line 6)")
    ]
    # legacy, aliases, service, clean and broken; node_modules is never entered.
    assert report.files_scanned == 5


def test_scan_paths_accepts_files_and_strings() -> None:
    report = scan_paths([str(TREE / "spawn_aliases.py"), TREE / "spawn_clean.py"])
    assert [f.line for f in report.findings] == [13, 14, 15]
    assert report.errors == ()
    assert report.files_scanned == 2


def test_scan_paths_clean_file() -> None:
    report = scan_paths([TREE / "spawn_clean.py"])
    assert (report.findings, report.errors, report.files_scanned) == ((), (), 1)


def test_named_skipped_directory_is_scanned() -> None:
    report = scan_paths([TREE / "node_modules"])
    assert [f.call for f in report.findings] == ["asyncio.ensure_future"]


@pytest.mark.parametrize("glob", ["legacy", "legacy/*", "spawn_legacy.py", "*legacy*"])
def test_exclude_globs(glob: str) -> None:
    report = scan_paths([TREE], exclude=[glob])
    assert all("legacy" not in f.path for f in report.findings)
    assert len(report.findings) == len(FIXTURE_FINDINGS) - 1
    assert report.files_scanned == 4


def test_exclude_applies_to_named_files() -> None:
    report = scan_paths([TREE / "spawn_broken.py"], exclude=["spawn_broken.py"])
    assert (report.findings, report.errors, report.files_scanned) == ((), (), 0)


def test_default_skip_dirs(tmp_path: Path) -> None:
    for name in sorted(DEFAULT_SKIP_DIRS):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mod.py").write_text("loop.create_task(c())\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("loop.create_task(c())\n")
    (tmp_path / "pkg" / "notes.txt").write_text("loop.create_task(c())\n")
    report = scan_paths([tmp_path])
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in report.findings] == [
        "pkg/mod.py"
    ]


def test_unreadable_paths_are_errors(tmp_path: Path) -> None:
    (tmp_path / "cookie.py").write_bytes(b"x = '\xe9'\n")
    (tmp_path / "body.py").write_bytes(b"import asyncio\n\nx = '\xe9'\n")
    (tmp_path / "nul.py").write_bytes(b"x = 1\0\n")
    paths = [tmp_path / name for name in ("missing.py", "cookie.py", "body.py", "nul.py")]
    report = scan_paths(paths)
    messages = {Path(e.path).name: e.message for e in report.errors}
    assert messages["missing.py"] == "no such file or directory"
    assert messages["cookie.py"] == "syntax error: invalid or missing encoding declaration"
    assert "can't decode byte 0xe9" in messages["body.py"]
    assert "null bytes" in messages["nul.py"]
    assert report.files_scanned == 3
    assert report.findings == ()


def test_encoding_cookie_is_honoured(tmp_path: Path) -> None:
    source = "# -*- coding: latin-1 -*-\nx = 'é'; loop.create_task(c())\n"
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    [finding] = scan_paths([tmp_path]).findings
    assert (finding.line, finding.col) == (2, 10)


# --- fix_source ---------------------------------------------------------------------------


def assert_fixed(source: str) -> None:
    ast.parse(source)
    assert scan_source(source) == []
    assert source.count("from taskward.aio import safe_create_task") == 1


def test_fix_rewrites_each_form_and_names_the_function() -> None:
    source = textwrap.dedent(
        '''\
        """Module docstring."""

        from __future__ import annotations

        import asyncio
        import asyncio as aio
        from asyncio import create_task as ct, ensure_future


        class Service:
            def start(self, loop):
                loop.create_task(self.run())  # keep this comment
                self.task = aio.create_task(self.run(), name="runner", context=None)

            async def run(self):
                ct(work())
                return ensure_future(
                    work(),
                )


        asyncio.ensure_future(work())
        '''
    )
    fixed, count = fix_source(source)
    assert count == 5
    assert fixed == textwrap.dedent(
        '''\
        """Module docstring."""

        from __future__ import annotations

        from taskward.aio import safe_create_task
        import asyncio
        import asyncio as aio
        from asyncio import create_task as ct, ensure_future


        class Service:
            def start(self, loop):
                safe_create_task(self.run(), name="Service.start")  # keep this comment
                self.task = safe_create_task(self.run(), name="runner")

            async def run(self):
                safe_create_task(work(), name="Service.run")
                return safe_create_task(work(), name="Service.run")


        safe_create_task(work(), name="<module>")
        '''
    )
    assert_fixed(fixed)


def test_fix_nested_calls() -> None:
    source = "import asyncio\nasyncio.ensure_future(wrap(asyncio.ensure_future(c())))\n"
    fixed, count = fix_source(source)
    assert count == 2
    assert fixed.endswith(
        'safe_create_task(wrap(safe_create_task(c(), name="<module>")), name="<module>")\n'
    )
    assert_fixed(fixed)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (  # no docstring: before the first statement, after leading comments
            "#!/usr/bin/env python\n# licence\nimport asyncio\nasyncio.ensure_future(c())\n",
            "#!/usr/bin/env python\n# licence\nfrom taskward.aio import safe_create_task\n"
            'import asyncio\nsafe_create_task(c(), name="<module>")\n',
        ),
        (  # docstring directly followed by code
            '"""Doc."""\nloop.create_task(c())\n',
            '"""Doc."""\nfrom taskward.aio import safe_create_task\n'
            'safe_create_task(c(), name="<module>")\n',
        ),
        (  # decorated first statement: above its decorators
            "@dec\ndef f(loop):\n    loop.create_task(c())\n",
            "from taskward.aio import safe_create_task\n@dec\ndef f(loop):\n"
            '    safe_create_task(c(), name="f")\n',
        ),
        (  # already imported: nothing added
            "from taskward.aio import safe_create_task\nloop.create_task(c())\n",
            'from taskward.aio import safe_create_task\nsafe_create_task(c(), name="<module>")\n',
        ),
        (  # CRLF line endings are kept
            '"""Doc."""\r\n\r\nimport asyncio\r\nasyncio.ensure_future(c())\r\n',
            '"""Doc."""\r\n\r\nfrom taskward.aio import safe_create_task\r\n'
            'import asyncio\r\nsafe_create_task(c(), name="<module>")\r\n',
        ),
    ],
)
def test_fix_import_placement(source: str, expected: str) -> None:
    fixed, count = fix_source(source)
    assert (fixed, count) == (expected, 1)


def test_fix_is_idempotent() -> None:
    fixed, _ = fix_source("import asyncio\nasyncio.ensure_future(c())\n")
    assert fix_source(fixed) == (fixed, 0)


def test_fix_leaves_calls_without_positional_coroutine() -> None:
    source = "loop.create_task(coro=c())\nloop.create_task(*args)\n"
    assert fix_source(source) == (source, 0)


def test_fix_leaves_clean_source_alone() -> None:
    source = '"""Doc."""\nimport asyncio\n'
    assert fix_source(source) == (source, 0)


def test_fix_raises_on_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        fix_source("def f(:\n")


# --- the CLI ------------------------------------------------------------------------------


def test_main_clean_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(TREE / "spawn_clean.py")]) == 0
    out, err = capsys.readouterr()
    assert out == "No unsupervised tasks found; scanned 1 file.\n"
    assert err == ""


def test_main_findings_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = TREE / "spawn_aliases.py"
    assert main([str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{path}:13:5: ct in start (task discarded)",
        f"{path}:14:13: aio.create_task in start (task kept)",
        f"{path}:15:5: ensure_future in start (task discarded)",
        "Found 3 unsupervised tasks (2 discarded) in 1 file; scanned 1 file.",
    ]
    assert err == ""


def test_main_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(TREE), "--format", "json", "--exclude", "spawn_broken.py"]) == 1
    out, err = capsys.readouterr()
    rows = json.loads(out)
    found = [
        (relative(r["path"]), r["line"], r["col"], r["call"], r["function"], r["kept"])
        for r in rows
    ]
    assert found == FIXTURE_FINDINGS
    assert err == ""


def test_main_unparseable_exits_2_even_with_findings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(TREE), "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == len(FIXTURE_FINDINGS)
    assert err == f"{TREE / 'spawn_broken.py'}: error: syntax error: invalid syntax (line 6)\n"


def test_main_missing_path_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    assert main([str(missing)]) == 2
    out, err = capsys.readouterr()
    assert err == f"{missing}: error: no such file or directory\n"
    assert out.endswith("1 path could not be scanned.\n")


@pytest.mark.parametrize("argv", [[], ["--format", "xml", "a.py"], ["--bogus", "a.py"]])
def test_main_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: taskward audit" in capsys.readouterr().err


def test_main_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "usage: taskward audit" in capsys.readouterr().out


def test_main_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "spawn_aliases.py"
    shutil.copy(TREE / "spawn_aliases.py", target)
    original = target.read_text()

    assert main([str(tmp_path), "--fix"]) == 0

    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{target}: rewrote 3 calls to safe_create_task",
        "No unsupervised tasks found; scanned 1 file.",
    ]
    assert err == ""
    fixed = target.read_text()
    assert fixed != original
    assert_fixed(fixed)
    assert fixed.startswith(
        '"""Audit fixture: task calls reached through import aliases."""\n\n'
        "from taskward.aio import safe_create_task\nimport asyncio as aio\n"
    )
    assert scan_paths([target]).findings == ()
    # A second run finds nothing to rewrite and leaves the file alone.
    assert main([str(target), "--fix"]) == 0
    assert target.read_text() == fixed


def test_main_fix_json_keeps_stdout_parseable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "mod.py"
    target.write_text("loop.create_task(c())\nloop.create_task(coro=c())\n")
    assert main([str(target), "--fix", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    [remaining] = json.loads(out)
    assert (remaining["line"], remaining["kept"]) == (3, False)  # below the added import
    assert err == f"{target}: rewrote 1 call to safe_create_task\n"


def test_main_fix_reports_broken_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(TREE / "spawn_broken.py", tmp_path / "spawn_broken.py")
    shutil.copy(TREE / "spawn_service.py", tmp_path / "spawn_service.py")
    assert main([str(tmp_path), "--fix"]) == 2
    out, err = capsys.readouterr()
    assert "spawn_service.py: rewrote 4 calls to safe_create_task" in out
    assert "spawn_broken.py: error: syntax error" in err
    assert scan_paths([tmp_path / "spawn_service.py"]).findings == ()
