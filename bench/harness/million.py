"""Listing and statistics with 1,000,000 jobs in the table (taskward, SQLite and PostgreSQL).

    python -m harness.million load sqlite|postgres          # once: bulk-load the rows
    python -m harness.million measure sqlite|postgres --run K --out results/raw.jsonl

``load`` lets taskward create its schema (migrate), then fills ``taskward_jobs`` with one
INSERT ... SELECT over a generated series inside the database (no per-row round trips): 4
queues, 4 tasks, states 94% completed, 2% failed, 2% pending, 1% scheduled, 1% cancelled,
timestamps spread over the last 7 days. PostgreSQL gets a VACUUM ANALYZE afterwards (what
autovacuum does soon after such an insert-only load: statistics and the visibility map); the
SQLite file is left as taskward leaves it (no ANALYZE).

``measure`` runs in a fresh process: it opens a TaskManager on the loaded store and times, via
the public API, each query once cold (first call of the process) and then REPEAT times warm
(median reported): the first page of the default listing (newest first, 50 per page), failed
jobs, pending jobs of one queue, and get_statistics().
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from harness.common import DATA_DIR, PG_DSN, remove_sqlite

ROWS = 1_000_000
REPEAT = 5
SQLITE_DB = DATA_DIR / "million.db"
SQLITE_URL = f"sqlite:///{SQLITE_DB}"

STATE_SQL = (
    "CASE WHEN {v} % 100 < 94 THEN 'completed' WHEN {v} % 100 < 96 THEN 'failed' "
    "WHEN {v} % 100 < 98 THEN 'pending' WHEN {v} % 100 < 99 THEN 'scheduled' ELSE 'cancelled' END"
)
QUEUES = ("default", "emails", "media", "reports")


def url(backend: str) -> str:
    return SQLITE_URL if backend == "sqlite" else PG_DSN


async def _migrate(backend: str) -> None:
    from taskward import TaskManager

    async with TaskManager(url(backend)):
        pass


def load_sqlite(rows: int) -> None:
    remove_sqlite(SQLITE_DB)
    asyncio.run(_migrate("sqlite"))
    now = time.time()
    conn = sqlite3.connect(SQLITE_DB, isolation_level=None)
    state = STATE_SQL.format(v="v")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        f"""
        WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < {rows})
        INSERT INTO taskward_jobs (id, task, queue, args, kwargs, state, priority, attempt,
            max_attempts, scheduled_at, inserted_at, attempted_at, completed_at, cancelled_at)
        SELECT v, 'bench.task' || (v % 4), '{QUEUES[0]}', '[' || v || ']', '{{}}', st,
            v % 10, CASE WHEN st IN ('completed', 'failed') THEN 1 ELSE 0 END, 5, t, t,
            CASE WHEN st IN ('completed', 'failed') THEN t + 0.01 END,
            CASE WHEN st = 'completed' THEN t + 0.02 END,
            CASE WHEN st = 'cancelled' THEN t + 0.02 END
        FROM (SELECT v, {state} AS st, {now} - 604800.0 * ({rows} - v) / {rows} AS t FROM s)
        """
    )
    for k, q in enumerate(QUEUES[1:], start=1):
        conn.execute(f"UPDATE taskward_jobs SET queue = '{q}' WHERE id % 4 = {k}")
    conn.execute(
        "INSERT INTO taskward_counters (name, value) VALUES ('last_job_id', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (rows,),
    )
    conn.execute("COMMIT")
    conn.close()


def load_postgres(rows: int) -> None:
    import psycopg

    asyncio.run(_migrate("postgres"))
    state = STATE_SQL.format(v="v")
    queue = "(ARRAY['" + "','".join(QUEUES) + "'])[v % 4 + 1]"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("TRUNCATE taskward_jobs RESTART IDENTITY CASCADE")
        conn.execute(
            f"""
            INSERT INTO taskward_jobs (task, queue, args, kwargs, state, priority, attempt,
                max_attempts, scheduled_at, inserted_at, attempted_at, completed_at, cancelled_at)
            SELECT 'bench.task' || (v % 4), {queue}, json_build_array(v), '{{}}', st,
                v % 10, CASE WHEN st IN ('completed', 'failed') THEN 1 ELSE 0 END, 5, t, t,
                CASE WHEN st IN ('completed', 'failed') THEN t + interval '10 ms' END,
                CASE WHEN st = 'completed' THEN t + interval '20 ms' END,
                CASE WHEN st = 'cancelled' THEN t + interval '20 ms' END
            FROM (SELECT v, {state} AS st,
                         now() - interval '7 days' * ({rows} - v) / {rows} AS t
                  FROM generate_series(1, {rows}) AS v) AS g
            """  # type: ignore[arg-type]
        )
        conn.execute("VACUUM ANALYZE taskward_jobs")


async def _measure(backend: str) -> dict[str, Any]:
    from taskward import TaskManager

    out: dict[str, Any] = {}
    async with TaskManager(url(backend)) as tw:
        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "list_first_page": lambda: tw.list_tasks(page=1, per_page=50),
            "list_failed": lambda: tw.list_tasks(state="failed", per_page=50),
            "list_queue_pending": lambda: tw.list_tasks(queue="emails", state="pending"),
            "statistics": tw.get_statistics,
        }
        total = (await tw.list_tasks(per_page=1)).total_entries
        out["rows"] = total
        for name, call in queries.items():
            times = []
            for _ in range(REPEAT + 1):
                t0 = time.perf_counter()
                await call()
                times.append((time.perf_counter() - t0) * 1000)
            out[f"{name}_cold_ms"] = times[0]
            out[f"{name}_ms"] = statistics.median(times[1:])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["load", "measure"])
    ap.add_argument("backend", choices=["sqlite", "postgres"])
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--run", type=int, default=1)
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.action == "load":
        t0 = time.perf_counter()
        (load_sqlite if a.backend == "sqlite" else load_postgres)(a.rows)
        print(f"loaded {a.rows:,} rows into {a.backend} in {time.perf_counter() - t0:.1f} s")
        return
    res: dict[str, Any] = {
        "system": f"taskward-{a.backend}", "backend": a.backend, "kind": "taskward",
        "phase": "million", "run": a.run, "host": platform.node(), "started": time.time(),
    }  # fmt: skip
    try:
        res.update(asyncio.run(_measure(a.backend)))
        res["ok"] = True
    except Exception as exc:
        res.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    print(json.dumps(res), flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
