"""SQLite-specific behaviour the contract suite cannot see: files, pragmas, URLs, processes,
migrations, query plans. (The shared semantics are in tests/contract/.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskward.backends import Capability, open_backend
from taskward.backends.sql import load_queries, parse_queries
from taskward.backends.sql.migrate import load_migrations
from taskward.backends.sqlite import SqliteBackend, parse_sqlite_url
from taskward.backends.sqlite import connection as sqlite_connection
from taskward.backends.sqlite import rows as sqlite_rows
from taskward.backends.sqlite import store as sqlite_store
from taskward.backends.sqlite.migrate import SQLITE_SQL, migrate_sqlite, split_sqlite_script
from taskward.errors import BackendUnavailable, InvalidOptions, NotSupported
from taskward.jobs import Job, JobFilter, JobState, JobUpdate, NewJob, WorkerInfo

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=60)


def new_job(**overrides: Any) -> NewJob:
    fields: dict[str, Any] = {
        "task": "tests:noop",
        "queue": "default",
        "args": [],
        "kwargs": {},
        "priority": 5,
        "max_attempts": 3,
        "scheduled_at": NOW,
        "state": JobState.PENDING,
    }
    fields.update(overrides)
    return NewJob(**fields)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "jobs.db"


@pytest.fixture
async def backend(db_path: Path) -> Any:
    store = SqliteBackend(f"sqlite:///{db_path}")
    await store.migrate()
    yield store
    await store.close()


# -- files, pragmas, lifecycle --------------------------------------------------------------
async def test_jobs_survive_close_and_reopen(db_path: Path) -> None:
    first = SqliteBackend(f"sqlite:///{db_path}")
    await first.migrate()
    [inserted] = await first.insert([new_job(args=[1, "é"], meta={"m": 1})], now=NOW)
    await first.close()

    second = SqliteBackend(f"sqlite:///{db_path}")
    try:
        assert await second.get(inserted.job.id) == inserted.job
    finally:
        await second.close()


async def test_wal_journal_mode_is_on(backend: SqliteBackend, db_path: Path) -> None:
    assert (await backend.pragmas())["journal_mode"] == "wal"
    with sqlite3.connect(db_path) as other:  # WAL is a property of the file: others see it too
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(("level", "code"), [("OFF", 0), ("normal", 1), ("FULL", 2), ("EXTRA", 3)])
async def test_synchronous_setting_is_honoured(db_path: Path, level: str, code: int) -> None:
    store = open_backend(f"sqlite:///{db_path}", synchronous=level)
    assert isinstance(store, SqliteBackend)
    try:
        await store.migrate()
        assert (await store.pragmas())["synchronous"] == code
        await store.insert([new_job(queue="q")], now=NOW)
        # A claim commits with NORMAL (no fsync of its own); the level is back right after it.
        (job,) = await store.fetch(queue="q", limit=1, worker_id="w", now=NOW, lease_until=LEASE)
        assert (await store.pragmas())["synchronous"] == code
        assert (await store.get(job.id)).state is JobState.RUNNING
    finally:
        await store.close()


def test_invalid_synchronous_level_is_rejected(db_path: Path) -> None:
    with pytest.raises(InvalidOptions, match="synchronous"):
        SqliteBackend(f"sqlite:///{db_path}", synchronous="SOMETIMES")


async def test_busy_timeout_is_set(backend: SqliteBackend) -> None:
    assert (await backend.pragmas())["busy_timeout"] >= 5000


async def test_methods_open_lazily_and_close_is_idempotent(db_path: Path) -> None:
    store = SqliteBackend(f"sqlite:///{db_path}")
    await store.migrate()  # no open() first
    [inserted] = await store.insert([new_job()], now=NOW)
    await store.close()
    await store.close()
    assert await store.get(inserted.job.id) == inserted.job  # reopens on use
    await store.open()
    await store.open()
    await store.close()


async def test_close_wakes_a_waiter(backend: SqliteBackend) -> None:
    waiter = asyncio.create_task(backend.wait_for_jobs(["default"], timeout=60))
    await asyncio.sleep(0)
    await backend.close()
    await asyncio.wait_for(waiter, timeout=5)


async def test_times_keep_their_microseconds(backend: SqliteBackend) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 999_999, tzinfo=UTC)
    [inserted] = await backend.insert([new_job(scheduled_at=when)], now=when)
    stored = await backend.get(inserted.job.id)
    assert stored.scheduled_at == stored.inserted_at == when
    assert stored.scheduled_at.utcoffset() == timedelta(0)


async def test_transactional_enqueue_is_not_supported(backend: SqliteBackend) -> None:
    with pytest.raises(NotSupported):
        await backend.insert([new_job()], now=NOW, connection=object())
    assert Capability.TRANSACTIONAL_ENQUEUE not in backend.capabilities
    assert {Capability.PERSISTENT, Capability.MULTI_PROCESS} <= backend.capabilities


async def test_ids_are_never_reused_after_the_newest_jobs_are_deleted(
    backend: SqliteBackend,
) -> None:
    inserted = await backend.insert([new_job(), new_job()], now=NOW)
    newest = inserted[-1].job.id
    assert await backend.delete(newest)
    [again] = await backend.insert([new_job()], now=NOW)
    assert again.job.id == newest + 1


async def test_large_batches_keep_order_ids_and_values(backend: SqliteBackend) -> None:
    count = 2 * sqlite_store.INSERT_CHUNK_ROWS + 7  # two many-row statements and a remainder
    batch = [new_job(args=[n], priority=n % 10, tags=("t",), meta={"n": n}) for n in range(count)]
    inserted = await backend.insert(batch, now=NOW)
    ids = [i.job.id for i in inserted]
    assert ids == list(range(ids[0], ids[0] + count))
    page = await backend.list_jobs(JobFilter(sort_by="id", per_page=1000))
    assert list(page.items) == [i.job for i in inserted]


async def test_a_batch_mixing_unique_and_plain_jobs_is_inserted_in_order(
    backend: SqliteBackend,
) -> None:
    batch = [
        new_job(args=[0]),
        new_job(args=[1], unique_key="k", unique_window=60),
        new_job(args=[2]),
        new_job(args=[3], unique_key="k", unique_window=60),
    ]
    inserted = await backend.insert(batch, now=NOW)
    assert [i.duplicate for i in inserted] == [False, False, False, True]
    assert inserted[3].job == inserted[1].job
    assert [i.job.id for i in inserted[:3]] == [1, 2, 3]
    assert [(await backend.get(n)).args for n in (1, 2, 3)] == [[0], [1], [2]]


@pytest.mark.parametrize("sort_by", ["completed_at", "-completed_at"])
async def test_jobs_without_a_sort_value_come_last_either_way(
    backend: SqliteBackend, sort_by: str
) -> None:
    inserted = await backend.insert([new_job() for _ in range(4)], now=NOW)
    claimed = await backend.fetch(
        queue="default", limit=2, worker_id="w", now=NOW, lease_until=LEASE
    )
    for n, job in enumerate(claimed):
        update = JobUpdate(
            job_id=job.id,
            attempt=1,
            state=JobState.COMPLETED,
            at=NOW + timedelta(seconds=n),
        )
        assert await backend.finish([update], worker_id="w") == [True]
    page = await backend.list_jobs(JobFilter(sort_by=sort_by))
    done = [j.id for j in sorted(claimed, key=lambda j: j.id)]
    waiting = sorted(i.job.id for i in inserted if i.job.id not in done)
    if sort_by.startswith("-"):
        done.reverse()
        waiting.reverse()
    assert [j.id for j in page.items] == done + waiting


def test_job_builder_matches_the_dataclass_constructor() -> None:
    values = {
        "id": 7,
        "task": "t",
        "queue": "q",
        "args": [1],
        "kwargs": {"a": 1},
        "state": JobState.RUNNING,
        "priority": 2,
        "attempt": 1,
        "max_attempts": 3,
        "scheduled_at": NOW,
        "inserted_at": NOW,
        "attempted_at": NOW,
        "completed_at": None,
        "cancelled_at": None,
        "discarded_at": None,
        "attempted_by": "w",
        "lease_until": LEASE,
        "errors": (),
        "result": None,
        "progress": {"p": 1},
        "unique_key": "u",
        "tags": ("x",),
        "meta": {"m": 1},
        "depends_on": (1, 2),
        "timeout": 1.5,
        "cancel_requested": True,
    }
    assert tuple(values) == sqlite_rows.JOB_FIELDS
    assert sqlite_rows.build_job(tuple(values.values())) == Job(**values)
    with pytest.raises(ValueError, match="expected 26"):
        sqlite_rows.build_job((1, 2))


# -- URLs -----------------------------------------------------------------------------------
def test_relative_url_is_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_sqlite_url("sqlite:///data/jobs.db") == str(tmp_path / "data" / "jobs.db")
    assert parse_sqlite_url("sqlite:///./jobs.db") == str(tmp_path / "jobs.db")


def test_absolute_url_has_four_slashes(tmp_path: Path) -> None:
    assert parse_sqlite_url(f"sqlite:///{tmp_path}/jobs.db") == str(tmp_path / "jobs.db")
    assert parse_sqlite_url("SQLite:////var/lib/app/jobs.db") == "/var/lib/app/jobs.db"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/jobs.db", "sqlite:///dir/", "memory://"]
)
def test_invalid_urls_are_rejected(url: str) -> None:
    with pytest.raises(InvalidOptions, match="SQLite URL"):
        parse_sqlite_url(url)


async def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "jobs.db"
    store = SqliteBackend(f"sqlite:///{path}")
    await store.migrate()
    await store.close()
    assert path.is_file()


async def test_in_memory_database_works_but_is_not_persistent() -> None:
    store = SqliteBackend("sqlite:///:memory:")
    try:
        await store.migrate()
        [inserted] = await store.insert([new_job()], now=NOW)
        assert await store.get(inserted.job.id) == inserted.job
        assert store.capabilities == {Capability.STORES_JOBS}
    finally:
        await store.close()


async def test_unopenable_path_is_backend_unavailable(tmp_path: Path) -> None:
    store = SqliteBackend(f"sqlite:///{tmp_path}/folder")
    (tmp_path / "folder").mkdir()  # a directory where the file should be
    with pytest.raises(BackendUnavailable, match="folder") as caught:
        await store.open()
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    await store.close()


async def test_locked_database_is_backend_unavailable(
    backend: SqliteBackend, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await backend.close()
    monkeypatch.setattr(sqlite_connection, "BUSY_TIMEOUT_MS", 50)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendUnavailable, match="locked") as caught:
            await backend.insert([new_job()], now=NOW)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await backend.insert([new_job()], now=NOW)  # usable again once the lock is gone


# -- wake-ups across connections ------------------------------------------------------------
async def test_wait_wakes_on_a_job_inserted_by_another_connection(db_path: Path) -> None:
    waiting, inserting = (
        SqliteBackend(f"sqlite:///{db_path}"),
        SqliteBackend(f"sqlite:///{db_path}"),
    )
    try:
        await waiting.migrate()
        assert (
            await waiting.fetch(queue="q", limit=1, worker_id="w", now=NOW, lease_until=LEASE) == []
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter = asyncio.create_task(waiting.wait_for_jobs(["q"], timeout=30))
        await inserting.insert([new_job(queue="q")], now=NOW)
        await asyncio.wait_for(waiter, timeout=5)
        assert loop.time() - started < 2
    finally:
        await waiting.close()
        await inserting.close()


async def test_wait_ignores_commits_that_bring_no_pending_job(db_path: Path) -> None:
    waiting, other = SqliteBackend(f"sqlite:///{db_path}"), SqliteBackend(f"sqlite:///{db_path}")
    try:
        await waiting.migrate()
        await other.insert([new_job(queue="elsewhere")], now=NOW)
        await waiting.fetch(queue="q", limit=1, worker_id="w", now=NOW, lease_until=LEASE)
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiter = asyncio.create_task(waiting.wait_for_jobs(["q"], timeout=0.3))
        info = WorkerInfo(
            id="w2", hostname="h", pid=1, queues={"q": 1}, started_at=NOW, heartbeat_at=NOW
        )
        await other.record_worker(info)
        await other.insert([new_job(queue="elsewhere")], now=NOW)
        await asyncio.wait_for(waiter, timeout=5)
        assert loop.time() - started >= 0.25
    finally:
        await waiting.close()
        await other.close()


INSERT_FROM_ANOTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from taskward.backends.sqlite import SqliteBackend
    from taskward.jobs import JobState, NewJob

    async def main():
        backend = SqliteBackend(sys.argv[1])
        now = datetime.now(UTC)
        job = NewJob(task="t", queue=sys.argv[2], args=[], kwargs={}, priority=0,
                     max_attempts=1, scheduled_at=now, state=JobState.PENDING)
        await backend.insert([job], now=now)
        await backend.close()

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("queue", ["q", "other"])
async def test_a_waiter_is_woken_by_a_datagram_from_another_process(
    db_path: Path, queue: str
) -> None:
    # The fallback poll is 30 s here: a wake-up within seconds came through the WakeChannel,
    # and only for a queue the waiter waits on.
    waiting = SqliteBackend(f"sqlite:///{db_path}")
    waiting.poll_seconds = 30
    try:
        await waiting.migrate()
        await waiting.fetch(queue="q", limit=1, worker_id="w", now=NOW, lease_until=LEASE)
        waiter = asyncio.create_task(waiting.wait_for_jobs(["q"], timeout=30))
        await asyncio.sleep(0.05)  # the waiter's socket is bound on its first wait
        assert waiting._waiters.channel.listening
        cmd = [sys.executable, "-c", INSERT_FROM_ANOTHER_PROCESS, f"sqlite:///{db_path}", queue]
        proc = await asyncio.create_subprocess_exec(*cmd)
        assert await proc.wait() == 0
        if queue == "q":
            await asyncio.wait_for(waiter, timeout=10)
        else:
            await asyncio.sleep(0.5)
            assert not waiter.done()
            waiter.cancel()
    finally:
        await waiting.close()
    assert not waiting._waiters.channel.directory.exists()  # the last listener removed the folder


async def test_a_sender_removes_the_sockets_of_dead_processes(db_path: Path) -> None:
    import socket

    sender = SqliteBackend(f"sqlite:///{db_path}")
    try:
        await sender.migrate()
        folder = sender._waiters.channel.directory
        folder.mkdir(mode=0o700)
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dead.bind(str(folder / "1-dead.sock"))
        dead.close()  # bound, never unlinked: what a SIGKILLed worker leaves behind
        await sender.insert([new_job(queue="q")], now=NOW)
        assert list(folder.iterdir()) == []
    finally:
        await sender.close()
        folder.rmdir()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
async def test_a_folder_of_another_user_gets_no_datagram(db_path: Path) -> None:
    import socket

    sender = SqliteBackend(f"sqlite:///{db_path}")
    folder = sender._waiters.channel.directory
    folder.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(str(folder / "1-stranger.sock"))
        listener.setblocking(False)
        os.chown(folder, 65534, 65534)  # nobody's: planted in a shared /tmp
        await sender.migrate()
        await sender.insert([new_job(queue="secret-queue")], now=NOW)
        with pytest.raises(BlockingIOError):
            listener.recv(100)
        assert not sender._waiters.channel.enabled
    finally:
        listener.close()
        await sender.close()
        (folder / "1-stranger.sock").unlink()
        folder.rmdir()


# -- several OS processes -------------------------------------------------------------------
CLAIMER = textwrap.dedent(
    """
    import asyncio, json, sys
    from datetime import UTC, datetime, timedelta
    from taskward.backends.sqlite import SqliteBackend

    async def main(url, name):
        store = SqliteBackend(url)
        await store.open()
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        claimed, now = [], datetime(2026, 1, 1, tzinfo=UTC)
        while True:
            jobs = await store.fetch(queue="default", limit=7, worker_id=name, now=now,
                                     lease_until=now + timedelta(seconds=60))
            if not jobs:
                break
            claimed += [job.id for job in jobs]
        await store.close()
        print(json.dumps(claimed), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)

MIGRATOR = textwrap.dedent(
    """
    import asyncio, sys
    from taskward.backends.sqlite import SqliteBackend

    async def main(url):
        store = SqliteBackend(url)
        await store.migrate()
        await store.close()

    asyncio.run(main(sys.argv[1]))
    """
)

UNIQUE_INSERTER = textwrap.dedent(
    """
    import asyncio, json, sys
    from datetime import UTC, datetime
    from taskward.backends.sqlite import SqliteBackend
    from taskward.jobs import JobState, NewJob

    async def main(url):
        store = SqliteBackend(url)
        await store.open()
        print("ready", flush=True)
        sys.stdin.readline()
        now = datetime(2026, 1, 1, tzinfo=UTC)
        job = NewJob(task="t", queue="default", args=[], kwargs={}, priority=5, max_attempts=1,
                     scheduled_at=now, state=JobState.PENDING, unique_key="k", unique_window=60)
        results = []
        for _ in range(5):
            [inserted] = await store.insert([job], now=now)
            results.append([inserted.job.id, inserted.duplicate])
        await store.close()
        print(json.dumps(results), flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


def run_together(script: str, *argv_lists: list[str]) -> list[Any]:
    """Start one process per argv list, release them at once, return each one's JSON output."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for argv in argv_lists
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        outputs = [proc.communicate("go\n", timeout=60)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill() if proc.poll() is None else None
    assert [proc.returncode for proc in procs] == [0] * len(procs)
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


@pytest.mark.integration
async def test_processes_claiming_concurrently_never_share_a_job(
    backend: SqliteBackend, db_path: Path
) -> None:
    inserted = await backend.insert([new_job(args=[n]) for n in range(1500)], now=NOW)
    url = f"sqlite:///{db_path}"
    claims = await asyncio.to_thread(run_together, CLAIMER, [url, "p1"], [url, "p2"], [url, "p3"])
    every = [job_id for claim in claims for job_id in claim]
    assert len(every) == len(set(every)) == 1500
    assert set(every) == {i.job.id for i in inserted}
    running = await backend.stats()
    assert running.counts["default"] == {JobState.RUNNING: 1500}


@pytest.mark.integration
async def test_processes_inserting_one_unique_job_make_one_job(
    backend: SqliteBackend, db_path: Path
) -> None:
    url = f"sqlite:///{db_path}"
    results = await asyncio.to_thread(run_together, UNIQUE_INSERTER, [url], [url], [url], [url])
    answers = [answer for result in results for answer in result]
    assert len({job_id for job_id, _ in answers}) == 1
    assert sum(not duplicate for _, duplicate in answers) == 1
    assert (await backend.stats()).counts["default"] == {JobState.PENDING: 1}


@pytest.mark.integration
def test_processes_migrating_at_once_apply_each_migration_once(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATOR, url]) for _ in range(4)]
    assert [proc.wait(timeout=60) for proc in procs] == [0] * 4
    with sqlite3.connect(db_path) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM taskward_migrations")]
    assert versions == [m.version for m in load_migrations(SQLITE_SQL)]


# -- cancelling at any moment -------------------------------------------------------------
CANCEL_DELAYS = [0, 0.001, 0.005, 0.02]


def new_database_threads(before: set[threading.Thread], *, wait: float = 5.0) -> list[str]:
    """Names of the taskward database threads started since ``before`` still alive after up to
    ``wait`` seconds (a closed backend's thread ends on its own, just after ``close``)."""
    started = [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith("taskward") and thread not in before
    ]
    deadline = time.monotonic() + wait
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread.name for thread in started if thread.is_alive()]


@pytest.mark.parametrize("delay", CANCEL_DELAYS)
async def test_an_open_cancelled_at_any_moment_leaves_no_connection_nor_thread(
    db_path: Path, delay: float
) -> None:
    before = set(threading.enumerate())
    backend = SqliteBackend(f"sqlite:///{db_path}")
    opening = asyncio.create_task(backend.open())
    await asyncio.sleep(delay)
    opening.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await opening
    if not opening.cancelled():
        await backend.close()  # the open was done before the cancel: closing is the caller's
    assert new_database_threads(before) == []
    assert sorted(os.listdir(db_path.parent)) in ([], ["jobs.db"])  # no -wal: no connection open


CANCEL_A_TASK = textwrap.dedent(
    """
    import asyncio, contextlib, json, sys, threading, time
    from taskward import TaskManager

    async def main(url, what, delay):
        tw = TaskManager(url)
        try:
            if what == "worker":
                running = tw.run_worker(install_signal_handlers=False)
            else:
                running = tw.drain(with_scheduled=True)
            task = asyncio.create_task(running)
            await asyncio.sleep(delay)
            cancelled_at = time.monotonic()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await tw.close()
        return time.monotonic() - cancelled_at

    took = asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    threads = [t for t in threading.enumerate() if t.name.startswith("taskward")]
    deadline = time.monotonic() + 5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    print(json.dumps({"took": took, "alive": [t.name for t in threads if t.is_alive()]}))
    """
)


@pytest.mark.integration
@pytest.mark.parametrize("delay", CANCEL_DELAYS)
@pytest.mark.parametrize("what", ["worker", "drain"])
def test_a_worker_or_drain_cancelled_at_any_moment_ends_promptly_and_leaves_no_thread(
    db_path: Path, what: str, delay: float
) -> None:
    """``run_worker`` (or ``drain``) started as a task on a new file and cancelled while it
    opens, migrates or runs: the task ends within seconds (a hard timeout kills the process
    otherwise) and, once the manager is closed, no database thread is left."""
    cmd = [sys.executable, "-c", CANCEL_A_TASK, f"sqlite:///{db_path}", what, str(delay)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["took"] < 3.0
    assert answer["alive"] == []


# -- migrations and schema ------------------------------------------------------------------
def normalized_schema(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """sqlite_master without SQLite's own objects and the migration bookkeeping, with the
    SQL text stripped of comments and whitespace differences."""
    found = conn.execute(
        "SELECT type, name, sql FROM sqlite_master"
        " WHERE name NOT LIKE 'sqlite_%' AND name <> 'taskward_migrations' ORDER BY type, name"
    ).fetchall()
    return [(kind, name, normalize_sql(sql)) for kind, name, sql in found]


def normalize_sql(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"\s+", " ", sql).strip()
    return re.sub(r"\s*([(),])\s*", r"\1", sql).lower()


def test_upgrading_from_every_earlier_version_gives_the_fresh_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The migrations are the one source of the schema (no schema.sql repeats them): a file
    migrated by an older release (up to each version in turn), then upgraded, ends with
    exactly the schema of a file migrated in one go."""
    import taskward.backends.sqlite.migrate as migrate_module

    migrations = load_migrations(SQLITE_SQL)
    versions = [m.version for m in migrations]
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate_sqlite(fresh) == versions
    expected = normalized_schema(fresh)
    assert len(expected) >= 10
    for done in range(len(migrations)):
        older = sqlite3.connect(":memory:", isolation_level=None)
        with monkeypatch.context() as patch:
            older_release = migrations[:done]
            patch.setattr(migrate_module, "load_migrations", lambda package, m=older_release: m)
            assert migrate_sqlite(older) == versions[:done]
        assert migrate_sqlite(older) == versions[done:]
        assert normalized_schema(older) == expected


def test_migrating_twice_is_a_no_op(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    first = migrate_sqlite(conn)
    schema = normalized_schema(conn)
    applied = conn.execute("SELECT * FROM taskward_migrations").fetchall()
    assert first
    assert migrate_sqlite(conn) == []
    assert normalized_schema(conn) == schema
    assert conn.execute("SELECT * FROM taskward_migrations").fetchall() == applied
    conn.close()


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations(SQLITE_SQL)]
    assert versions == list(range(1, len(versions) + 1))


def test_a_failing_migration_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    import taskward.backends.sqlite.migrate as migrate_module
    from taskward.backends.sql.migrate import Migration

    broken = (Migration(version=1, name="broken", sql="CREATE TABLE a (x);\nNOT SQL;\n"),)
    monkeypatch.setattr(migrate_module, "load_migrations", lambda dialect: broken)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate_sqlite(conn)
    assert not conn.in_transaction
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_split_script_keeps_trigger_bodies_whole() -> None:
    script = """
    -- a comment
    CREATE TABLE t (x);

    CREATE TRIGGER tr AFTER DELETE ON t BEGIN
        DELETE FROM t WHERE x = old.x;
    END;
    """
    statements = split_sqlite_script(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER")
    assert statements[1].endswith("END;")


# -- queries.sql ----------------------------------------------------------------------------
def test_queries_are_parsed_by_name() -> None:
    queries = parse_queries(
        "-- header\n\n-- name: one\n-- doc\nSELECT 1;\n\n-- name: two\nSELECT\n  2;\n"
    )
    assert queries == {"one": "SELECT 1", "two": "SELECT\n  2"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "twice"),
        ("-- name: a\n-- only a comment\n", "no SQL"),
        ("SELECT 1;\n-- name: a\nSELECT 2;", "before the first"),
    ],
)
def test_malformed_query_files_are_rejected(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_queries(text)


def test_load_queries_is_cached_and_returns_a_copy() -> None:
    first = load_queries(SQLITE_SQL)
    first["fetch_jobs"] = "tampered"
    assert load_queries(SQLITE_SQL)["fetch_jobs"].startswith("UPDATE taskward_jobs")


def parameter_count(sql: str) -> int:
    numbered = [int(n) for n in re.findall(r"\?(\d+)", sql)]
    return max(numbered) if numbered else len(re.findall(r"\?(?!\d)", sql))


def test_every_query_compiles_against_the_schema() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate_sqlite(conn)
    queries = load_queries(SQLITE_SQL)
    fill = {
        "milliseconds": 1,
        "level": "FULL",
        "where": "1",
        "order_by": "id",
        "rows": queries["insert_job_row"],
    }
    skip = {"begin_immediate", "begin_read", "commit", "rollback", "insert_job_row"}
    for name, sql in queries.items():
        if name in skip or name.startswith(("filter_", "set_")):
            continue
        text = sql.format(**fill) if "{" in sql else sql
        conn.execute(f"EXPLAIN {text}", [None] * parameter_count(text))


@pytest.mark.parametrize(
    ("query", "params", "index"),
    [
        ("fetch_jobs", (0.0, "w", 0.0, "default", 10), "taskward_jobs_claim"),
        ("promote_due", (0.0,), "taskward_jobs_due"),
        ("expired_leases", (0.0, 10), "taskward_jobs_lease"),
        ("prune_state", ("completed", 0.0), "taskward_jobs_finished"),
    ],
)
def test_hot_queries_use_their_index(query: str, params: tuple[Any, ...], index: str) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate_sqlite(conn)
    plan = conn.execute(f"EXPLAIN QUERY PLAN {load_queries(SQLITE_SQL)[query]}", params).fetchall()
    assert index in " ".join(row[-1] for row in plan)
