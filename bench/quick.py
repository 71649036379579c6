"""Quick in-process throughput check of taskward alone (the side-by-side harness is issue 5).

Usage: python bench/quick.py [URL]   (default: a temporary SQLite file, synchronous=FULL)
Prints enqueue one-by-one, bulk enqueue and drain rates for no-op jobs.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time

from taskward import TaskManager


async def measure(url: str, n: int = 5000) -> dict[str, float]:
    tw = TaskManager(url, poll_interval=0.05)

    @tw.task(name="noop")
    async def noop(i: int) -> None:
        return None

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
    return out


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as tmp:
        for name, value in asyncio.run(measure(url or f"sqlite:///{tmp}/bench.db")).items():
            print(f"{name:24} {value:10,.0f}")


if __name__ == "__main__":
    main()
