"""The CLI prints what it read from the store as inert text, and never a secret.

The attacker model: someone who can write to the job table (or make a job fail with a
message of their choosing) and waits for an operator to run ``taskward jobs`` or ``status``
in a terminal. A stored string must not be read as rich markup (``[/nothing]`` used to crash
the command with a MarkupError) nor reach the terminal as escape sequences (screen clears,
OSC 8 hyperlinks, cursor moves, bidi overrides): it is shown escaped, as the characters
``\\x1b``. Checked off a terminal (CliRunner) and on one (a forced-terminal console
in-process, and ``FORCE_COLOR=1`` in a subprocess, where the CLI builds its own console).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from taskward import TaskManager
from taskward import terminal as cli_module
from taskward.cli import app as cli
from taskward.cli import core as cli_core
from taskward.jobs import WorkerInfo

EVIL = "[/nothing] \x1b[2J\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\ [bold]x"
"""A failing job's message: markup that crashes rich, a screen clear and an OSC 8 link."""
PLANTED_TASK = "[red]t\r\x07\x9b\u202e\x7f"
"""A task name written behind taskward's back: CR, BEL, a C1 CSI, a bidi override, DEL.

Short enough that its table cell is not folded in 120 columns (the check reads one line)."""
PLANTED_QUEUE = "[/q]\x1b[31mq"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters a terminal acts on instead of showing (tab and newline are fine)."""
SGR = re.compile(r"\x1b\[[0-9;]*m")
"""Rich's own colours on a terminal: the only escape sequences the CLI may write there."""


def boom() -> None:
    raise RuntimeError(EVIL)


def give(value: Any) -> Any:
    return value


def send_code(phone: str, code: str) -> None:
    pass


@dataclass(frozen=True)
class Store:
    """A seeded store (SQLite or Redis): a failed job (1), a completed one (2), a planted one (3).

    ``path`` is the SQLite file, None on Redis (``prefix`` is the key prefix there).
    """

    url: str
    path: Path | None = None
    prefix: str | None = None

    def plant_job(self, job_id: int, task: str, queue: str) -> None:
        """Change a job's task and queue behind taskward's back, as someone with write access."""
        if self.path is not None:
            with sqlite3.connect(self.path) as db:
                db.execute(
                    "UPDATE taskward_jobs SET task = ?, queue = ? WHERE id = ?",
                    (task, queue, job_id),
                )
            db.close()
            return
        # Redis: the job's hash, and (as an attacker who read docs/DESIGN.md would) the
        # per-queue and per-task index entries, so that listings and statistics show the names.
        base = f"{{{self.prefix}}}"
        with self.redis() as db:
            key = f"{base}:job:{job_id}"
            old_task, old_queue, state = db.hmget(key, ["task", "queue", "state"])
            assert state == b"scheduled", state
            pipe = db.pipeline(transaction=True)
            pipe.hset(key, mapping={"task": task, "queue": queue})
            pipe.zrem(f"{base}:ix:{old_queue.decode()}:{state.decode()}", job_id)
            pipe.zadd(f"{base}:ix:{queue}:{state.decode()}", {str(job_id): job_id})
            pipe.zrem(f"{base}:tx:{old_task.decode()}:{state.decode()}", job_id)
            pipe.zadd(f"{base}:tx:{task}:{state.decode()}", {str(job_id): job_id})
            pipe.sadd(f"{base}:queues", queue)
            pipe.execute()

    def plant_schedules(self, cron: str, timezone: str) -> None:
        """Give every stored schedule a bad cron and time zone."""
        if self.path is not None:
            with sqlite3.connect(self.path) as db:
                db.execute("UPDATE taskward_schedules SET cron = ?, timezone = ?", (cron, timezone))
            db.close()
            return
        key = f"{{{self.prefix}}}:schedules"
        with self.redis() as db:
            stored = db.hgetall(key)
            assert stored
            for name, text in stored.items():
                db.hset(
                    key, name, json.dumps({**json.loads(text), "cron": cron, "timezone": timezone})
                )

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url.partition("?")[0])


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("TASKWARD_APP", raising=False)
    monkeypatch.delenv("TASKWARD_URL", raising=False)
    if request.param == "redis":
        url = str(request.getfixturevalue("redis_url"))
        store = Store(url=url, prefix=parse_qs(urlsplit(url).query)["prefix"][0])
    else:
        path = tmp_path / "x.db"
        store = Store(url=f"sqlite:///{path}", path=path)
    tw = TaskManager(store.url)
    tw.task(name="evil.boom", max_attempts=1)(boom)
    tw.task(name="evil.give")(give)

    async def seed() -> None:
        async with tw:
            await tw.enqueue_task("evil.boom")
            await tw.enqueue_task("evil.give", args=[EVIL], tags=[EVIL])
            await tw.drain(timeout=30)
            await tw.enqueue_task("evil.give", args=[EVIL], delay=3600)
            await tw.schedule_recurring_task(EVIL, "evil.give", cron="0 * * * *", args=[EVIL])
            now = datetime.now(UTC)
            worker = WorkerInfo(
                id=EVIL, hostname=EVIL, pid=1, queues={"default": 1}, started_at=now,
                heartbeat_at=now,
            )  # fmt: skip
            await tw.backend.record_worker(worker)

    asyncio.run(seed())
    store.plant_job(3, PLANTED_TASK, PLANTED_QUEUE)
    return store


@pytest.fixture(params=["pipe", "terminal"])
def terminal(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run each check off a terminal (as CliRunner is) and on one, in colour, 200 wide."""
    on_terminal: bool = request.param == "terminal"
    if on_terminal:
        for name, stderr in (("console", False), ("err", True)):
            forced = Console(
                force_terminal=True, color_system="truecolor", width=200, stderr=stderr
            )
            monkeypatch.setattr(cli_core, name, forced)
    return on_terminal


def invoke(store: Store, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--url", store.url])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    return result.output


def assert_inert(out: str, *, terminal: bool) -> str:
    """Fail on any character a terminal would act on; return the text as a person sees it."""
    seen = SGR.sub("", out) if terminal else out
    found = UNSAFE.search(seen)
    assert found is None, f"raw {found.group()!r} reached the output: {seen!r}"
    return seen


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_jobs_table_shows_stored_text_escaped(store: Store, terminal: bool) -> None:
    seen = assert_inert(invoke(store, "jobs"), terminal=terminal)
    assert "[/nothing]" in seen
    assert "[red]t\\r" in seen


def test_status_shows_the_error_traceback_and_result_as_text(store: Store, terminal: bool) -> None:
    seen = assert_inert(invoke(store, "status", "1"), terminal=terminal)
    attempt_line = next(line for line in seen.splitlines() if line.startswith("attempt 1"))
    assert "RuntimeError: [/nothing] \\x1b[2J\\x1b]8;;http://evil" in attempt_line
    assert attempt_line.endswith("\\x1b]8;;\\x1b\\ [bold]x")
    assert "Traceback (most recent call last):" in seen  # the traceback keeps its lines
    assert "raise RuntimeError(EVIL)" in seen
    seen = assert_inert(invoke(store, "status", "2"), terminal=terminal)
    assert f"result: {json.dumps(EVIL)}" in seen


def test_status_of_a_planted_job_escapes_every_control_character(
    store: Store, terminal: bool
) -> None:
    seen = assert_inert(invoke(store, "status", "3"), terminal=terminal)
    assert "[red]t\\r\\x07\\x9b\\u202e\\x7f" in seen
    assert "[/q]\\x1b[31mq" in seen


def test_stats_and_cron_list_show_names_as_text(store: Store, terminal: bool) -> None:
    seen = assert_inert(invoke(store, "stats"), terminal=terminal)
    assert "[/q]\\x1b[31mq" in seen
    seen = assert_inert(invoke(store, "cron", "list"), terminal=terminal)
    assert "[/nothing]" in seen
    assert "\\x1b[2J" in seen


@pytest.mark.parametrize(
    "command",
    [["jobs"], ["status", "1"], ["status", "2"], ["status", "3"], ["stats"], ["cron", "list"]],
)
def test_json_output_is_inert_and_exact(store: Store, terminal: bool, command: list[str]) -> None:
    out = invoke(store, *command, "--json")
    data = json.loads(assert_inert(out, terminal=terminal))
    # Escaped on screen, exact once parsed.
    assert {EVIL, PLANTED_TASK, PLANTED_QUEUE} & set(strings(data)), data


def test_a_real_terminal_gets_no_escape_sequence_from_the_store(store: Store) -> None:
    """The console the CLI builds itself, told it is on a terminal by FORCE_COLOR."""
    env = {**os.environ, "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    expected = {"status 1": "[/nothing]", "status 3": "[red]t\\r\\x07", "jobs": "[/nothing]"}
    for command, text in expected.items():
        proc = subprocess.run(
            [sys.executable, "-m", "taskward", *command.split(), "--url", store.url],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "\x1b[" in proc.stdout  # rich's colours: the terminal path was taken
        seen = assert_inert(proc.stdout, terminal=True)
        assert text in seen


def test_an_error_message_is_one_inert_line(store: Store, terminal: bool) -> None:
    result = CliRunner().invoke(cli, ["enqueue", "[/nothing]\x1b[2J\nx", "--url", store.url])
    assert result.exit_code == 1, result.output
    seen = assert_inert(result.stderr, terminal=terminal)
    assert seen.startswith("error:")
    assert seen.count("\n") == 1
    assert "[/nothing]" in seen


def test_a_bad_stored_cron_does_not_crash_the_listing(store: Store, terminal: bool) -> None:
    store.plant_schedules("not a cron", EVIL)
    seen = assert_inert(invoke(store, "cron", "list"), terminal=terminal)
    assert "invalid" in seen
    (row,) = json.loads(assert_inert(invoke(store, "cron", "list", "--json"), terminal=terminal))
    assert row["next"] is None


# -- secrets -------------------------------------------------------------------------------
def test_json_output_hides_sensitive_args_and_the_unique_key(tmp_path: Path) -> None:
    """The unique key hashes the arguments, secrets included: a 6-digit code falls to it."""
    url = f"sqlite:///{tmp_path}/x.db"
    tw = TaskManager(url)
    tw.task(name="otp.send", sensitive=("code",), unique_for=60)(send_code)

    async def enqueue() -> Any:
        async with tw:
            return await tw.enqueue_task("otp.send", kwargs={"phone": "+1555", "code": "123456"})

    job = asyncio.run(enqueue())
    assert job.unique_key
    for command in (["status", str(job.id), "--json"], ["jobs", "--json"]):
        result = CliRunner().invoke(cli, [*command, "--url", url])
        assert result.exit_code == 0, result.output
        assert "123456" not in result.output
        assert job.unique_key not in result.output
        shown = json.loads(result.output)
        shown = shown[0] if isinstance(shown, list) else shown
        assert shown["kwargs"] == {"phone": "+1555", "code": "***"}
        assert shown["unique"] is True
        assert "unique_key" not in shown


def test_a_postgres_password_is_not_printed() -> None:
    shown = cli_module.display_url("postgresql://app:s3cret@db.internal:5432/jobs?password=x2")
    assert "s3cret" not in shown
    assert "x2" not in shown
    assert shown.startswith("postgresql://app:***@db.internal:5432/jobs")
    assert cli_module.display_url("sqlite:///./taskward.db") == "sqlite:///./taskward.db"


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@cache.internal:6379/0?prefix=app",
        "rediss://default:s3cret@cache.internal:6380/1?prefix=app&ssl_cert_reqs=none",
        "redis://cache.internal:6379/0?password=s3cret&prefix=app",
        "unix:///run/redis.sock?db=0&password=s3cret",
    ],
)
def test_a_redis_password_is_not_printed(url: str) -> None:
    from taskward.backends.redis import RedisConfig

    shown = cli_module.display_url(url)
    assert "s3cret" not in shown
    assert "cache.internal" in shown or "redis.sock" in shown
    assert "s3cret" not in RedisConfig.from_url(url).safe_url  # what the backend's errors name


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stand in for uvicorn.run: the dashboard command returns instead of serving."""
    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    for name in ("TASKWARD_ADMIN_PASSWORD", "TASKWARD_ADMIN_TOKEN", "TASKWARD_APP"):
        monkeypatch.delenv(name, raising=False)
    return calls


@pytest.mark.parametrize("option", ["--password", "--token"])
def test_a_secret_on_the_command_line_is_warned_about(
    tmp_path: Path, served: list[Any], option: str
) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    result = CliRunner().invoke(cli, ["dashboard", "--url", url, option, "pw-4711"])
    assert result.exit_code == 0, result.output
    assert served, "the dashboard did not start"
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("warning:")
    assert option in warning
    env = "TASKWARD_ADMIN_PASSWORD" if option == "--password" else "TASKWARD_ADMIN_TOKEN"
    assert env in warning
    assert "pw-4711" not in result.output


def test_a_secret_from_the_environment_is_not_warned_about(
    tmp_path: Path, served: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKWARD_ADMIN_PASSWORD", "pw-4711")
    monkeypatch.setenv("TASKWARD_ADMIN_TOKEN", "tok-4711")
    result = CliRunner().invoke(cli, ["dashboard", "--url", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 0, result.output
    assert served
    assert result.stderr == ""


def test_the_password_help_steers_to_the_environment() -> None:
    command = typer.main.get_command(cli)
    dashboard = command.commands["dashboard"]  # type: ignore[attr-defined]
    for param in dashboard.params:
        if param.name in ("password", "token"):
            assert param.envvar in param.help
            assert "ps" in param.help
