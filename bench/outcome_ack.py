"""What outcome watches cost PostgreSQL's ack path (issue 25, item 1's speed check).

Usage: python bench/outcome_ack.py [postgresql://… | durable | fast] [ROUNDS] [JOBS]

Times ``Backend.finish`` (the worker's ack) of JOBS claimed jobs, in batches of 1 and of 50:
``finish_jobs`` as it was before migration 0012 (no probe of the watches) and as shipped take
turns call by call on the same fresh schema, with the watches table

- empty (nobody waits: one primary-key probe per row, no NOTIFY);
- holding 1,000 watches of other jobs (the probe finds none of ours);
- watching every job acked (each shipped batch also sends its NOTIFYs).

Prints the median microseconds per ``finish`` call of each. Without a URL (or with
``durable``) it starts a throwaway PostgreSQL with fsync and synchronous commits on; ``fast``
turns them off, so the statements' own cost is not hidden behind the flush.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from taskward.backends import open_backend
from taskward.backoff import ConstantBackoff
from taskward.jobs import JobState, NewJob
from taskward.states import Completed, next_update

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PROBE = """u.state IN ('completed', 'failed', 'discarded', 'cancelled') AND EXISTS ("""


def without_probe(sql: str) -> str:
    """``finish_jobs`` as before 0012: the same statement answering ``false`` for the probe."""
    head, _, _ = sql.partition("RETURNING")
    return head + "RETURNING j.id, j.queue, false;"


async def paired(url: str, watches: str, jobs: int, batch: int) -> tuple[list[float], list[float]]:
    """Seconds per finish call before 0012 and as shipped, alternated call by call.

    One fresh schema holds the ``watches`` setup (none, 1000 others, all acked jobs); the two
    statements take turns on it, so the machine's noise falls on both alike.
    """
    backend: Any = open_backend(f"{url}?schema=b_{uuid.uuid4().hex[:12]}")
    await backend.open()
    await backend.migrate()
    try:
        q = backend._connections.q
        shipped = q["finish_jobs"]
        old = without_probe(shipped)
        new = NewJob(
            task="bench", queue="q", args=[], kwargs={}, priority=5, max_attempts=3,
            scheduled_at=NOW, state=JobState.PENDING,
        )  # fmt: skip
        await backend.insert([new] * jobs, now=NOW)
        claimed = await backend.fetch(
            queue="q", limit=jobs, worker_id="w", now=NOW, lease_until=NOW + timedelta(hours=1)
        )
        ids = [job.id for job in claimed]
        watched = {"others": list(range(10**9, 10**9 + 1000)), "all": ids}.get(watches, [])
        if watched:
            params = {"watcher": "bench", "ids": watched, "seconds": 600}
            await backend._connections.execute("watch_jobs", params)
        policy = ConstantBackoff(1)
        updates = [next_update(job, Completed(None), NOW, policy) for job in claimed]
        times: tuple[list[float], list[float]] = ([], [])
        for n, start in enumerate(range(0, len(updates), batch)):
            q["finish_jobs"] = old if n % 2 == 0 else shipped
            began = time.perf_counter()
            written = await backend.finish(updates[start : start + batch], worker_id="w")
            times[n % 2].append(time.perf_counter() - began)
            assert all(written)
        return times
    finally:
        await backend.close()


async def main(url: str, rounds: int, jobs: int) -> None:
    setups = {"none": "nobody waits", "others": "1000 others watched", "all": "all acked watched"}
    for batch in (1, 50):
        print(f"finish of {batch} job(s): median µs per call, {rounds} rounds of {jobs} jobs")
        for watches, label in setups.items():
            before: list[float] = []
            after: list[float] = []
            for _ in range(rounds):
                b, a = await paired(url, watches, jobs, batch)
                before += b
                after += a
            mb, ma = statistics.median(before) * 1e6, statistics.median(after) * 1e6
            print(f"  {label:<20} before {mb:7.0f} µs, shipped {ma:7.0f} µs ({ma / mb:.3f} x)")


def run(target: str, rounds: int, jobs: int) -> None:
    if target.startswith("postgres"):
        asyncio.run(main(target, rounds, jobs))
        return
    from tests_support.servers import PostgresServer, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL binaries (pg_ctl) not found: pass a postgresql:// URL")
    server = PostgresServer(bin_dir, durable=target != "fast")
    server.start()
    try:
        asyncio.run(main(server.url(), rounds, jobs))
    finally:
        server.stop()


if __name__ == "__main__":
    run(
        sys.argv[1] if len(sys.argv) > 1 else "durable",
        int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        int(sys.argv[3]) if len(sys.argv) > 3 else 1000,
    )
