"""What a workflow costs against the same jobs enqueued alone (issue 22's speed check).

Usage: python bench/workflows.py [sqlite | redis://… | postgresql://…] [N] [ROUNDS]

Each round, on a fresh store: N no-op jobs stored by ``enqueue_many`` and drained by one
in-process worker of 50 slots; then an N-member group with a callback that receives every
result, stored by ``enqueue_workflow`` and drained the same way. Prints the median time of each
(store + drain, and the drain alone) and the ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fresh_store import fresh

from taskward import TaskManager, WorkflowState, group


async def noop_job(i: int) -> int:
    """A no-op job."""
    return i


async def collect(results: list[Any]) -> int:
    """The chord's callback."""
    return len(results)


async def timed(url: str, n: int, *, as_workflow: bool) -> tuple[float, float]:
    """Seconds to store and drain, and to drain alone."""
    tw = TaskManager(url, poll_interval=0.5)
    noop = tw.task(name="noop", queue="bench")(noop_job)
    callback = tw.task(name="collect", queue="bench")(collect)
    async with tw:
        started = time.perf_counter()
        if as_workflow:
            flow = group(noop.s(i) for i in range(n)).then(callback.s().set(pass_result=True))
            record = await tw.enqueue_workflow(flow)
        else:
            await tw.enqueue_many(noop, [[i] for i in range(n)])
        stored = time.perf_counter()
        result = await tw.drain(["bench"], concurrency=50)
        ended = time.perf_counter()
        expected = n + 1 if as_workflow else n
        assert result.counts == {"completed": expected}, result.counts
        if as_workflow:
            done = await tw.get_workflow(record.id)
            assert done.state is WorkflowState.COMPLETED
    return ended - started, ended - stored


async def main(url: str, n: int, rounds: int) -> None:
    alone: list[tuple[float, float]] = []
    chord: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            alone.append(await timed(fresh(url, Path(folder)), n, as_workflow=False))
            chord.append(await timed(fresh(url, Path(folder)), n, as_workflow=True))
    a_total, a_drain = (statistics.median(x) for x in zip(*alone, strict=True))
    c_total, c_drain = (statistics.median(x) for x in zip(*chord, strict=True))
    print(
        f"{url}: {n:,} jobs alone {a_total * 1000:,.0f} ms (drain {a_drain * 1000:,.0f}); "
        f"as a chord {c_total * 1000:,.0f} ms (drain {c_drain * 1000:,.0f}); "
        f"ratio {c_total / a_total:.2f} (drain {c_drain / a_drain:.2f})"
    )


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    asyncio.run(main(target, size, count))
