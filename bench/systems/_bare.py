"""Store-limit baselines (not libraries): the smallest job loop on each store.

Every worker process loops: claim up to BATCH pending jobs in one statement/transaction, run
``mark(ts)`` for each (the job body every system runs), mark the batch done in one statement.
When nothing is pending it waits: a 1 ms read poll (SQLite), a 1 ms claim poll (PostgreSQL),
a blocking BRPOP (Redis). Enqueue = one autocommit INSERT / LPUSH per job; bulk = one
executemany in one transaction / one pipeline.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Callable

from harness.common import DATA_DIR, PG_DSN, REDIS_URL, mark

BATCH = 100
POLL_S = float(os.environ.get("BARE_POLL_S", "0.001"))
SQLITE_DB = DATA_DIR / "bare-sqlite.db"


def run_procs(target: Callable[..., None], args: tuple[object, ...], procs: int) -> None:
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=target, args=args) for _ in range(procs)]
    for child in children:
        child.start()
    for child in children:
        child.join()


# -- SQLite -----------------------------------------------------------------------------------
def sqlite_connect(sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(SQLITE_DB, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    return conn


def sqlite_reset(sync: str) -> None:
    from harness.common import clear_marks, remove_sqlite

    clear_marks()
    remove_sqlite(SQLITE_DB)
    conn = sqlite_connect(sync)
    conn.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT NOT NULL DEFAULT 'pending', "
        "payload TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX jobs_pending ON jobs(id) WHERE state = 'pending'")
    conn.close()


class SqliteProducer:
    def __init__(self, sync: str) -> None:
        self.conn = sqlite_connect(sync)

    def enqueue(self, i: int, ts: float) -> None:
        self.conn.execute("INSERT INTO jobs (payload) VALUES (?)", (json.dumps([i, ts]),))

    def enqueue_bulk(self, n: int) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO jobs (payload) VALUES (?)", [(json.dumps([i, 0.0]),) for i in range(n)]
        )
        self.conn.execute("COMMIT")


SQLITE_CLAIM = (
    "UPDATE jobs SET state = 'running' WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' "
    f"ORDER BY id LIMIT {BATCH}) RETURNING id, payload"
)


def sqlite_loop(sync: str) -> None:
    conn = sqlite_connect(sync)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(SQLITE_CLAIM).fetchall()
        conn.execute("COMMIT")
        if not rows:
            while (
                conn.execute("SELECT 1 FROM jobs WHERE state = 'pending' LIMIT 1").fetchone()
                is None
            ):
                time.sleep(POLL_S)
            continue
        for _, payload in rows:
            mark(json.loads(payload)[1])
        ids = [r[0] for r in rows]
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            f"UPDATE jobs SET state = 'done' WHERE id IN ({','.join('?' * len(ids))})", ids
        )
        conn.execute("COMMIT")


# -- PostgreSQL -------------------------------------------------------------------------------
PG_CLAIM = (
    "UPDATE bare_jobs SET state = 'running' WHERE id IN (SELECT id FROM bare_jobs "
    f"WHERE state = 'pending' ORDER BY id LIMIT {BATCH} FOR UPDATE SKIP LOCKED) "
    "RETURNING id, payload"
)


def pg_reset() -> None:
    from harness.common import clear_marks, pg_execute

    clear_marks()
    pg_execute(
        "CREATE TABLE IF NOT EXISTS bare_jobs (id bigserial PRIMARY KEY, "
        "state text NOT NULL DEFAULT 'pending', payload jsonb NOT NULL)",
        "CREATE INDEX IF NOT EXISTS bare_jobs_pending ON bare_jobs(id) WHERE state = 'pending'",
        "TRUNCATE bare_jobs RESTART IDENTITY",
    )


class PgProducer:
    def __init__(self) -> None:
        import psycopg

        self.conn = psycopg.connect(PG_DSN, autocommit=True)

    def enqueue(self, i: int, ts: float) -> None:
        self.conn.execute(
            "INSERT INTO bare_jobs (payload) VALUES (%s::jsonb)", (json.dumps([i, ts]),)
        )

    def enqueue_bulk(self, n: int) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO bare_jobs (payload) VALUES (%s::jsonb)",
                [(json.dumps([i, 0.0]),) for i in range(n)],
            )


def pg_loop() -> None:
    import psycopg

    conn = psycopg.connect(PG_DSN, autocommit=True)
    while True:
        rows = conn.execute(PG_CLAIM, prepare=True).fetchall()
        if not rows:
            time.sleep(POLL_S)
            continue
        for _, payload in rows:
            mark(payload[1])
        conn.execute(
            "UPDATE bare_jobs SET state = 'done' WHERE id = ANY(%s)", ([r[0] for r in rows],),
            prepare=True,
        )  # fmt: skip


# -- Redis ------------------------------------------------------------------------------------
KEY = "bare:jobs"


class RedisProducer:
    def __init__(self) -> None:
        import redis

        self.r = redis.Redis.from_url(REDIS_URL)

    def enqueue(self, i: int, ts: float) -> None:
        self.r.lpush(KEY, json.dumps([i, ts]))

    def enqueue_bulk(self, n: int) -> None:
        pipe = self.r.pipeline(transaction=False)
        for i in range(n):
            pipe.lpush(KEY, json.dumps([i, 0.0]))
        pipe.execute()


def redis_loop() -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    while True:
        items = r.rpop(KEY, BATCH)
        if not items:
            got = r.brpop([KEY], timeout=1)
            if not got:
                continue
            items = [got[1]]
        for raw in items:
            mark(json.loads(raw)[1])
