"""What the run-time percentiles add to one health check (issue 26: p50/p95 per task).

Usage: python bench/health_run_times.py [sqlite | redis://… | postgresql://…] [ENDED]

Fills a fresh store through the Backend API with ENDED jobs that ended within the last hour
(4 queues x 5 tasks, one in ten failed), each run lasting 10 ms to 60 s (log-uniform), then
prints the median of 15 calls (after one warm-up) of ``Backend.health_figures``, and of the part
the run times change on that store with and without them (called in turn), read the way
the check reads it:

- SQLite: ``health_ended`` with its list of run times (parsed and sorted in Python) against
  the statement before issue 26 (kept here as the baseline);
- PostgreSQL: ``health_ended`` with its ``percentile_disc`` columns against the same statement
  without them (the baseline too);
- Redis: ``health_ended.lua`` over the completed set with its run-time buckets against
  without them.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from fresh_store import fresh

from taskward.backends import Backend, open_backend
from taskward.backoff import ConstantBackoff
from taskward.clock import utcnow
from taskward.health import HealthQuery
from taskward.health.run_times import BUCKET_RATIO
from taskward.jobs import JobState, NewJob
from taskward.states import Completed, Failed, next_update

BATCH = 500
QUEUES = [f"q{i}" for i in range(4)]
TASKS = [f"bench:task{i}" for i in range(5)]
POSTGRES_BASELINE = """
SELECT queue, task,
    count(*) FILTER (WHERE state <> 'cancelled'
        AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= %(recent_since)s),
    count(*) FILTER (WHERE state IN ('failed', 'discarded')
        AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= %(recent_since)s),
    count(*) FILTER (WHERE state <> 'cancelled'),
    count(*) FILTER (WHERE state IN ('failed', 'discarded'))
FROM {schema}.taskward_jobs
WHERE state IN ('completed', 'failed', 'discarded', 'cancelled')
    AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= %(since)s
GROUP BY queue, task
"""
"""PostgreSQL's ``health_ended`` before the run times (the baseline of the comparison)."""
SQLITE_BASELINE = """
SELECT queue, task,
    SUM(COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= ?1),
    SUM(state <> 'completed'
        AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= ?1),
    COUNT(*),
    SUM(state <> 'completed')
FROM taskward_jobs INDEXED BY taskward_jobs_finished
WHERE (state = 'completed' OR state = 'failed' OR state = 'discarded' OR state = 'cancelled')
    AND state IN ('completed', 'failed', 'discarded')
    AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= ?2
GROUP BY queue, task
"""
"""SQLite's ``health_ended`` before the run times."""


def new(queue: str, task: str, when: object) -> NewJob:
    return NewJob(
        task=task,
        queue=queue,
        args=[],
        kwargs={},
        priority=5,
        max_attempts=1,
        scheduled_at=when,  # type: ignore[arg-type]
        state=JobState.PENDING,
    )


async def fill(backend: Backend, ended: int) -> None:
    """ENDED jobs that ran 10 ms to 60 s each and ended over the last hour."""
    rng = random.Random(26)
    start = utcnow() - timedelta(minutes=58)
    done = 0
    while done < ended:
        n = min(BATCH, ended - done)
        when = start + timedelta(seconds=3420 * done / max(ended, 1))
        queue = QUEUES[(done // BATCH) % len(QUEUES)]
        await backend.insert([new(queue, TASKS[i % len(TASKS)], when) for i in range(n)], now=when)
        claimed = await backend.fetch(
            queue=queue, limit=n, worker_id="w", now=when, lease_until=when + timedelta(hours=2)
        )
        updates = []
        for job in claimed:
            ran = timedelta(seconds=math.exp(rng.uniform(math.log(0.01), math.log(60))))
            outcome = Failed("E", "x") if job.id % 10 == 0 else Completed(None)
            updates.append(next_update(job, outcome, when + ran, ConstantBackoff(1)))
        await backend.finish(updates, worker_id="w")
        done += n


async def timed(call: Callable[[], Awaitable[Any]], rounds: int = 15) -> float:
    """The median wall time of ``call()`` in milliseconds, after one warm-up call."""
    await call()
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def paired(
    first: Callable[[], Awaitable[Any]], second: Callable[[], Awaitable[Any]], rounds: int = 15
) -> tuple[float, float]:
    """Median milliseconds of ``first()`` and ``second()``, called in turn (a busy machine's
    noise falls on both alike), after one warm-up call of each."""
    await first()
    await second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for call, found in ((first, times[0]), (second, times[1])):
            began = time.perf_counter()
            await call()
            found.append((time.perf_counter() - began) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def query() -> HealthQuery:
    return HealthQuery.at(utcnow(), lease_grace=30, stuck_after=3600)


async def sqlite_part(backend: Any) -> tuple[float, float]:
    """``health_ended`` with the run times (parsed, sorted) and without, on the db thread."""

    def ended(store: Any, sql: str) -> None:
        q = query()
        windows = (q.recent_since.timestamp(), q.since.timestamp())
        with store._read() as db:
            for row in db.execute(sql, windows).fetchall():
                if len(row) > 6 and row[6]:
                    sorted(int(us) for us in row[6].split(","))

    new_sql = backend._store.q["health_ended"]
    return await paired(
        lambda: backend._call(ended, backend._store, new_sql),
        lambda: backend._call(ended, backend._store, SQLITE_BASELINE),
    )


async def postgres_part(backend: Any) -> tuple[float, float]:
    """``health_ended`` with the ``percentile_disc`` columns and without."""
    connections = backend._connections
    baseline = POSTGRES_BASELINE.format(schema=connections.config.schema)

    async def statement(sql: str) -> None:
        q = query()
        params = {"since": q.since, "recent_since": q.recent_since}

        async def read(conn: Any) -> None:
            await conn.execute(connections.q["jit_off"])
            await (await conn.execute(sql, params)).fetchall()

        await connections.run(read)

    return await paired(
        lambda: statement(connections.q["health_ended"]), lambda: statement(baseline)
    )


async def redis_part(backend: Any) -> tuple[float, float]:
    """``health_ended.lua`` over the completed set, counting run-time buckets and not."""
    connections = backend._connections

    async def pages(timed_flag: str) -> None:
        q = query()
        since, recent = int(q.since.timestamp() * 1e6), int(q.recent_since.timestamp() * 1e6)
        offset = 0
        while True:
            args = ("completed", since, recent, offset, 5000, timed_flag, repr(BUCKET_RATIO))
            read = int((await connections.run("health_ended", args))[0])
            offset += read
            if read < 5000:
                break

    return await paired(lambda: pages("1"), lambda: pages("0"))


PARTS = {"sqlite": sqlite_part, "postgresql": postgres_part, "redis": redis_part}


async def main(url: str, ended: int) -> None:
    scheme = url.split(":")[0]
    with tempfile.TemporaryDirectory() as folder:
        backend = open_backend(fresh(url, Path(folder)))
        await backend.open()
        await backend.migrate()
        try:
            await fill(backend, ended)
            health_ms = await timed(lambda: backend.health_figures(query()))
            with_ms, without_ms = await PARTS[scheme](backend)
            figures = await backend.health_figures(query())
        finally:
            await backend.close()
    timed_runs = sum(r.runs for r in figures.run_times)
    p95 = max(r.p95_seconds for r in figures.run_times)
    print(
        f"{scheme:<10} ended {ended:>7,}: health_figures {health_ms:6.1f} ms; run-time part "
        f"{with_ms:6.1f} ms vs {without_ms:6.1f} ms without (timed runs {timed_runs:,}, "
        f"largest p95 {p95:.1f} s)"
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1] if len(sys.argv) > 1 else "sqlite",
            int(sys.argv[2]) if len(sys.argv) > 2 else 50_000,
        )
    )
