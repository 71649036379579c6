"""Tests for ``taskward audit --fix`` and ``--diff``: what is rewritten, what never is, where the
import goes, and round trips that run small programs before and after the fix."""

from __future__ import annotations

import difflib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskward.audit import Kind, fix_source, main, scan_source

PROGRAMS = Path(__file__).resolve().parent.parent / "fixtures" / "audit_programs"
IMPORT = "from taskward.aio import safe_create_task"


def fixed(code: str) -> tuple[str, int]:
    return fix_source(textwrap.dedent(code))


def body_fixed(body: str, header: str = "import asyncio\n\n\n") -> str:
    """Fix ``body`` inside ``async def f(loop, cb)`` and return the rewritten body lines."""
    source = header + "async def f(loop, cb):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    result, _ = fix_source(source)
    return result.split("async def f(loop, cb):\n", 1)[1]


# --- what is rewritten -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("asyncio.create_task(c())", "safe_create_task(c())"),
        ("asyncio.get_running_loop().create_task(c())", "safe_create_task(c())"),
        ("loop.create_task(c())", "safe_create_task(c())"),
        ("asyncio.Task(c())", "safe_create_task(c())"),
        ("asyncio.ensure_future(asyncio.sleep(1))", "safe_create_task(asyncio.sleep(1))"),
        ('asyncio.create_task(c(), name="job")', 'safe_create_task(c(), name="job")'),
        ("asyncio.create_task(coro=c())", "safe_create_task(coro=c())"),
        (
            "asyncio.ensure_future(coro_or_future=asyncio.sleep(1))",
            "safe_create_task(coro=asyncio.sleep(1))",
        ),
        ("_ = asyncio.create_task(c())", "_ = safe_create_task(c())"),
        (
            "asyncio.create_task(  # keep this\n    c(),\n)",
            "safe_create_task(  # keep this\n    c(),\n)",
        ),
    ],
)
def test_rewrites_dangling_statement_calls(call: str, expected: str) -> None:
    assert body_fixed(call + "\n") == textwrap.indent(expected, "    ") + "\n"


def test_rewrites_aliases_and_local_coroutines() -> None:
    source = textwrap.dedent(
        """\
        import asyncio

        spawn = asyncio.ensure_future


        async def work():
            pass


        class Service:
            async def run(self):
                spawn(work())
                asyncio.ensure_future(self.poll())

            async def poll(self):
                pass
        """
    )
    result, count = fix_source(source)
    assert count == 2
    assert "        safe_create_task(work())\n        safe_create_task(self.poll())\n" in result


def test_rewrites_loop_callbacks_and_helpers_of_async_code() -> None:
    source = textwrap.dedent(
        """\
        import asyncio
        from functools import partial


        def on_done(task):
            asyncio.create_task(c())


        def later(arg):
            asyncio.create_task(c())


        def helper():
            asyncio.create_task(c())


        async def main(loop):
            task = asyncio.create_task(c())
            task.add_done_callback(on_done)
            loop.call_later(1, partial(later, 1))
            helper()
            await task
        """
    )
    result, count = fix_source(source)
    assert count == 3
    assert result.count("    safe_create_task(c())\n") == 3


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("t = asyncio.create_task(c())\nawait t\n", "not dangling"),
        ("await asyncio.create_task(c())\n", "not dangling"),
        ("tasks = [asyncio.create_task(c())]\nawait asyncio.gather(*tasks)\n", "not dangling"),
        ("self.t = asyncio.create_task(c())\n", "not dangling"),  # unsupervised: kept
        ("asyncio.create_task(c()).add_done_callback(cb)\n", "not a statement of its own"),
        ("_ = t = asyncio.create_task(c())\n", "not a statement of its own"),
        ("asyncio.create_task(c()) if cb else None\n", "not a statement of its own"),
        ("asyncio.create_task(c(), context=ctx)\n", "passes context=, which"),
        ("asyncio.ensure_future(c(), loop=loop)\n", "passes loop=, which"),
        ("asyncio.create_task(c(), **options)\n", "passes **kwargs"),
        ("asyncio.create_task(*args)\n", "its arguments are not one coroutine"),
        ("asyncio.create_task(coro)\n", "its coroutine is not a call expression"),
        ("asyncio.ensure_future(loop.run_in_executor(None, f))\n", "not known to be a coroutine"),
        ("asyncio.ensure_future(make())\n", "not known to be a coroutine"),
        ("asyncio.ensure_future(existing)\n", "its coroutine is not a call expression"),
    ],
)
def test_leaves_alone(source: str, why: str) -> None:
    code = "import asyncio\n\n\nasync def f(self, loop, cb, ctx, options, args, coro, existing):\n"
    code += textwrap.indent(source, "    ")
    assert fix_source(code) == (code, 0)
    findings = scan_source(code)
    assert not any(f.fixable for f in findings)
    if why != "not dangling":
        assert findings[0].kind is Kind.DANGLING


@pytest.mark.parametrize(
    "source",
    [
        # Before any loop runs: safe_create_task would raise RuntimeError.
        "import asyncio\nloop = asyncio.new_event_loop()\nloop.create_task(c())\n",
        "import asyncio\n\n\ndef start(loop):\n    loop.create_task(c())\n",
        # Called from module level, so not known to run on a loop.
        "import asyncio\n\n\ndef helper():\n    asyncio.create_task(c())\n\n\nhelper()\n",
        # A lambda's body is not a statement.
        "import asyncio\n\n\nasync def f(loop):\n"
        "    loop.call_soon(lambda: asyncio.create_task(c()))\n",
        # safe_create_task names something else here.
        "import asyncio\n\n\nasync def f(safe_create_task):\n    asyncio.create_task(c())\n",
    ],
)
def test_leaves_alone_outside_a_running_loop(source: str) -> None:
    assert fix_source(source) == (source, 0)


def test_fixable_flag_matches_what_fix_source_rewrites() -> None:
    source = (PROGRAMS / "loop_callbacks.py").read_text()
    fixable = [f.line for f in scan_source(source) if f.fixable]
    result, count = fix_source(source)
    assert count == len(fixable) == 3
    matcher = difflib.SequenceMatcher(a=source.splitlines(), b=result.splitlines())
    changed = [
        line + 1
        for tag, start, end, _, _ in matcher.get_opcodes()
        if tag == "replace"
        for line in range(start, end)
    ]
    assert changed == fixable


def test_fix_is_idempotent_and_leaves_nothing_dangling_that_it_could_fix() -> None:
    result, count = fixed(
        """\
        import asyncio


        async def f():
            asyncio.create_task(c())
        """
    )
    assert count == 1
    assert fix_source(result) == (result, 0)
    assert scan_source(result) == []  # safe_create_task is not a task start


def test_fix_raises_on_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        fix_source("def f(:\n")


def test_fix_leaves_clean_source_alone() -> None:
    source = '"""Doc."""\nimport asyncio\n'
    assert fix_source(source) == (source, 0)


def test_crlf_line_endings_are_kept() -> None:
    source = (
        '"""Doc."""\r\n\r\nimport asyncio\r\n\r\n\r\n'
        "async def f():\r\n    asyncio.ensure_future(asyncio.sleep(0))\r\n"
    )
    result, count = fix_source(source)
    assert count == 1
    assert result == (
        '"""Doc."""\r\n\r\nimport asyncio\r\n\r\nfrom taskward.aio import safe_create_task\r\n'
        "\r\n\r\nasync def f():\r\n    safe_create_task(asyncio.sleep(0))\r\n"
    )


# --- where the import goes ---------------------------------------------------------------------

CALL = "\n\nasync def f(loop):\n    loop.create_task(c())\n"
FIXED_CALL = "\n\nasync def f(loop):\n    safe_create_task(c())\n"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param("# a module\n", f"# a module\n\n\n{IMPORT}\n", id="no-imports"),
        pytest.param('"""Doc."""\n', f'"""Doc."""\n\n\n{IMPORT}\n', id="docstring"),
        pytest.param("import asyncio\n", f"import asyncio\n\n{IMPORT}\n", id="after-stdlib"),
        pytest.param(
            '"""Doc."""\n\nfrom __future__ import annotations\n',
            f'"""Doc."""\n\nfrom __future__ import annotations\n\n{IMPORT}\n',
            id="after-future",
        ),
        pytest.param(
            "import asyncio\n\nimport httpx\nfrom aiohttp import web\nfrom yarl import URL\n",
            "import asyncio\n\nimport httpx\nfrom aiohttp import web\n"
            f"{IMPORT}\nfrom yarl import URL\n",
            id="in-third-party",
        ),
        pytest.param(
            "import asyncio\n\nimport zzz\n",
            f"import asyncio\n\nimport zzz\n{IMPORT}\n",
            id="after-plain-imports",
        ),
        pytest.param(
            "import asyncio\n\nfrom . import models\n",
            f"import asyncio\n\n{IMPORT}\n\nfrom . import models\n",
            id="before-relative",
        ),
        pytest.param(
            "import asyncio\n\n# the web layer\nfrom yarl import URL\n",
            f"import asyncio\n\n{IMPORT}\n\n# the web layer\nfrom yarl import URL\n",
            id="above-comments",
        ),
        pytest.param(
            "from taskward.aio import fire_and_forget\n",
            "from taskward.aio import fire_and_forget, safe_create_task\n",
            id="merged",
        ),
        pytest.param(
            "from taskward.aio import MAX, TaskSupervisor, schedule_with_delay\n",
            "from taskward.aio import MAX, TaskSupervisor, safe_create_task, schedule_with_delay\n",
            id="merged-sorted",
        ),
        pytest.param(
            "from taskward.aio import (\n    fire_and_forget,\n    schedule_with_delay,\n)\n",
            "from taskward.aio import (\n    fire_and_forget,\n    safe_create_task,\n"
            "    schedule_with_delay,\n)\n",
            id="merged-parenthesised",
        ),
        pytest.param(f"{IMPORT}\n", f"{IMPORT}\n", id="already-imported"),
    ],
)
def test_import_placement(head: str, expected: str, tmp_path: Path) -> None:
    result, count = fix_source(head + CALL)
    assert (result, count) == (expected + FIXED_CALL, 1)
    assert_sorted_like_ruff(result, tmp_path)


def assert_sorted_like_ruff(source: str, tmp_path: Path) -> None:
    """ruff's import sorter (default settings) finds nothing to change, when it is installed."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    module = tmp_path / "module.py"
    module.write_text(source)
    # Run in an empty folder so that no project setting says what is first party.
    proc = subprocess.run(
        [ruff, "check", "--isolated", "--select", "I", "--diff", module.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_taskward_is_first_party_inside_taskward(tmp_path: Path) -> None:
    package = tmp_path / "src" / "taskward"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    source = "import asyncio\n\nimport httpx\n\nfrom taskward.jobs import Job\n" + CALL
    result, _ = fix_source(source, str(package / "mod.py"))
    assert result.startswith(
        "import asyncio\n\nimport httpx\n\nfrom taskward.aio import safe_create_task\n"
        "from taskward.jobs import Job\n"
    )


# --- --diff and --fix from the command line -------------------------------------------------------


def test_diff_prints_a_unified_diff_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "loop_callbacks.py"
    shutil.copy(PROGRAMS / "loop_callbacks.py", target)
    before = target.read_text()
    assert main([str(target), "--diff", "--no-cache"]) == 1
    out, err = capsys.readouterr()
    assert target.read_text() == before
    assert out.startswith(f"--- {target}\n+++ {target}\n@@ ")
    assert f"+{IMPORT}\n" in out
    assert (
        '\n-    asyncio.get_running_loop().create_task(greet("from a done callback"))'
        "  # expect: dangling\n"
    ) in out
    assert '\n+    safe_create_task(greet("from a done callback"))  # expect: dangling\n' in out
    assert err == "3 calls would be rewritten to safe_create_task.\n"


def test_nothing_changes_without_fix(tmp_path: Path) -> None:
    target = tmp_path / "fire_and_forget.py"
    shutil.copy(PROGRAMS / "fire_and_forget.py", target)
    before = target.read_bytes()
    assert main([str(target), "--no-cache"]) == 1
    assert main([str(target), "--no-cache", "--format", "json"]) == 1
    assert target.read_bytes() == before


def test_fix_reports_and_rescans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "loop_callbacks.py"
    shutil.copy(PROGRAMS / "loop_callbacks.py", target)
    assert main([str(target), "--fix", "--no-cache"]) == 1  # one call it must leave alone
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"{target}: rewrote 3 calls to safe_create_task"
    assert lines[1].endswith(
        "dangling: asyncio.create_task in not_known_to_run_on_the_loop: "
        "a bare statement drops its result"
    )
    assert main([str(target), "--fix", "--no-cache"]) == 1
    assert "rewrote" not in capsys.readouterr().out  # nothing more to rewrite


def test_fix_keeps_stdout_parseable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mod.py"
    target.write_text("import asyncio\n\n\nasync def f():\n    asyncio.create_task(c())\n")
    assert main([str(target), "--fix", "--format", "json", "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert out == "[]\n"
    assert err == f"{target}: rewrote 1 call to safe_create_task\n"


def test_fix_reports_files_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "mod.py"
    target.write_text("import asyncio\n\n\nasync def f():\n    asyncio.create_task(c())\n")

    def refuse(self: Path, data: bytes) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", refuse)  # root may write read-only files
    assert main([str(target), "--fix", "--no-cache"]) == 2
    out, err = capsys.readouterr()
    assert err == f"{target}: error: cannot fix: Permission denied\n"
    assert "dangling: asyncio.create_task in f" in out  # still there, still reported


def test_fix_with_a_broken_file_fixes_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n")
    shutil.copy(PROGRAMS / "loop_callbacks.py", tmp_path / "loop_callbacks.py")
    assert main([str(tmp_path), "--fix", "--no-cache"]) == 2
    out, err = capsys.readouterr()
    assert "loop_callbacks.py: rewrote 3 calls to safe_create_task" in out
    assert "broken.py: error: syntax error" in err


# --- round trips: the programs behave the same after the fix --------------------------------------

# Runs a program, then prints the failures taskward counted (none before the fix).
RUNNER = """\
import runpy, sys
import taskward.aio as aio
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
finally:
    print("counted failures:", dict(sorted(aio.get_task_failure_counts().items())), file=sys.stderr)
"""


def run(program: Path) -> tuple[str, int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(program)],
        cwd=program.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout, proc.returncode, proc.stderr


@pytest.mark.parametrize(
    ("program", "rewritten", "failures"),
    [
        ("fire_and_forget.py", 7, {"fail": 2}),
        ("loop_callbacks.py", 3, {"fail": 1}),
        ("left_alone.py", 0, {}),
    ],
)
def test_fixed_programs_behave_the_same(
    program: str, rewritten: int, failures: dict[str, int], tmp_path: Path
) -> None:
    target = tmp_path / program
    shutil.copy(PROGRAMS / program, target)
    source = target.read_text()
    out_before, code_before, err_before = run(target)
    assert err_before.splitlines()[-1] == "counted failures: {}"

    assert main([str(target), "--fix", "--no-cache", "--format", "json"]) in (0, 1)
    fixed_source = target.read_text()
    assert fix_source(source, str(target)) == (fixed_source, rewritten)
    if not rewritten:
        assert fixed_source == source

    out_after, code_after, err_after = run(target)
    assert (out_after, code_after) == (out_before, code_before)
    assert out_after.endswith("main done\n")
    # The only difference: failures are now logged with the task's name, and counted.
    assert err_after.splitlines()[-1] == f"counted failures: {failures}"
    for name in failures:
        assert f"background task {name!r} failed" in err_after
        assert "Task exception was never retrieved" not in err_after


def test_fixed_program_output_is_what_the_original_prints(tmp_path: Path) -> None:
    target = tmp_path / "fire_and_forget.py"
    shutil.copy(PROGRAMS / "fire_and_forget.py", target)
    main([str(target), "--fix", "--no-cache", "--format", "json"])
    out, code, _ = run(target)
    assert code == 0
    assert out.splitlines() == [
        "hello create_task",
        "hello ensure_future",
        "hello loop",
        "hello keyword",
        "hello renamed",
        "main done",
    ]
