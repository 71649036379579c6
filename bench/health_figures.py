"""What one health check costs on a busy store (issue 25, item 4: SLO health).

Usage: python bench/health_figures.py [sqlite | redis://… | postgresql://…] [ENDED] [BACKLOG]

Fills a fresh store through the Backend API with ENDED jobs that ended within the last hour
(spread over 4 queues x 5 tasks, one in ten failed) plus BACKLOG pending jobs and 50 running
ones, then times ``Backend.health_figures`` (the median of 7 calls, after one warm-up) and,
for comparison, ``Backend.stats``. Prints one line per store.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from fresh_store import fresh

from taskward.backends import Backend, open_backend
from taskward.backoff import ConstantBackoff
from taskward.clock import utcnow
from taskward.health import HealthQuery
from taskward.jobs import JobState, NewJob
from taskward.states import Completed, Failed, next_update

BATCH = 500
QUEUES = [f"q{i}" for i in range(4)]
TASKS = [f"bench:task{i}" for i in range(5)]


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


async def fill(backend: Backend, ended: int, backlog: int) -> None:
    """ENDED jobs ended over the last hour, BACKLOG pending, 50 running."""
    start = utcnow() - timedelta(minutes=59)
    done = 0
    while done < ended:
        n = min(BATCH, ended - done)
        when = start + timedelta(seconds=3540 * done / max(ended, 1))
        queue = QUEUES[(done // BATCH) % len(QUEUES)]
        jobs = [new(queue, TASKS[i % len(TASKS)], when) for i in range(n)]
        await backend.insert(jobs, now=when)
        claimed = await backend.fetch(
            queue=queue, limit=n, worker_id="w", now=when, lease_until=when + timedelta(hours=2)
        )
        updates = [
            next_update(
                job,
                Failed("E", "x") if job.id % 10 == 0 else Completed(None),
                when,
                ConstantBackoff(1),
            )
            for job in claimed
        ]
        await backend.finish(updates, worker_id="w")
        done += n
    now = utcnow()
    for i in range(0, backlog, BATCH):
        n = min(BATCH, backlog - i)
        await backend.insert([new("q0", TASKS[0], now) for _ in range(n)], now=now)
    await backend.insert([new("busy", TASKS[1], now) for _ in range(50)], now=now)
    await backend.fetch(
        queue="busy", limit=50, worker_id="w", now=now, lease_until=now + timedelta(hours=1)
    )


async def timed(call: object, rounds: int = 7) -> float:
    """The median wall time of ``call()`` in milliseconds, after one warm-up call."""
    await call()  # type: ignore[operator]
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        await call()  # type: ignore[operator]
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def main(url: str, ended: int, backlog: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        backend = open_backend(fresh(url, Path(folder)))
        await backend.open()
        await backend.migrate()
        try:
            began = time.perf_counter()
            await fill(backend, ended, backlog)
            filled = time.perf_counter() - began

            async def check() -> None:
                query = HealthQuery.at(utcnow(), lease_grace=30, stuck_after=3600)
                await backend.health_figures(query)

            health_ms = await timed(check)
            stats_ms = await timed(backend.stats)
            figures = await backend.health_figures(
                HealthQuery.at(utcnow(), lease_grace=30, stuck_after=3600)
            )
            runs = sum(t.last_60m.runs for t in figures.tasks)
        finally:
            await backend.close()
    print(
        f"{url.split(':')[0]:<10} ended {ended:>7,} backlog {backlog:>7,}: "
        f"health_figures {health_ms:7.1f} ms, stats {stats_ms:7.1f} ms "
        f"(runs counted {runs:,}; filled in {filled:.0f} s)"
    )


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    waiting = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    asyncio.run(main(target, count, waiting))
