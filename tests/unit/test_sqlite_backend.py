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
from taskward.backends.sqlite import partitions as sqlite_partitions
from taskward.backends.sqlite import rows as sqlite_rows
from taskward.backends.sqlite import store as sqlite_store
from taskward.backends.sqlite.migrate import SQLITE_SQL, migrate_sqlite, split_sqlite_script
from taskward.backends.sqlite.waiters import Waiters
from taskward.errors import BackendUnavailable, InvalidOptions, NotSupported
from taskward.jobs import Job, JobFilter, JobState, JobUpdate, NewJob, WorkerInfo
from taskward.limits import MAX_KEYS_PER_CLAIM_EXTRA, PartitionBy, QueueLimits, Rate, take_turns

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
        "partition_key": "k",
    }
    assert tuple(values) == sqlite_rows.JOB_FIELDS
    assert sqlite_rows.build_job(tuple(values.values())) == Job(**values)
    with pytest.raises(ValueError, match=f"expected {len(values)}"):
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
        assert store.capabilities == {Capability.STORES_JOBS, Capability.WORKFLOWS}
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
async def test_processes_claiming_a_partitioned_queue_never_exceed_a_keys_limit(
    backend: SqliteBackend, db_path: Path
) -> None:
    """Each claim walks the keys and counts their running jobs under the write lock."""
    limits = QueueLimits(global_limit=2, partition_by=PartitionBy(kwarg="tenant"))
    await backend.set_queue_limits("default", limits)
    tenants = [f"t{n:02d}" for n in range(40)]
    await backend.insert(
        [new_job(kwargs={"tenant": t}) for t in tenants for _ in range(5)], now=NOW
    )
    url = f"sqlite:///{db_path}"
    claims = await asyncio.to_thread(run_together, CLAIMER, [url, "p1"], [url, "p2"], [url, "p3"])
    every = [job_id for claim in claims for job_id in claim]
    assert len(every) == len(set(every)) == 2 * len(tenants)
    per_key = [(await backend.partition_flow("default", t)).running for t in tenants]
    assert [len(running or ()) for running in per_key] == [2] * len(tenants)


RULE_RACER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from taskward.backends.sqlite import SqliteBackend
    from taskward.jobs import JobState, NewJob
    from taskward.limits import PartitionBy, QueueLimits

    async def main(url, setter):
        store = SqliteBackend(url)
        await store.open()
        print("ready", flush=True)
        sys.stdin.readline()
        now = datetime(2026, 1, 1, tzinfo=UTC)
        def job(n):
            return NewJob(task="t", queue="default", args=[n], kwargs={"tenant": f"t{n % 7}"},
                          priority=5, max_attempts=1, scheduled_at=now, state=JobState.PENDING)
        for n in range(0, 400, 4):  # one job alone (one statement), then a batch of three
            if setter and n == 200:  # while the other process goes on inserting
                rule = QueueLimits(partition_by=PartitionBy(kwarg="tenant"))
                await store.set_queue_limits("default", rule)
            await store.insert([job(n)], now=now)
            await store.insert([job(n + 1), job(n + 2), job(n + 3)], now=now)
        await store.close()
        print("[]", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2] == "setter"))
    """
)


@pytest.mark.integration
async def test_no_job_inserted_while_a_rule_is_set_misses_its_key(
    backend: SqliteBackend, db_path: Path
) -> None:
    """Inserts read the rule under the write lock that set_queue_limits re-keys under."""
    url = f"sqlite:///{db_path}"
    await asyncio.to_thread(run_together, RULE_RACER, [url, "setter"], [url, "inserter"])
    page = await backend.list_jobs(JobFilter(queue="default", per_page=1000))
    assert page.total_entries == 800
    assert all(job.partition_key == job.kwargs["tenant"] for job in page.items)


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


# -- limits, rate windows and holds ---------------------------------------------------------
def test_upgrading_a_0002_file_keeps_its_global_limits(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0003 rebuilds taskward_queue_limits (global_limit became nullable): rows survive."""
    import taskward.backends.sqlite.migrate as migrate_module

    migrations = load_migrations(SQLITE_SQL)
    conn = sqlite3.connect(db_path, isolation_level=None)
    with monkeypatch.context() as patch:
        patch.setattr(migrate_module, "load_migrations", lambda package: migrations[:2])
        assert migrate_sqlite(conn) == [1, 2]
    conn.execute(
        "INSERT INTO taskward_queue_limits (queue, global_limit, updated_at) VALUES ('q', 3, 1.5)"
    )
    assert 3 in migrate_sqlite(conn)
    columns = "queue, global_limit, rate_count, rate_period_ms, held_until, window_used, updated_at"
    found = conn.execute(f"SELECT {columns} FROM taskward_queue_limits").fetchall()
    assert found == [("q", 3, None, None, None, 0, 1.5)]
    conn.close()
    store = sqlite_store.SqliteStore(str(db_path), synchronous="FULL")
    try:
        assert store.queue_limits() == {"q": QueueLimits(global_limit=3)}
    finally:
        store.close()


def test_a_rate_is_stored_with_both_its_count_and_its_window() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate_sqlite(conn)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO taskward_queue_limits (queue, rate_count, updated_at) VALUES ('q', 5, 0)"
        )


@pytest.fixture
def store(db_path: Path) -> Any:
    store = sqlite_store.SqliteStore(str(db_path), synchronous="FULL")
    store.migrate()
    yield store
    store.close()


def job_statements(store: sqlite_store.SqliteStore) -> list[str]:
    """The statements on taskward's tables that ``store`` runs from now on, as traced."""
    traced: list[str] = []
    store._db().set_trace_callback(traced.append)
    return traced


def test_a_claim_without_a_rate_or_a_hold_in_force_is_one_statement(
    store: sqlite_store.SqliteStore,
) -> None:
    """A global limit that does not cap the claim, or a hold that has ended, keeps the claim on
    fetch_jobs alone."""
    store.insert([new_job(queue=q) for q in ("free", "limited", "limited")], NOW)
    store.set_queue_limits("limited", QueueLimits(global_limit=10))
    store.hold_queue("limited", NOW)  # ends at the claim's now: no longer in force
    traced = job_statements(store)
    for queue, count in (("free", 1), ("limited", 2)):
        traced.clear()
        jobs, retry_at = store.fetch(queue, 10, "w", NOW, LEASE)
        assert (len(jobs), retry_at) == (count, None)
        assert [s.split()[:2] for s in traced if "taskward_" in s] == [["UPDATE", "taskward_jobs"]]


def test_only_a_capped_claim_counts_its_wait(store: sqlite_store.SqliteStore) -> None:
    """A global limit that capped the claim: one UPDATE of the queue's row more (it looks for a
    pending job left), and no claim_flow; a capped claim that emptied the queue counts nothing."""
    store.insert([new_job(queue="q") for _ in range(4)], NOW)
    store.set_queue_limits("q", QueueLimits(global_limit=3))
    traced = job_statements(store)
    assert len(store.fetch("q", 2, "w", NOW, LEASE)[0]) == 2  # not capped: all it asked
    assert [s.split()[:2] for s in traced if "taskward_" in s] == [["UPDATE", "taskward_jobs"]]
    for claimed, waits in ((1, 1), (0, 2)):
        traced.clear()
        assert len(store.fetch("q", 10, "w", NOW, LEASE)[0]) == claimed
        assert [s.split()[:2] for s in traced if "taskward_" in s] == [
            ["UPDATE", "taskward_jobs"],
            ["UPDATE", "taskward_queue_limits"],
        ]
        assert store.queue_flow()["q"].waits == {"global_limit": waits}
    store.set_queue_limits("q", QueueLimits(global_limit=5))
    assert len(store.fetch("q", 10, "w", NOW, LEASE)[0]) == 1  # capped, but the queue ran out
    assert store.queue_flow()["q"].waits == {"global_limit": 2}
    store.set_queue_limits("q", QueueLimits())
    assert store.queue_flow() == {}  # the counts go with the row


def test_an_empty_claim_looks_for_a_rate_or_a_hold(store: sqlite_store.SqliteStore) -> None:
    traced = job_statements(store)
    assert store.fetch("free", 10, "w", NOW, LEASE) == ([], None)
    assert len([s for s in traced if "taskward_" in s]) == 2  # fetch_jobs, claim_flow


def test_a_claim_held_back_by_time_says_when_to_try_again(
    store: sqlite_store.SqliteStore,
) -> None:
    store.insert([new_job(queue=q) for q in ("held", "rated", "rated")], NOW)
    store.hold_queue("held", NOW + timedelta(seconds=7))
    store.set_queue_limits("rated", QueueLimits(rate_limit=Rate(1, 10.0)))
    assert store.fetch("held", 10, "w", NOW, LEASE) == ([], NOW + timedelta(seconds=7))
    jobs, retry_at = store.fetch("rated", 10, "w", NOW, LEASE)
    assert (len(jobs), retry_at) == (1, NOW + timedelta(seconds=10))  # NOW opens a window
    assert store.fetch("rated", 10, "w", NOW, LEASE) == ([], NOW + timedelta(seconds=10))
    store.pause_queue("rated")
    assert store.fetch("rated", 10, "w", NOW, LEASE) == ([], None)  # paused: nothing to wait for


def test_a_changed_window_length_starts_its_count_again(store: sqlite_store.SqliteStore) -> None:
    store.insert([new_job(queue="q") for _ in range(5)], NOW)
    store.set_queue_limits("q", QueueLimits(rate_limit=Rate(2, 10.0)))
    assert len(store.fetch("q", 10, "w", NOW, LEASE)[0]) == 2
    store.set_queue_limits("q", QueueLimits(rate_limit=Rate(2, 20.0)))  # windows numbered anew
    assert store.queue_flow()["q"].window is None
    assert len(store.fetch("q", 10, "w", NOW, LEASE)[0]) == 2


def test_rows_go_when_neither_limits_nor_a_hold_is_left(store: sqlite_store.SqliteStore) -> None:
    store.set_queue_limits("q", QueueLimits(rate_limit=Rate(2, 1.0)))
    store.hold_queue("q", NOW)
    store.set_queue_limits("q", QueueLimits())
    assert list(store.queue_flow()) == ["q"]  # the hold keeps the row, even one that ended
    store.hold_queue("q", None)
    assert store.queue_flow() == {}
    store.hold_queue("h", NOW)
    store.set_queue_limits("h", QueueLimits(global_limit=1))
    store.hold_queue("h", None)
    assert store.queue_flow()["h"].held_until is None
    store.set_queue_limits("h", QueueLimits())
    assert store.queue_flow() == {}


def test_finish_reports_only_queues_with_a_global_limit(store: sqlite_store.SqliteStore) -> None:
    """A finished job frees a slot of a global limit, never a start of a rate window."""
    store.insert([new_job(queue=q) for q in ("global", "rated", "free")], NOW)
    store.set_queue_limits("global", QueueLimits(global_limit=2))
    store.set_queue_limits("rated", QueueLimits(rate_limit=Rate(5, 1.0)))
    done = [
        JobUpdate(job_id=job.id, attempt=1, state=JobState.COMPLETED, at=NOW)
        for queue in ("global", "rated", "free")
        for job in store.fetch(queue, 1, "w", NOW, LEASE)[0]
    ]
    assert store.finish(done, "w") == ([True, True, True], ["global"])


async def test_a_timer_wakes_only_the_waiters_of_its_queue(db_path: Path) -> None:
    async def nothing_elsewhere() -> bool:
        return False

    waiters = Waiters(str(db_path), shared=False)
    waits = {
        queue: asyncio.create_task(
            waiters.wait([queue], timeout=60, poll_seconds=60, poll=nothing_elsewhere)
        )
        for queue in ("q", "other")
    }
    await asyncio.sleep(0)  # both are waiting
    waiters.wake_at("q", now=NOW, at=NOW)
    await asyncio.wait_for(waits["q"], timeout=5)
    assert not waits["other"].done()
    waiters.close()
    await asyncio.wait_for(waits["other"], timeout=5)


# -- partitioned queues ---------------------------------------------------------------------
BY_TENANT = QueueLimits(partition_by=PartitionBy(kwarg="tenant"))


def test_upgrading_a_0003_file_keeps_its_jobs_and_limits(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0004 adds columns in place: jobs and limits stay; the old jobs have no key."""
    import taskward.backends.sqlite.migrate as migrate_module

    migrations = load_migrations(SQLITE_SQL)
    conn = sqlite3.connect(db_path, isolation_level=None)
    with monkeypatch.context() as patch:
        patch.setattr(migrate_module, "load_migrations", lambda package: migrations[:3])
        assert migrate_sqlite(conn) == [1, 2, 3]
    conn.execute(
        "INSERT INTO taskward_jobs (id, task, queue, state, max_attempts, scheduled_at,"
        " inserted_at) VALUES (7, 't', 'q', 'pending', 1, 0, 0)"
    )
    conn.execute(
        "INSERT INTO taskward_queue_limits (queue, global_limit, updated_at) VALUES ('q', 3, 1.5)"
    )
    assert 4 in migrate_sqlite(conn)
    conn.close()
    store = sqlite_store.SqliteStore(str(db_path), synchronous="FULL")
    try:
        assert store.queue_limits() == {"q": QueueLimits(global_limit=3)}
        job = store.get(7)
        assert (job.queue, job.partition_key) == ("q", None)
    finally:
        store.close()


def test_one_plain_job_is_still_one_statement(store: sqlite_store.SqliteStore) -> None:
    """The single-job insert probes the queue's rule in its own statement; a queue with a rule
    gets its jobs keyed in a transaction instead."""
    store.set_queue_limits("parted", BY_TENANT)
    traced = job_statements(store)
    [plain] = store.insert([new_job(kwargs={"tenant": "a"})], NOW)
    assert plain.job.partition_key is None
    assert len([s for s in traced if "taskward_" in s]) == 1
    traced.clear()
    [keyed] = store.insert([new_job(queue="parted", kwargs={"tenant": "a"})], NOW)
    statements = [s.split()[0] for s in traced if "taskward_" in s]
    assert keyed.job.partition_key == "a"
    assert store.get(keyed.job.id).partition_key == "a"
    assert statements == [
        "INSERT",  # insert_job_next_id: stores nothing, the queue has a rule
        "SELECT",  # insert_rules, in the write transaction
        "SELECT",  # last_job_id
        "INSERT",
    ]


def test_stored_arguments_that_cannot_be_read_give_the_empty_key() -> None:
    rule = PartitionBy(kwarg="tenant")
    assert sqlite_rows.key_of_stored(rule, "[]", '{"tenant": "acme"}') == "acme"
    assert sqlite_rows.key_of_stored(rule, "not json", "{not json") == ""
    assert sqlite_rows.key_of_stored(PartitionBy(arg=1), '["a", [1, 2]]', "{}") == "[1,2]"


def test_a_new_rule_keys_waiting_jobs_that_cannot_be_read(store: sqlite_store.SqliteStore) -> None:
    [inserted] = store.insert([new_job(queue="q", kwargs={"tenant": "a"})], NOW)
    job = inserted.job
    store._db().execute("UPDATE taskward_jobs SET kwargs = 'garbage' WHERE id = ?", (job.id,))
    store.set_queue_limits("q", BY_TENANT)
    assert store._db().execute(
        "SELECT partition_key FROM taskward_jobs WHERE id = ?", (job.id,)
    ).fetchone() == ("",)


def cursor_of(store: sqlite_store.SqliteStore, queue: str) -> str | None:
    row = (
        store._db()
        .execute("SELECT partition_cursor FROM taskward_queue_limits WHERE queue = ?", (queue,))
        .fetchone()
    )
    return None if row is None else row[0]


def test_the_walk_goes_on_from_its_cursor_whatever_the_rule(
    store: sqlite_store.SqliteStore,
) -> None:
    store.set_queue_limits("q", BY_TENANT)
    store.insert([new_job(queue="q", kwargs={"tenant": t}) for t in "abc"], NOW)
    assert [j.partition_key for j in store.fetch("q", 1, "w", NOW, LEASE)[0]] == ["a"]
    assert cursor_of(store, "q") == "a"
    store.set_queue_limits(
        "q", QueueLimits(global_limit=5, partition_by=PartitionBy(kwarg="tenant"))
    )
    assert cursor_of(store, "q") == "a"  # the same rule: the same keys, the walk goes on
    store.set_queue_limits("q", QueueLimits(partition_by=PartitionBy(arg=0)))
    assert cursor_of(store, "q") == "a"  # other keys, but any key is a place to start


def test_a_claim_reads_what_it_visits_whatever_the_keys_and_the_backlog(
    store: sqlite_store.SqliteStore,
) -> None:
    """One statement walks the keys; a key read again only if its turns take more than its
    first job; so a claim of five jobs over five keys runs as many statements with 1,000 keys
    of 3 jobs as with 5 keys of 600."""
    counts = []
    for queue, keys, depth in (("few", 5, 600), ("many", 1000, 3)):
        store.set_queue_limits(queue, BY_TENANT)
        store.insert(
            [
                new_job(queue=queue, kwargs={"tenant": f"t{k:04d}"})
                for k in range(keys)
                for _ in range(depth)
            ],
            NOW,
        )
        traced = job_statements(store)
        jobs, _ = store.fetch(queue, 5, "w", NOW, LEASE)
        assert [j.partition_key for j in jobs] == [f"t{k:04d}" for k in range(5)]
        counts.append(len([s for s in traced if "taskward_" in s]))
        store._db().set_trace_callback(None)
    assert counts[0] == counts[1]


def test_a_claim_visits_at_most_its_share_of_blocked_keys(
    store: sqlite_store.SqliteStore,
) -> None:
    store.set_queue_limits("q", BY_TENANT)
    tenants = [f"t{k:04d}" for k in range(150)]
    store.insert([new_job(queue="q", kwargs={"tenant": t}) for t in tenants], NOW)
    for n, tenant in enumerate(tenants[:-1]):  # every key held but the last
        store.hold_queue("q", NOW + timedelta(seconds=10 + n), key=tenant)
    visits = 2 + MAX_KEYS_PER_CLAIM_EXTRA
    assert store.fetch("q", 2, "w", NOW, LEASE) == ([], NOW + timedelta(seconds=10))
    assert cursor_of(store, "q") == tenants[visits - 1]
    # The keys after the cursor (the last one gives a job), then from the first key again.
    jobs, retry_at = store.fetch("q", 2, "w", NOW, LEASE)
    assert [j.partition_key for j in jobs] == [tenants[-1]]
    assert retry_at == NOW + timedelta(seconds=10)
    assert cursor_of(store, "q") == tenants[visits - (len(tenants) - visits) - 1]


def test_a_walk_wraps_around_once(store: sqlite_store.SqliteStore) -> None:
    store.set_queue_limits("q", BY_TENANT)
    store.insert([new_job(queue="q", kwargs={"tenant": t}) for t in "abcd" for _ in range(3)], NOW)
    assert [j.partition_key for j in store.fetch("q", 3, "w", NOW, LEASE)[0]] == ["a", "b", "c"]
    # After c: d, then a, b and c again; no key twice in one claim's turn.
    jobs, _ = store.fetch("q", 6, "w", NOW, LEASE)
    assert [j.partition_key for j in jobs] == ["d", "a", "b", "c", "d", "a"]


def test_a_keys_hold_row_goes_when_released(store: sqlite_store.SqliteStore) -> None:
    def rows_of_keys() -> list[Any]:
        return store._db().execute("SELECT * FROM taskward_partition_keys").fetchall()

    store.hold_queue("q", NOW, key="a")
    store.hold_queue("q", NOW - timedelta(seconds=5), key="a")  # earlier: the later one stays
    assert rows_of_keys() == [("q", "a", NOW.timestamp(), None, 0)]
    store.hold_queue("q", None, key="a")
    assert rows_of_keys() == []
    assert store.queue_flow() == {}  # a key's hold is no row of the queue


def test_a_keys_window_is_counted_in_its_row(store: sqlite_store.SqliteStore) -> None:
    rate = Rate(2, 10.0)
    store.set_queue_limits("q", QueueLimits(rate_limit=rate, partition_by=PartitionBy(arg=0)))
    store.insert([new_job(queue="q", args=[t]) for t in "aab" for _ in range(2)], NOW)
    jobs, retry_at = store.fetch("q", 10, "w", NOW, LEASE)
    assert sorted(j.partition_key or "" for j in jobs) == ["a", "a", "b", "b"]
    assert retry_at == NOW + timedelta(seconds=10)  # a had more than its window allows
    window = rate.window_of(NOW)
    assert store.partition_flow("q", "a").used_in(window) == 2
    assert store.partition_flow("q", "b").used_in(window) == 2


@pytest.mark.parametrize("seed", range(40))
def test_turn_counts_are_what_take_turns_takes(seed: int) -> None:
    import random

    rng = random.Random(seed)
    caps = [rng.choice([0, 1, 1, 2, 3, 5, 8, 50]) for _ in range(rng.randint(0, 12))]
    wanted = rng.randint(1, 60)
    lists = [[(i, n) for n in range(cap)] for i, cap in enumerate(caps)]
    taken = take_turns(lists, wanted)
    expected = [sum(1 for i, _ in taken if i == key) for key in range(len(caps))]
    assert sqlite_partitions.turn_counts(caps, wanted) == expected


def test_a_key_with_fewer_jobs_than_its_turns_gives_them_to_the_others(
    store: sqlite_store.SqliteStore,
) -> None:
    """The candidates read first are each key's share; a key short of jobs makes the others
    read more, and the merge is still take_turns' over every key's whole claim order."""
    store.set_queue_limits("q", BY_TENANT)
    plan = {"a": 1, "b": 9, "c": 2, "d": 9}
    store.insert(
        [
            new_job(queue="q", args=[n], kwargs={"tenant": t})
            for t, n_jobs in plan.items()
            for n in range(n_jobs)
        ],
        NOW,
    )
    jobs, _ = store.fetch("q", 12, "w", NOW, LEASE)
    assert [(j.partition_key, j.args[0]) for j in jobs] == [
        ("a", 0), ("b", 0), ("c", 0), ("d", 0),
        ("b", 1), ("c", 1), ("d", 1),
        ("b", 2), ("d", 2),
        ("b", 3), ("d", 3),
        ("b", 4),
    ]  # fmt: skip


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
    sqlite_connection.register_functions(conn, lambda n: n)
    migrate_sqlite(conn)
    queries = load_queries(SQLITE_SQL)
    fill = {
        "milliseconds": 1,
        "level": "FULL",
        "where": "1",
        "order_by": "id",
        "rows": queries["insert_job_row"],
        "start": "partition_key > ?3",
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
        ("claim_jobs", (0.0, "w", 0.0, "default", 10), "taskward_jobs_claim"),
        ("key_candidates_after", ("q", "k", 0, 0.0, 1, 5), "taskward_jobs_partition"),
        ("key_running_ids", ("q", "k", 100), "taskward_jobs_partition_running"),
        ("claim_ids", (0.0, "w", 0.0, "[1, 2]"), "INTEGER PRIMARY KEY"),
        ("promote_due", (0.0,), "taskward_jobs_due"),
        ("expired_leases", (0.0, 10), "taskward_jobs_lease"),
        ("prune_state", ("completed", 0.0), "taskward_jobs_finished"),
    ],
)
def test_hot_queries_use_their_index(query: str, params: tuple[Any, ...], index: str) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    sqlite_connection.register_functions(conn, lambda n: n)
    migrate_sqlite(conn)
    plan = conn.execute(f"EXPLAIN QUERY PLAN {load_queries(SQLITE_SQL)[query]}", params).fetchall()
    assert index in " ".join(row[-1] for row in plan)


@pytest.mark.parametrize("start", ["partition_key > ?3", "partition_key IS NOT NULL"])
def test_the_walk_seeks_key_to_key(start: str) -> None:
    """Every step of walk_keys is a seek (no scan of a key's jobs, no sort of the backlog)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate_sqlite(conn)
    sql = load_queries(SQLITE_SQL)["walk_keys"].format(start=start)
    plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("q", 1, "a", 5, None))]
    assert [p for p in plan if "taskward_jobs_partition " in p + " "] == [
        "SEARCH taskward_jobs USING INDEX taskward_jobs_partition (queue=? AND partition_key>?)"
    ] * 2
    assert not [p for p in plan if p.startswith("SCAN") and p not in ("SCAN w",)]
    assert "SEARCH taskward_jobs USING INDEX taskward_jobs_partition_running" in " ".join(plan)
