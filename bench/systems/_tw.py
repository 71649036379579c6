"""taskward as a measured system: one module per (backend, completion mode) builds on this.

Two completion modes:

* ``mark``: the job body is ``await amark(ts)``, the same Redis round trip as every peer's job,
  and completion is detected by the Redis counter: these are the comparable figures.
* ``own``: the job body does no I/O (it returns its start latency ``start - ts`` as the job's
  result); completion is detected in taskward's own store (count of completed rows, polled every
  10 ms by the driver), the steady rate comes from the store's timestamps (first claim
  ``attempted_at`` -> last ``completed_at``) and latencies from the stored results: taskward's
  uncapped figures.

Worker: the ``taskward worker`` CLI, ``--log-level WARNING`` (its default INFO logs two lines
per job), ``--processes P``: above one process, the CLI's own supervisor starts them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from typing import Any

from harness.common import (
    DATA_DIR,
    MARK,
    PG_DSN,
    REDIS_URL,
    amark,
    clear_marks,
    flush_queue_redis,
    remove_sqlite,
)

from taskward import TaskManager

SQLITE_DB = DATA_DIR / "taskward.db"
SQLITE_URL = f"sqlite:///{SQLITE_DB}"
# Redis: a fresh prefix= per driver process (one (system, phase, run)); its worker processes
# inherit it through the environment. reset() also flushes the queues' DB, as for the peers.
REDIS_PREFIX = os.environ.setdefault(
    "BENCH_TW_REDIS_PREFIX", f"bench-{os.getpid()}-{time.time_ns() // 1_000_000 % 10**9}"
)
REDIS_TW_URL = f"{REDIS_URL}?prefix={REDIS_PREFIX}"
# Slots per worker process; BENCH_TW_CONCURRENCY tries other settings (the results name it).
CONCURRENCY = int(os.environ.get("BENCH_TW_CONCURRENCY", "50"))


def build(url: str, mode: str) -> tuple[TaskManager, Any]:
    manager = TaskManager(url)
    if mode == "mark":

        async def noop(i: int, ts: float = 0.0) -> None:
            await amark(ts)

    else:

        async def noop(i: int, ts: float = 0.0) -> float | None:
            start = time.time()
            return start - ts if ts else None

    return manager, manager.task(name="noop")(noop)


def worker_argv(app: str, procs: int) -> list[str]:
    return [
        sys.executable, "-m", "taskward", "worker", "--app", app, "-q",
        f"default={CONCURRENCY}", "--log-level", "WARNING", "--processes", str(procs),
    ]  # fmt: skip


def config(backend: str, procs: int, mode: str) -> str:
    how = (
        (
            "job body = mark() (a 16-byte file append), completion by the mark file's size"
            if MARK == "file"
            else "job body = Redis mark(), completion by the Redis counter"
        )
        if mode == "mark"
        else "job body does no I/O, completion/timestamps/latency read from taskward's own store"
    )
    loop = os.environ.get("TASKWARD_LOOP", "auto")
    return (
        f"`taskward worker -q default={CONCURRENCY} --log-level WARNING --processes {procs}` "
        f"(concurrency {CONCURRENCY} each, --loop {loop}), defaults "
        f"otherwise ({backend}); {how}"
    )


class Producer:
    """The async producer side for the driver: Task.enqueue / Task.enqueue_many."""

    def __init__(self, manager: TaskManager, task: Any) -> None:
        self.manager, self.task = manager, task

    async def aopen(self) -> None:
        await self.manager.open()

    async def aenqueue(self, i: int, ts: float = 0.0) -> None:
        await self.task.enqueue(i, ts)

    async def aenqueue_bulk(self, n: int) -> None:
        await self.task.enqueue_many([[i, 0.0] for i in range(n)])

    async def aclose(self) -> None:
        await self.manager.close()


class SyncProducer:
    """The sync producer side: Task.enqueue_sync (inserts from this thread on SQLite and
    PostgreSQL, as a Django view or a script would) and manager.sync.enqueue_many."""

    def __init__(self, manager: TaskManager, task: Any) -> None:
        self.manager, self.task = manager, task

    def open(self) -> None:
        self.manager.sync.open()

    def enqueue(self, i: int, ts: float = 0.0) -> None:
        self.task.enqueue_sync(i, ts)

    def enqueue_bulk(self, n: int) -> None:
        self.manager.sync.enqueue_many(self.task, [[i, 0.0] for i in range(n)])

    def close(self) -> None:
        self.manager.sync.shutdown()


# -- resets -----------------------------------------------------------------------------------
def reset_sqlite() -> None:
    clear_marks()
    remove_sqlite(SQLITE_DB)

    async def migrate() -> None:
        async with TaskManager(SQLITE_URL):
            pass

    asyncio.run(migrate())


def reset_postgres() -> None:
    clear_marks()

    async def migrate() -> None:
        async with TaskManager(PG_DSN):
            pass

    asyncio.run(migrate())
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE taskward_jobs, taskward_unique_keys, taskward_workers, taskward_leases "
            "RESTART IDENTITY CASCADE"
        )


def reset_redis() -> None:
    clear_marks()
    flush_queue_redis()

    async def migrate() -> None:
        async with TaskManager(REDIS_TW_URL):
            pass

    asyncio.run(migrate())


# -- completion read from the store (own mode) -----------------------------------------------
COUNT = "SELECT count(*) FROM taskward_jobs WHERE state = 'completed'"
SPAN = (
    "SELECT count(*), min(attempted_at), max(completed_at) FROM taskward_jobs "
    "WHERE state = 'completed'"
)
RESULTS = "SELECT result FROM taskward_jobs WHERE state = 'completed' AND result IS NOT NULL"


class SqliteStore:
    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None

    def _c(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = sqlite3.connect(f"file:{SQLITE_DB}?mode=ro", uri=True, timeout=30)
        return self.conn

    def done(self) -> int:
        return int(self._c().execute(COUNT).fetchone()[0])

    def first_last(self) -> tuple[float | None, float | None]:
        _, first, last = self._c().execute(SPAN).fetchone()
        return first, last

    def latencies(self) -> list[float]:
        values = (json.loads(r[0]) for r in self._c().execute(RESULTS))
        return [float(v) for v in values if v is not None]


class PostgresStore:
    def __init__(self) -> None:
        self.conn: Any = None

    def _c(self) -> Any:
        if self.conn is None:
            import psycopg

            self.conn = psycopg.connect(PG_DSN, autocommit=True)
        return self.conn

    def done(self) -> int:
        return int(self._c().execute(COUNT).fetchone()[0])

    def backend_pid(self) -> int:
        """The server process of this polling connection (left out of the CPU per job)."""
        return int(self._c().info.backend_pid)

    def first_last(self) -> tuple[float | None, float | None]:
        _, first, last = self._c().execute(SPAN).fetchone()
        return (first.timestamp() if first else None), (last.timestamp() if last else None)

    def latencies(self) -> list[float]:
        return [float(r[0]) for r in self._c().execute(RESULTS) if r[0] is not None]


class RedisStore:
    """Own-mode completion on Redis: the size of the store's completed index; first claim =
    the lowest completed id's ``attempted_at`` (jobs are claimed in id order), last = the
    highest completion time (the index's score); latencies from the results."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.base = "{" + REDIS_PREFIX + "}"

    def _c(self) -> Any:
        if self.conn is None:
            import redis

            self.conn = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        return self.conn

    def done(self) -> int:
        return int(self._c().zcard(f"{self.base}:done:completed"))

    def first_last(self) -> tuple[float | None, float | None]:
        key = f"{self.base}:done:completed"
        ids = self._c().zrange(key, 0, -1)
        if not ids:
            return None, None
        first_id = min(int(i) for i in ids)
        attempted = self._c().hget(f"{self.base}:job:{first_id}", "attempted_at")
        last = self._c().zrange(key, -1, -1, withscores=True)
        return int(attempted) / 1e6, last[0][1] / 1e6

    def latencies(self) -> list[float]:
        ids = self._c().zrange(f"{self.base}:done:completed", 0, -1)
        pipe = self._c().pipeline(transaction=False)
        for i in ids:
            pipe.hget(f"{self.base}:job:{i}", "result")
        values = (json.loads(r) for r in pipe.execute() if r is not None)
        return [float(v) for v in values if v is not None]
