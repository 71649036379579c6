"""What a partitioned claim costs per job at 10 and at 1,000 keys (issue 21's speed check).

Usage: python bench/partitions.py [sqlite | redis://… | postgresql://…] [N] [ROUNDS]

Drains N no-op jobs of a queue partitioned by a kwarg with one in-process worker of 50 slots,
once with the jobs spread over 10 keys and once over 1,000 keys (no limit binds), and once on
the same queue unpartitioned as the reference. Prints, per case, the median drain rate and
the CPU time per job: this process's (client, plus SQLite's, which runs in-process) and the
store server's (PostgreSQL or Redis processes of this machine's user, read from /proc), so a
claim that grew with the number of keys would show in one or the other.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fresh_store import fresh

from taskward import TaskManager


async def noop_job(i: int, tenant: str = "") -> None:
    """A no-op job."""


def server_cpu(names: tuple[str, ...] = ("postgres", "redis-server")) -> float:
    """CPU seconds used so far by this user's store server processes (0 when none runs)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if (entry / "status").stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if not name.startswith(names):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


async def drain(url: str, n: int, keys: int | None) -> tuple[float, float, float]:
    """Drain rate (jobs/s), client CPU µs per job, server CPU µs per job."""
    tw = TaskManager(url, poll_interval=0.5)
    noop = tw.task(name="noop", queue="bench")(noop_job)
    async with tw:
        if keys is not None:
            await tw.configure_queue("bench", partition_by="tenant")
        spread = keys or 1
        await tw.enqueue_many(noop, [([i], {"tenant": f"t{i % spread:04d}"}) for i in range(n)])
        cpu0, server0, started = time.process_time(), server_cpu(), time.perf_counter()
        result = await tw.drain(["bench"], concurrency=50)
        elapsed = time.perf_counter() - started
        cpu, server = time.process_time() - cpu0, server_cpu() - server0
    assert result.counts == {"completed": n}, result.counts
    return n / elapsed, cpu / n * 1e6, server / n * 1e6


async def main(url: str, n: int, rounds: int) -> None:
    cases: dict[str, int | None] = {"unpartitioned": None, "10 keys": 10, "1,000 keys": 1000}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for name, keys in cases.items():
                runs[name].append(await drain(fresh(url, Path(folder)), n, keys))
    print(f"{url}, {n:,} jobs, median of {rounds}:")
    for name, results in runs.items():
        rate = statistics.median(r[0] for r in results)
        client = statistics.median(r[1] for r in results)
        server = statistics.median(r[2] for r in results)
        print(
            f"  {name:>14}: {rate:8,.0f} jobs/s, CPU per job {client:6.0f} µs client"
            f" + {server:6.0f} µs server"
        )


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    asyncio.run(main(target, size, count))
