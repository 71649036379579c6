"""Tests for taskward.audit: which calls start tasks, receivers, kinds, scopes and scan_paths.

--fix is tested in test_audit_fix.py, the command line in test_audit_cli.py, and precision and
recall on the fixture trees in test_audit_fixtures.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from taskward.audit import DEFAULT_SKIP_DIRS, Finding, Kind, scan_paths, scan_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TREE = FIXTURES / "audit_tree"


def scan(code: str) -> list[Finding]:
    return scan_source(textwrap.dedent(code))


def calls(code: str) -> list[str]:
    return [finding.call for finding in scan(code)]


def kinds(code: str) -> list[Kind]:
    return [finding.kind for finding in scan(code)]


def in_async(body: str, header: str = "import asyncio\n") -> list[Finding]:
    """Scan ``body`` as the body of ``async def f(self, tasks, cb)``."""
    indented = textwrap.indent(textwrap.dedent(body), "    ")
    return scan_source(f"{header}async def f(self, tasks, cb):\n{indented}")


# --- what counts as a task start ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import asyncio\nasyncio.create_task(c())", "asyncio.create_task"),
        ("import asyncio\nasyncio.ensure_future(c())", "asyncio.ensure_future"),
        ("import asyncio\nasyncio.Task(c())", "asyncio.Task"),
        ("loop.create_task(c())", "loop.create_task"),
        ("self.loop.create_task(c())", "self.loop.create_task"),
        ("self.client.loop.create_task(c())", "self.client.loop.create_task"),
        ("event_loop.create_task(c())", "event_loop.create_task"),
        ("asyncio.get_running_loop().create_task(c())", "asyncio.get_running_loop().create_task"),
        ("import asyncio as aio\naio.create_task(c())", "aio.create_task"),
        ("import asyncio as aio\naio.ensure_future(c())", "aio.ensure_future"),
        ("from asyncio import create_task\ncreate_task(c())", "create_task"),
        ("from asyncio import create_task as ct\nct(c())", "ct"),
        ("from asyncio import ensure_future\nensure_future(c())", "ensure_future"),
        ("from asyncio import ensure_future as ef\nef(c())", "ef"),
        ("from asyncio import Task as T\nT(c())", "T"),
        ("from asyncio import *\nensure_future(c())", "ensure_future"),
        ("import asyncio.tasks\nasyncio.tasks.ensure_future(c())", "asyncio.tasks.ensure_future"),
        ("from asyncio import tasks\ntasks.ensure_future(c())", "tasks.ensure_future"),
        ("import asyncio.tasks as t\nt.ensure_future(c())", "t.ensure_future"),
        ("import asyncio\nspawn = asyncio.ensure_future\nspawn(c())", "spawn"),
        ("import asyncio\nstart = asyncio.get_running_loop().create_task\nstart(c())", "start"),
    ],
)
def test_reports_each_call_form(code: str, expected: str) -> None:
    assert calls(code) == [expected]


@pytest.mark.parametrize(
    "code",
    [
        "create_task(c())",  # not imported from asyncio
        "ensure_future(c())",
        "Task(c())",
        "loop.ensure_future(c())",  # only asyncio's module-level ensure_future exists
        "from taskward.aio import safe_create_task\nsafe_create_task(c(), name='x')",
        "import taskward.aio\ntaskward.aio.safe_create_task(c())",
        "from other import create_task\ncreate_task(c())",
        "import trio as asyncio\nasyncio.ensure_future(c())",
        "asyncio.sleep(1)",
        "client.create_task(c())",  # an object of unknown type whose name is not a loop's
        "self.bot.create_task(c())",
        "pool.create_task(c())",
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


def test_ensure_future_of_a_task_is_not_a_new_task() -> None:
    code = """
        import asyncio
        async def f():
            task = asyncio.create_task(c())
            asyncio.ensure_future(task)
            asyncio.ensure_future(asyncio.create_task(c()))
            await task
    """
    assert [(f.line, f.kind) for f in scan(code)] == [(4, Kind.FINE), (6, Kind.DANGLING)]


# --- receivers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import asyncio\nloop = asyncio.get_event_loop()\nloop.create_task(c())",
        "import asyncio\nev = asyncio.new_event_loop()\nev.create_task(c())",
        "import asyncio\nasync def f():\n    r = asyncio.get_running_loop()\n"
        "    r.create_task(c())",
        "def f(ev: 'asyncio.AbstractEventLoop'):\n    ev.create_task(c())",
        "import asyncio\ndef f(ev: asyncio.AbstractEventLoop | None):\n    ev.create_task(c())",
        "from typing import Optional\nimport asyncio\n"
        "def f(ev: Optional[asyncio.AbstractEventLoop]):\n    ev.create_task(c())",
        "import uvloop\ndef f(ev: uvloop.Loop):\n    ev.create_task(c())",
        "def f(task):\n    task.get_loop().create_task(c())",
        """\
import asyncio
class C:
    def __init__(self, ev: asyncio.AbstractEventLoop):
        self._ev = ev
    def go(self):
        self._ev.create_task(c())
""",
        """\
import asyncio
class C:
    runner: asyncio.AbstractEventLoop
    def go(self):
        self.runner.create_task(c())
""",
        """\
import asyncio
class MyLoop(asyncio.SelectorEventLoop):
    def go(self):
        self.create_task(c())
""",
    ],
)
def test_loop_receivers(code: str) -> None:
    assert len(scan(code)) == 1


@pytest.mark.parametrize(
    "code",
    [
        # The class's own create_task: a framework's supervised wrapper, not asyncio's.
        """\
class Bot:
    def create_task(self, coro):
        return supervisor.spawn(coro)
    def go(self):
        self.create_task(c())
""",
        # An instance of a class of the module, even when named like a loop.
        """\
class Runner:
    def create_task(self, coro):
        return supervisor.spawn(coro)
loop = Runner()
loop.create_task(c())
""",
        # An unknown base may well define create_task: no finding without evidence.
        """\
class Bot(Base):
    def go(self):
        self.create_task(c())
""",
        # A name bound to something else wins over a loop-like name.
        "import things\nloop = things.Scheduler()\nloop.create_task(c())",
    ],
)
def test_other_receivers_are_not_task_starts(code: str) -> None:
    assert scan(code) == []


def test_wrapper_known_to_drop_the_task_is_reported_where_it_starts_it() -> None:
    code = """
        import asyncio
        class Client:
            def __init__(self, loop: asyncio.AbstractEventLoop):
                self.loop = loop
            def create_task(self, coro):
                return self.loop.create_task(coro)
            def go(self):
                self.create_task(c())
    """
    [finding] = scan(code)
    assert (finding.line, finding.kind) == (7, Kind.DANGLING)
    assert finding.reason.startswith("returned by Client.create_task() and dropped by the caller")
    assert "line 9" in finding.reason


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
        from asyncio import TaskGroup as TG
        async def f():
            async with TG() as group:
                group.create_task(c())
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
        async def spawn(*, other: asyncio.TaskGroup):
            other.create_task(c())
        """,
        """
        import asyncio
        class Service:
            def __init__(self):
                self._tg: asyncio.TaskGroup | None = None
            def spawn(self):
                self._tg.create_task(c())
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
def test_task_group_calls_are_fine_by_construction(code: str) -> None:
    [finding] = scan(code)
    assert (finding.kind, finding.reason) == (Kind.FINE, "supervised by its task group")


def test_task_group_name_is_scoped_to_its_function() -> None:
    code = """
        import asyncio
        async def supervised():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(c())
        async def elsewhere(loop):
            tg = loop
            tg.create_task(c())
    """
    assert [(f.function, f.kind) for f in scan(code)] == [
        ("supervised", Kind.FINE),
        ("elsewhere", Kind.DANGLING),
    ]


# --- kinds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("asyncio.create_task(c())", Kind.DANGLING),
        ("_ = asyncio.create_task(c())", Kind.DANGLING),
        ("task = asyncio.create_task(c())", Kind.DANGLING),  # never read
        ("t = asyncio.create_task(c())\nt.add_done_callback(cb)", Kind.DANGLING),
        ("asyncio.create_task(c()).add_done_callback(cb)", Kind.DANGLING),
        ("asyncio.create_task(c()) if self else None", Kind.DANGLING),
        ("self and asyncio.create_task(c())", Kind.DANGLING),
        ("[asyncio.create_task(x) for x in tasks]", Kind.DANGLING),
        ("asyncio.gather(asyncio.create_task(c()))", Kind.DANGLING),
        ("print(asyncio.create_task(c()))", Kind.DANGLING),
        ("await asyncio.create_task(c())", Kind.FINE),
        ("t = asyncio.create_task(c())\nawait t", Kind.FINE),
        ("t: asyncio.Task = asyncio.create_task(c())\nawait t", Kind.FINE),
        ("await asyncio.gather(asyncio.create_task(c()))", Kind.FINE),
        ("await asyncio.wait([asyncio.create_task(c())])", Kind.FINE),
        ("await asyncio.shield(asyncio.create_task(c()))", Kind.FINE),
        ("return await asyncio.create_task(c())", Kind.FINE),
        ("(t := asyncio.create_task(c()))\nawait t", Kind.FINE),
        ("ts = [asyncio.create_task(x) for x in tasks]\nawait asyncio.gather(*ts)", Kind.FINE),
        ("ts = []\nts.append(asyncio.create_task(c()))\nfor t in ts:\n    await t", Kind.FINE),
        ("t = asyncio.create_task(c())\nt.add_done_callback(cb)\nself.t = t", Kind.FINE),
        ("self.task = asyncio.create_task(c())", Kind.UNSUPERVISED),
        ("tasks[0] = asyncio.create_task(c())", Kind.UNSUPERVISED),
        ("tasks.add(asyncio.create_task(c()))", Kind.UNSUPERVISED),
        ("tasks.append(asyncio.create_task(c()))", Kind.UNSUPERVISED),
        ("keep([asyncio.create_task(c())])", Kind.FINE),  # handed to unknown code
    ],
)
def test_kinds(body: str, kind: Kind) -> None:
    [finding] = in_async(body)
    assert finding.kind is kind, finding.reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # A chain of targets: the task is kept by the name that is not `_`.
        ("_ = t = asyncio.create_task(c())\nawait t", [Kind.FINE]),
        ("t = _ = asyncio.create_task(c())\nawait t", [Kind.FINE]),
        # Tuple targets bind item by item: only the item bound to `_` is dropped.
        (
            "_, t = asyncio.create_task(a()), asyncio.create_task(b())\nawait t",
            [Kind.DANGLING, Kind.FINE],
        ),
        (
            "t, _ = asyncio.create_task(a()), asyncio.create_task(b())\nawait t",
            [Kind.FINE, Kind.DANGLING],
        ),
        (
            "_, _ = asyncio.create_task(a()), asyncio.create_task(b())",
            [Kind.DANGLING, Kind.DANGLING],
        ),
        # A tuple target next to a name target: the name keeps the whole tuple.
        (
            "pair = (_, t) = asyncio.create_task(a()), asyncio.create_task(b())\n"
            "await asyncio.gather(*pair)",
            [Kind.FINE, Kind.FINE],
        ),
    ],
)
def test_throwaway_targets(body: str, expected: list[Kind]) -> None:
    assert [f.kind for f in in_async(body)] == expected


def test_dangling_reasons() -> None:
    findings = in_async(
        """\
        asyncio.create_task(c())
        _ = asyncio.create_task(c())
        x = asyncio.create_task(c())
        fut = asyncio.ensure_future(c())
        fut.add_done_callback(cb)
        """
    )
    assert [f.reason for f in findings] == [
        "a bare statement drops its result",
        "bound only to `_`, the throwaway name",
        "`x` is never read",
        "`fut` is dropped when f() returns: only .add_done_callback() is called on it",
    ]


def test_task_rebound_before_use_is_dangling() -> None:
    body = "t = asyncio.create_task(a())\nt = asyncio.create_task(b())\nawait t"
    assert [f.kind for f in in_async(body)] == [Kind.DANGLING, Kind.FINE]


def test_task_read_on_the_next_loop_iteration_is_kept() -> None:
    body = """\
        previous = None
        for x in tasks:
            if previous is not None:
                await previous
            previous = asyncio.create_task(c())
        """
    assert [f.kind for f in in_async(body)] == [Kind.FINE]


def test_attribute_awaited_in_another_method_through_a_swap() -> None:
    code = """
        import asyncio
        class Service:
            def start(self):
                self._task = asyncio.create_task(c())
            async def stop(self):
                task, self._task = self._task, None
                await task
    """
    [finding] = scan(code)
    assert (finding.kind, finding.reason) == (Kind.FINE, "awaited")


def test_module_level_task_is_unsupervised() -> None:
    [finding] = scan("import asyncio\nBACKGROUND = asyncio.ensure_future(c())\n")
    assert finding.kind is Kind.UNSUPERVISED
    assert finding.reason == (
        "stored in module-level `BACKGROUND`; nothing awaits it or reads its exception"
    )


def test_returned_tasks_follow_their_callers() -> None:
    code = """
        import asyncio
        def spawn():
            return asyncio.ensure_future(c())
        def spawn_kept():
            return asyncio.ensure_future(c())
        def exported():
            return asyncio.ensure_future(c())
        async def main():
            spawn()
            await spawn_kept()
    """
    assert kinds(code) == [Kind.DANGLING, Kind.FINE, Kind.UNSUPERVISED]


def test_one_caller_dropping_a_returned_task_is_enough() -> None:
    code = """
        import asyncio
        def spawn():
            return asyncio.ensure_future(c())
        async def main():
            await spawn()
            spawn()
    """
    [finding] = scan(code)
    assert finding.kind is Kind.DANGLING
    assert "dropped by the caller on line 7" in finding.reason


def test_async_function_returning_a_task_is_followed_through_await() -> None:
    code = """
        import asyncio
        async def make():
            return asyncio.create_task(c())
        async def main():
            await make()
    """
    assert kinds(code) == [Kind.DANGLING]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("loop.call_soon_threadsafe(loop.create_task, c())", Kind.DANGLING),
        ("import asyncio\nloop.call_soon(asyncio.ensure_future, c())", Kind.DANGLING),
        (
            "import asyncio, signal\n"
            "loop.add_signal_handler(signal.SIGINT, lambda: asyncio.create_task(c()))",
            Kind.DANGLING,
        ),
        (
            "import asyncio\nfrom functools import partial\n"
            "loop.call_later(1, partial(asyncio.create_task, c()))",
            Kind.DANGLING,
        ),
        ("import asyncio\nh = lambda: asyncio.create_task(c())\nloop.call_soon(h)", Kind.DANGLING),
        (
            "import asyncio\nasync def f(cs):\n"
            "    await asyncio.gather(*map(asyncio.create_task, cs))",
            Kind.FINE,
        ),
    ],
)
def test_task_starters_handed_over_as_callables(code: str, kind: Kind) -> None:
    assert kinds(code) == [kind]


@pytest.mark.parametrize(
    ("callback", "kind"),
    [
        ("tasks.discard", Kind.UNSUPERVISED),
        ("lambda t: tasks.discard(t)", Kind.UNSUPERVISED),
        ("log_failure", Kind.FINE),
        ("lambda t: log_failure(t)", Kind.FINE),
        ("functools.partial(log_with, 'x')", Kind.FINE),
        ("unknown_callback", Kind.FINE),  # not followed: assumed to read it
        ("lambda t: print('done')", Kind.UNSUPERVISED),
    ],
)
def test_done_callbacks(callback: str, kind: Kind) -> None:
    code = f"""
        import asyncio, functools
        TASKS = set()
        def log_failure(task):
            if not task.cancelled() and task.exception():
                print("failed")
        def log_with(label, task):
            log_failure(task)
        async def f(tasks):
            task = asyncio.create_task(c())
            TASKS.add(task)
            task.add_done_callback({callback})
    """
    [finding] = scan(code)
    assert finding.kind is kind, finding.reason


def test_coroutine_that_catches_everything_needs_no_watching() -> None:
    code = """
        import asyncio
        async def guarded():
            \"\"\"Never raises.\"\"\"
            try:
                await c()
            except Exception:
                log.exception("failed")
        async def reraising():
            try:
                await c()
            except Exception:
                raise
        async def f(tasks):
            tasks.add(asyncio.create_task(guarded()))
            tasks.add(asyncio.create_task(reraising()))
            asyncio.create_task(guarded())
    """
    assert kinds(code) == [Kind.FINE, Kind.UNSUPERVISED, Kind.DANGLING]


# --- suppression ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "reported"),
    [
        ("# taskward: ignore", False),
        ("# taskward:ignore[dangling]", False),
        ("# taskward: ignore[unsupervised, fine]", True),
        ("# noqa: RUF006", False),
        ("# noqa: E501, RUF006", False),
        ("# noqa", True),
        ("# noqa: F841", True),
    ],
)
def test_suppression_comments(comment: str, reported: bool) -> None:
    code = f"import asyncio\nasyncio.ensure_future(c())  {comment}\n"
    assert bool(scan_source(code)) is reported


def test_suppression_on_the_last_line_of_a_call() -> None:
    code = "import asyncio\nasyncio.ensure_future(\n    c()\n)  # taskward: ignore\n"
    assert scan_source(code) == []


def test_suppression_text_inside_a_string_does_not_count() -> None:
    code = 'import asyncio\nasyncio.ensure_future(c(" # taskward: ignore"))\n'
    assert len(scan_source(code)) == 1


# --- enclosing function names and positions -------------------------------------------------------


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


def test_positions_are_one_based_character_columns() -> None:
    code = 'import asyncio\nasync def f():\n    s = "é"; asyncio.ensure_future(c("é"))\n'
    [finding] = scan_source(code, "pkg/mod.py")
    assert (finding.path, finding.line, finding.col) == ("pkg/mod.py", 3, 14)
    assert (finding.end_line, finding.end_col) == (3, 43)  # the character after the call


def test_findings_are_in_source_order() -> None:
    # ast visits positional arguments before keywords, whatever their order in the source.
    code = "from asyncio import ensure_future as ef\nf(k=ef(a()), *[ef(b())])\n"
    assert [(f.line, f.col) for f in scan_source(code)] == [(2, 5), (2, 16)]


def test_syntax_error_is_raised() -> None:
    with pytest.raises(SyntaxError):
        scan_source("def f(:\n")


def test_syntax_error_is_raised_without_any_task() -> None:
    with pytest.raises(SyntaxError):
        scan_source("x = (\n")


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
        "end_line": 1,
        "end_col": 22,
        "call": "loop.create_task",
        "function": "<module>",
        "kind": "dangling",
        "reason": "a bare statement drops its result",
        "fixable": False,
    }


def test_deeply_nested_code_is_a_scan_failure(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text("import asyncio\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    report = scan_paths([tmp_path])
    assert len(report.errors) == 1


# --- scan_paths on the fixture tree ---------------------------------------------------------------


def relative(path: str) -> str:
    return Path(path).relative_to(TREE).as_posix()


FIXTURE_FINDINGS = [
    ("legacy/spawn_legacy.py", 7, 12, "schedule", "kick", Kind.UNSUPERVISED),
    ("spawn_aliases.py", 13, 5, "ct", "start", Kind.DANGLING),
    ("spawn_aliases.py", 14, 13, "aio.create_task", "start", Kind.UNSUPERVISED),
    ("spawn_aliases.py", 15, 5, "ensure_future", "start", Kind.DANGLING),
    ("spawn_clean.py", 14, 9, "tg.create_task", "supervised", Kind.FINE),
    ("spawn_clean.py", 19, 5, "group.create_task", "spawn_into", Kind.FINE),
    ("spawn_service.py", 6, 14, "loop.create_task", "<module>", Kind.UNSUPERVISED),
    ("spawn_service.py", 15, 9, "self._loop.create_task", "Poller.start", Kind.DANGLING),
    ("spawn_service.py", 16, 25, "self._loop.create_task", "Poller.start", Kind.UNSUPERVISED),
    ("spawn_service.py", 20, 13, "asyncio.ensure_future", "Poller.poll.schedule", Kind.DANGLING),
]


def found(findings: tuple[Finding, ...]) -> list[tuple[str, int, int, str, str, Kind]]:
    return [(relative(f.path), f.line, f.col, f.call, f.function, f.kind) for f in findings]


def test_scan_paths_on_fixture_tree() -> None:
    report = scan_paths([TREE])
    assert found(report.findings) == FIXTURE_FINDINGS
    assert [(relative(e.path), e.message) for e in report.errors] == [
        ("spawn_broken.py", "syntax error: invalid syntax (line 6)")
    ]
    # legacy, aliases, service, clean and broken; node_modules is never entered.
    assert report.files_scanned == 5


def test_scan_paths_accepts_files_and_strings() -> None:
    report = scan_paths([str(TREE / "spawn_aliases.py"), TREE / "spawn_clean.py"])
    assert [f.line for f in report.findings] == [13, 14, 15, 14, 19]
    assert report.errors == ()
    assert report.files_scanned == 2


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


def test_suppressed_findings_are_counted(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        "loop.create_task(c())  # taskward: ignore\nloop.create_task(c())\n"
    )
    report = scan_paths([tmp_path])
    assert (len(report.findings), report.suppressed) == (1, 1)


def test_report_counts_by_kind() -> None:
    report = scan_paths([TREE])
    counts = {kind: report.count(kind) for kind in Kind}
    assert counts == {Kind.DANGLING: 4, Kind.UNSUPERVISED: 4, Kind.FINE: 2}


def test_tasks_iterated_through_enumerate_and_zip() -> None:
    body = """\
        ts = [asyncio.create_task(x) for x in tasks]
        for i, t in enumerate(ts):
            await t
        us = [asyncio.create_task(x) for x in tasks]
        for name, u in zip(tasks, us):
            print(name, await u)
        """
    assert [f.kind for f in in_async(body)] == [Kind.FINE, Kind.FINE]
