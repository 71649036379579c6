"""What a new user meets first: one-line errors, no stray stores, refusals, help and ``init``.

Each test runs the real ``taskward`` command (in-process through typer's CliRunner, or as a
subprocess where stderr, the exit code or the folder it runs in is the point) on SQLite files
in ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from taskward import JobState, TaskManager, __version__
from taskward.backends.sql.migrate import load_migrations
from taskward.backends.sqlite.migrate import SQLITE_SQL
from taskward.cli import app

runner = CliRunner()

NO_STORE = (
    "(set --url or TASKWARD_URL, or run from the folder that has it; `taskward migrate` "
    "creates one)"
)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, no TASKWARD_* settings, and sys.path restored afterwards."""
    monkeypatch.chdir(tmp_path)
    for name in ("TASKWARD_URL", "TASKWARD_APP"):
        monkeypatch.delenv(name, raising=False)
    # --app puts the working folder on sys.path: undo it, as the modules written here.
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


@pytest.fixture
def url(here: Path) -> str:
    """The URL of a store in the working folder that does not exist yet."""
    return f"sqlite:///{here / 'jobs.db'}"


def invoke(*args: str) -> tuple[int, str, str]:
    """Run ``taskward *args`` in-process: exit code, stdout, stderr."""
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def taskward(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``taskward *args`` as a subprocess in ``cwd``, without any TASKWARD_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")}
    return subprocess.run(
        [sys.executable, "-m", "taskward", *args],
        cwd=cwd, env={**env, "NO_COLOR": "1"}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def assert_one_error_line(code: int, stderr: str, *expected: str) -> None:
    assert code == 1, stderr
    assert "Traceback" not in stderr
    (line,) = stderr.splitlines()
    assert line.startswith("error: "), line
    for text in expected:
        assert text in line, (text, line)


def write_module(folder: Path, source: str) -> str:
    """Write a module under a fresh name (no clash with one imported earlier); its name."""
    name = f"first_use_{uuid.uuid4().hex[:12]}"
    (folder / f"{name}.py").write_text(source)
    return name


def add(a: int, b: int = 0) -> int:
    return a + b


@pytest.fixture
def stored(url: str) -> dict[str, Any]:
    """A store holding one completed job (id 1, on queue "default") and one pending (id 2)."""
    tw = TaskManager(url)
    tw.task(name="first_use.add")(add)
    try:
        done = tw.sync.enqueue_task("first_use.add", args=[2, 3])
        tw.sync.drain(timeout=30)
        waiting = tw.sync.enqueue_task("first_use.add", args=[1], delay=3600)
    finally:
        tw.sync.shutdown()
    return {"url": url, "done": done.id, "waiting": waiting.id}


# -- 1. every TaskwardError is one line ----------------------------------------------------------
@pytest.mark.parametrize(
    ("bad_url", "expected"),
    [
        ("foo://x", "unknown backend URL scheme 'foo'"),
        ("postgresql://[x", "invalid backend URL (Invalid IPv6 URL)"),
        ("sqlite:///", "invalid SQLite URL"),
    ],
)
def test_a_bad_backend_url_is_one_error_line(here: Path, bad_url: str, expected: str) -> None:
    proc = taskward("jobs", "--url", bad_url, cwd=here)
    assert_one_error_line(proc.returncode, proc.stderr, expected)
    assert proc.stdout == ""


def test_a_taskward_error_raised_while_importing_the_app_is_one_line(here: Path) -> None:
    module = write_module(here, 'from taskward import TaskManager\ntw = TaskManager("foo://x")\n')
    code, _, stderr = invoke("stats", "--app", module)
    assert_one_error_line(code, stderr, "unknown backend URL scheme")


# -- 2. a command that reads never creates a store -----------------------------------------------
READ_ONLY = [
    ["jobs"],
    ["status", "1"],
    ["stats"],
    ["why", "1"],
    ["workflow", "1"],
    ["retry", "1"],
    ["cancel", "1"],
    ["cleanup"],
    ["cron", "list"],
    ["cron", "cancel", "nightly"],
    ["queue", "limits"],
    ["pause", "emails"],
    ["resume", "emails"],
    ["queue", "hold", "emails", "60"],
    ["queue", "release", "emails"],
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_refuses_a_missing_store(here: Path, command: list[str]) -> None:
    code, _, stderr = invoke(*command)
    assert_one_error_line(code, stderr, f"error: no store at {here / 'taskward.db'} {NO_STORE}")
    assert list(here.iterdir()) == []


def test_run_from_the_wrong_folder_jobs_says_so_and_creates_nothing(here: Path) -> None:
    proc = taskward("jobs", cwd=here)
    assert_one_error_line(proc.returncode, proc.stderr, str(here / "taskward.db"), NO_STORE)
    assert list(here.iterdir()) == []


def test_the_manager_of_an_app_is_checked_too(here: Path) -> None:
    module = write_module(
        here, 'from taskward import TaskManager\ntw = TaskManager("sqlite:///elsewhere.db")\n'
    )
    code, _, stderr = invoke("jobs", "--app", module)
    assert_one_error_line(code, stderr, f"no store at {here / 'elsewhere.db'}")
    assert not (here / "elsewhere.db").exists()


@pytest.mark.parametrize(
    "command",
    [["migrate"], ["enqueue", "tests_support.jobs:add", "--args", "[1]"]],
    ids=" ".join,
)
def test_a_command_that_writes_creates_the_store(here: Path, command: list[str]) -> None:
    code, _, stderr = invoke(*command)
    assert code == 0, stderr
    assert (here / "taskward.db").exists()
    assert invoke("stats", "--json")[0] == 0  # and now the read-only commands find it


# -- 3. refusals instead of silent successes -----------------------------------------------------
def test_retry_refuses_a_job_that_is_not_dead_or_cancelled(stored: dict[str, Any]) -> None:
    for job_id, state in ((stored["done"], "completed"), (stored["waiting"], "scheduled")):
        code, _, stderr = invoke("retry", str(job_id), "--url", stored["url"])
        assert_one_error_line(
            code, stderr, f"job {job_id} is {state}: only a failed, discarded or cancelled job"
        )
    code, _, stderr = invoke("retry", "99", "--url", stored["url"])
    assert_one_error_line(code, stderr, "job 99 not found")
    code, out, _ = invoke("cancel", str(stored["waiting"]), "--url", stored["url"])
    assert (code, out.strip()) == (0, f"job {stored['waiting']}: cancelled")
    code, out, _ = invoke("retry", str(stored["waiting"]), "--url", stored["url"])
    assert (code, out.strip()) == (0, f"job {stored['waiting']}: pending")


def test_cancel_refuses_a_finished_job(stored: dict[str, Any]) -> None:
    code, _, stderr = invoke("cancel", str(stored["done"]), "--url", stored["url"])
    assert_one_error_line(code, stderr, "has already finished (completed): nothing to cancel")
    job = json.loads(invoke("status", str(stored["done"]), "--json", "--url", stored["url"])[1])
    assert job["state"] == JobState.COMPLETED.value


@pytest.mark.parametrize(
    ("command", "verb"),
    [
        (["pause", "emials"], "pause"),
        (["resume", "emials"], "resume"),
        (["queue", "hold", "emials", "60"], "hold"),
        (["queue", "release", "emials"], "release"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_queue_commands_refuse_a_queue_nothing_uses(
    stored: dict[str, Any], command: list[str], verb: str
) -> None:
    code, _, stderr = invoke(*command, "--url", stored["url"])
    assert_one_error_line(
        code,
        stderr,
        "unknown queue 'emials': no registered task uses it",
        f"or give --force to {verb} it anyway",
    )
    data = json.loads(invoke("stats", "--json", "--url", stored["url"])[1])
    assert data["paused"] == []
    assert data["limits"] == {}


def test_pause_and_resume_a_known_queue_and_say_what_changed(stored: dict[str, Any]) -> None:
    url = stored["url"]
    assert invoke("pause", "default", "--url", url)[1].strip() == "queue default paused"
    assert invoke("pause", "default", "--url", url)[1].strip() == "queue default was already paused"
    assert json.loads(invoke("stats", "--json", "--url", url)[1])["paused"] == ["default"]
    assert invoke("resume", "default", "--url", url)[1].strip() == "queue default resumed"
    assert invoke("resume", "default", "--url", url)[1].strip() == "queue default was not paused"


def test_force_acts_on_a_queue_before_its_first_job(url: str) -> None:
    code, out, stderr = invoke("pause", "reports", "--force", "--url", url)
    assert (code, out.strip()) == (0, "queue reports paused"), stderr
    assert invoke("queue", "hold", "later", "60", "--force", "--url", url)[0] == 0
    assert invoke("queue", "release", "later", "--url", url)[0] == 0  # its hold: now known
    assert invoke("resume", "reports", "--url", url)[1].strip() == "queue reports resumed"


def test_a_queue_of_a_registered_task_is_known_before_any_job(here: Path) -> None:
    module = write_module(
        here,
        "from taskward import TaskManager\n"
        'tw = TaskManager("sqlite:///app.db")\n\n'
        '@tw.task(queue="emails")\n'
        "def send(to: str) -> None:\n"
        "    pass\n",
    )
    code, out, stderr = invoke("pause", "emails", "--app", module)
    assert (code, out.strip()) == (0, "queue emails paused"), stderr
    code, _, stderr = invoke("pause", "emials", "--app", module)
    assert_one_error_line(code, stderr, "unknown queue 'emials'")
    assert "pass --app" not in stderr  # it was given


# -- 4. migrate says what it applied -------------------------------------------------------------
def test_migrate_says_what_it_applied_then_that_it_is_up_to_date(url: str) -> None:
    versions = [m.version for m in load_migrations(SQLITE_SQL)]
    code, out, _ = invoke("migrate", "--url", url)
    listed = ", ".join(f"{v:04d}" for v in versions)
    assert (code, out.strip()) == (
        0,
        f"applied {len(versions)} migrations to {url}: {listed} (now at version {versions[-1]})",
    )
    code, out, _ = invoke("migrate", "--url", url)
    assert (code, out.strip()) == (0, f"schema of {url} is up to date (version {versions[-1]})")
    code, out, _ = invoke("migrate", "--url", "memory://")
    assert (code, out.strip()) == (0, "memory:// keeps no schema: nothing to migrate")


# -- 5. the version ------------------------------------------------------------------------------
def test_the_version_is_the_installed_one() -> None:
    assert __version__ == importlib.metadata.version("taskward")
    code, out, _ = invoke("--version")
    assert (code, out.strip()) == (0, f"taskward {__version__}")


# -- 6. help a newcomer can read -----------------------------------------------------------------
# cli/worker.py is being changed elsewhere: its example comes with that change.
# ``audit --help`` is the audit's own parser (its docstring example is checked below).
# audit --help is its own parser's (argparse); its typer entry carries the example.
NO_EXAMPLE_YET = {("audit",)}


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of ``taskward``, as the words that name it."""
    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def command_at(path: tuple[str, ...]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "taskward")
def test_every_help_has_an_example_and_no_type_tags(path: tuple[str, ...]) -> None:
    command = command_at(path)
    if path in NO_EXAMPLE_YET:
        assert "Example:" in (command.help or "")
        return
    code, out, _ = invoke(*path, "--help")
    assert code == 0
    assert "Example: taskward" in out or "Example: TASKWARD_" in out
    options = out[out.index("Options") :]
    for tag in ("<bool>", "<str>", "<int>", "<float>", "<list[", "<path>", "range>"):
        assert tag not in options, (tag, options)
    for param in command.params:
        if param.param_type_name == "option":
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"
            # A metavar of its own (not the name TaskwardGroup falls back to).
            assert param.is_flag or param.metavar, f"{' '.join(path)} {param.opts[0]}"


def test_jobs_help_names_what_each_filter_takes() -> None:
    code, out, _ = invoke("jobs", "--help")
    assert code == 0
    for option, short, metavar in (("state", "s", "STATE"), ("queue", "q", "QUEUE"),
                                   ("task", "t", "TASK")):  # fmt: skip
        assert re.search(rf"--{option}\s+-{short}\s+{metavar}\s", out), out
    assert "Only jobs in this state" in out


# -- 7. --app without an attribute ---------------------------------------------------------------
def test_app_as_a_bare_module_takes_its_only_task_manager(here: Path) -> None:
    module = write_module(
        here,
        "from taskward import TaskManager\n"
        'tw = TaskManager("sqlite:///app.db")\n'
        "same = tw  # one manager under two names is still one\n",
    )
    code, out, stderr = invoke("migrate", "--app", module)
    assert code == 0, stderr
    assert out.startswith("applied ")
    assert (here / "app.db").exists()


@pytest.mark.parametrize(
    ("source", "attr", "expected"),
    [
        ("x = 1\n", "", "{m} has no TaskManager (use --app module:attribute)"),
        ("x = 1\n", ":app", "{m} has no TaskManager named 'app' (use --app module:attribute)"),
        (
            "x = 1\n",
            ":x",
            "{m}:x is not a TaskManager (its type is int; use --app module:attribute)",
        ),
        (
            "from taskward import TaskManager\n"
            'one = TaskManager("memory://")\ntwo = TaskManager("memory://")\n',
            "",
            "{m} has 2 TaskManagers (one, two): name one, as in --app {m}:one",
        ),
    ],
)
def test_an_app_that_names_no_manager_is_one_clear_line(
    here: Path, source: str, attr: str, expected: str
) -> None:
    module = write_module(here, source)
    code, _, stderr = invoke("jobs", "--app", module + attr)
    assert code == 2
    assert stderr.splitlines() == [f"error: {expected.format(m=module)}"]


def test_an_app_that_cannot_be_imported_is_one_clear_line(here: Path) -> None:
    code, _, stderr = invoke("jobs", "--app", "no_such_module_here:tw")
    assert code == 2
    assert stderr.splitlines() == [
        "error: cannot import no_such_module_here (--app no_such_module_here:tw): "
        "No module named 'no_such_module_here'"
    ]


# -- 8. taskward init ----------------------------------------------------------------------------
def test_init_writes_tasks_py_whose_printed_commands_run_a_job(tmp_path: Path) -> None:
    proc = taskward("init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = (tmp_path / "tasks.py").read_text()
    commands = [line.strip() for line in proc.stdout.splitlines() if line.startswith("  taskward ")]
    assert len(commands) == 2, proc.stdout
    enqueue, worker = (shlex.split(command)[1:] for command in commands)
    assert worker[0] == "worker"

    done = taskward(*enqueue, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("enqueued job 1 (tasks:add)")
    done = taskward(*worker, "--burst", "--log-level", "WARNING", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "'completed': 1" in done.stdout
    shown = taskward("status", "1", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)
    assert (job["state"], job["result"]) == ("completed", 5)

    again = taskward("init", cwd=tmp_path)
    assert_one_error_line(again.returncode, again.stderr, "tasks.py exists already")
    assert (tmp_path / "tasks.py").read_text() == written


def test_a_read_only_command_never_adds_tables_to_another_database(here: Path) -> None:
    other = here / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as con:
        con.execute("CREATE TABLE users (name TEXT)")
        con.commit()
    code, _, stderr = invoke("stats", "--url", f"sqlite:///{other}")
    assert_one_error_line(code, stderr, f"error: no store at {other} {NO_STORE}")
    with contextlib.closing(sqlite3.connect(other)) as con:
        tables = [name for (name,) in con.execute("SELECT name FROM sqlite_master")]
    assert tables == ["users"]


def test_a_read_only_command_refuses_a_postgres_schema_without_a_store(pg_url: str) -> None:
    code, _, stderr = invoke("jobs", "--url", pg_url)
    assert code == 1
    assert stderr.startswith("error: no store at postgresql://")
    assert "taskward migrate" in stderr
    code, _, _ = invoke("migrate", "--url", pg_url)
    assert code == 0
    code, _, _ = invoke("jobs", "--url", pg_url)
    assert code == 0
