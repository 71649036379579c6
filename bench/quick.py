"""Quick in-process throughput check of taskward alone (the side-by-side harness is issue 5).

Usage: python bench/quick.py [sqlite | postgres | URL]   (default: sqlite)

``sqlite`` uses a temporary file (synchronous=FULL); ``postgres`` starts a throwaway PostgreSQL
cluster with default durability (fsync and synchronous_commit on) on loopback. Prints enqueue
one-by-one, bulk enqueue and drain rates for no-op jobs, and the start latency of jobs enqueued
10 ms apart to an idle worker (producer and worker are separate TaskManager instances).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from taskward import TaskManager

started: dict[int, float] = {}


async def noop_job(i: int, sent: float = 0.0) -> None:
    """A no-op job; with ``sent`` it records its start latency."""
    if sent:
        started[i] = time.time() - sent


async def measure(url: str, n: int = 5000) -> dict[str, float]:
    tw = TaskManager(url, poll_interval=0.5)
    noop = tw.task(name="noop")(noop_job)
    out: dict[str, float] = {}
    async with tw:
        t = time.perf_counter()
        for i in range(n):
            await noop.enqueue(i)
        out["enqueue one-by-one /s"] = n / (time.perf_counter() - t)
        t = time.perf_counter()
        await noop.enqueue_many([[i] for i in range(4 * n)])
        out["enqueue bulk /s"] = 4 * n / (time.perf_counter() - t)
        t = time.perf_counter()
        result = await tw.drain(concurrency=100)
        out["drain /s"] = result.total / (time.perf_counter() - t)
        out.update(await latency(tw, url))
    return out


async def latency(worker_side: TaskManager, url: str, jobs: int = 200) -> dict[str, float]:
    worker = asyncio.create_task(worker_side.run_worker({"default": 10}))
    try:
        async with TaskManager(url) as producer:
            producer.task(name="noop")(noop_job)
            await asyncio.sleep(1.0)  # idle worker
            for i in range(jobs):
                await producer.enqueue_task("noop", args=[i, time.time()])
                await asyncio.sleep(0.01)
            deadline = time.monotonic() + 10
            while len(started) < jobs and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    ms = sorted(v * 1000 for v in started.values())
    cuts = statistics.quantiles(ms, n=100)
    return {"latency p50 ms": cuts[49], "latency p95 ms": cuts[94], "latency p99 ms": cuts[98]}


def main() -> None:
    arg = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    with ExitStack() as stack:
        url: Any = arg
        if arg == "sqlite":
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/bench.db"
        elif arg == "postgres":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from tests_support.servers import PostgresServer, find_pg_bin

            bin_dir = find_pg_bin()
            if bin_dir is None:
                raise SystemExit("PostgreSQL server binaries (pg_ctl) not found")
            server = PostgresServer(bin_dir, durable="--fast" not in sys.argv)
            server.start()
            stack.callback(server.destroy)
            url = server.url()
        for name, value in asyncio.run(measure(url)).items():
            print(f"{name:24} {value:10,.1f}")


if __name__ == "__main__":
    main()
