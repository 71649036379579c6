"""The health check's figures of the Redis store: one script, then the ended jobs' pages.

``health.lua`` reads each queue's due, running and stuck jobs in one call (one slot, one
round trip). Runs per task come from the finish-time sets ``B:done:<state>`` of the last
hour: no key holds runs by task and time, so ``health_ended.lua`` reads each job's queue and
task on the server and answers counts per (queue, task), :data:`ENDED_PAGE` jobs per call,
so that no call holds the server for long (reading them from the client, one pipelined
``HMGET`` per job, took 1.8 s for 50,000 jobs: redis-py's per-command cost). Read-only.

Run times come from the same pages: the script counts each completed job's finish time minus
its ``attempted_at`` in log-scale buckets, so the percentiles are within
:data:`~taskward.health.run_times.RELATIVE_ERROR` (about 1 %) of the exact ones, and nothing
is written when a job finishes (no cost on the hot path, no extra keys).
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from taskward.backends.redis import codec
from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import translated
from taskward.health.figures import (
    FAILURE_STATES,
    RUN_STATES,
    STUCK_IDS_SHOWN,
    Ended,
    FiguresBuilder,
    HealthFigures,
    HealthQuery,
)
from taskward.health.run_times import BUCKET_RATIO, from_buckets
from taskward.jobs import JobState

__all__ = ["health_figures"]

ENDED_PAGE: Final = 5_000
"""Ended jobs read per script call (a few milliseconds of the server's time each)."""


async def health_figures(connections: Connections, query: HealthQuery) -> HealthFigures:
    """Read the figures of the health check at ``query.now``."""
    builder = FiguresBuilder()
    flat = await connections.run(
        "health",
        (
            codec.us(query.now),
            codec.us(query.grace_cutoff),
            codec.us(query.started_cutoff),
            STUCK_IDS_SHOWN,
        ),
    )
    for i in range(0, len(flat), 6):
        queue, backlog, oldest, running, stuck, ids = flat[i : i + 6]
        builder.due(queue, int(backlog), codec.time_of(oldest) if oldest else None)
        builder.running(queue, int(running), int(stuck))
        for job_id in str(ids).split(",") if ids else ():
            builder.stuck_id(queue, int(job_id))
    await _ended(connections, query, builder)
    client = await connections.ready()
    with translated(connections.config):
        paused = frozenset(await client.smembers(f"{connections.base}:paused"))
    return builder.build(paused)


async def _ended(connections: Connections, query: HealthQuery, builder: FiguresBuilder) -> None:
    """Add the runs that ended since ``query.since``: ``health_ended.lua``, page by page.

    The completed set's pages also count run times per bucket; the buckets of every page are
    merged before the percentiles are read from them.
    """
    since, recent = codec.us(query.since), codec.us(query.recent_since)
    buckets: dict[tuple[str, str], Counter[int]] = {}
    for state in sorted(RUN_STATES):
        failed = state in FAILURE_STATES
        timed = "1" if state is JobState.COMPLETED else "0"
        offset = 0
        while True:
            reply = await connections.run(
                "health_ended",
                (state.value, since, recent, offset, ENDED_PAGE, timed, repr(BUCKET_RATIO)),
            )
            for i in range(1, len(reply), 5):
                queue, task, runs, in_recent, counted = reply[i : i + 5]
                builder.ended(
                    queue,
                    task,
                    recent=Ended(runs=int(in_recent), failures=int(in_recent) if failed else 0),
                    window=Ended(runs=int(runs), failures=int(runs) if failed else 0),
                )
                if counted:
                    merged = buckets.setdefault((queue, task), Counter())
                    merged.update(_buckets(str(counted)))
            read = int(reply[0])
            offset += read
            if read < ENDED_PAGE:
                break
    for (queue, task), counts in buckets.items():
        builder.run_times(from_buckets(queue, task, counts))


def _buckets(text: str) -> Counter[int]:
    """``"bucket:count,..."`` as the script writes it (its numbers may end in ``.0``)."""
    found: Counter[int] = Counter()
    for item in text.split(","):
        bucket, count = item.split(":")
        found[int(float(bucket))] += int(float(count))
    return found
