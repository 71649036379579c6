"""What a limit that does not bind costs a drain (issue 21's speed check).

Usage: python bench/limits_overhead.py [sqlite | redis://… | postgresql://…] [N] [ROUNDS] [KIND]

Drains N no-op jobs with one in-process worker of 50 slots, alternately on a queue without a
limit and on a queue whose limit never binds (KIND ``global``: ``global_limit=10,000``;
``rate``: ``rate_limit="1000000/s"``); prints the median drain rate of each and their ratio.
Each round uses a fresh store (a new SQLite file, a new Redis prefix or PostgreSQL schema), so
neither side inherits the other's leftovers.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fresh_store import fresh

from taskward import TaskManager


async def noop_job(i: int) -> None:
    """A no-op job."""


LIMITS = {"global": {"global_limit": 10_000}, "rate": {"rate_limit": "1000000/s"}}


async def drain_rate(url: str, n: int, kind: str | None) -> float:
    tw = TaskManager(url, poll_interval=0.5)
    noop = tw.task(name="noop", queue="bench")(noop_job)
    async with tw:
        if kind is not None:
            await tw.configure_queue("bench", **LIMITS[kind])  # type: ignore[arg-type]
        await tw.enqueue_many(noop, [[i] for i in range(n)])
        started = time.perf_counter()
        result = await tw.drain(["bench"], concurrency=50)
        elapsed = time.perf_counter() - started
    assert result.counts == {"completed": n}, result.counts
    return n / elapsed


async def main(url: str, n: int, rounds: int, kind: str) -> None:
    plain: list[float] = []
    limited: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            plain.append(await drain_rate(fresh(url, Path(folder)), n, None))
            limited.append(await drain_rate(fresh(url, Path(folder)), n, kind))
    a, b = statistics.median(plain), statistics.median(limited)
    print(
        f"{url}: no limit {a:,.0f} jobs/s, {kind} limit not binding {b:,.0f} jobs/s, "
        f"ratio {b / a:.3f}"
    )
    print(f"  rounds: no limit {[round(x) for x in plain]}, limited {[round(x) for x in limited]}")


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    what = sys.argv[4] if len(sys.argv) > 4 else "global"
    asyncio.run(main(target, size, count, what))
