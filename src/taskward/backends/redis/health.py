"""The health check's figures of the Redis store: one script, then the ended jobs' pages.

``health.lua`` reads each queue's due, running and stuck jobs in one call (one slot, one
round trip). Runs per task come from the finish-time sets ``B:done:<state>`` of the last
hour: no key holds runs by task and time, so ``health_ended.lua`` reads each job's queue and
task on the server and answers counts per (queue, task), :data:`ENDED_PAGE` jobs per call,
so that no call holds the server for long (reading them from the client, one pipelined
``HMGET`` per job, took 1.8 s for 50,000 jobs: redis-py's per-command cost). Read-only.
"""

from __future__ import annotations

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
    """Add the runs that ended since ``query.since``: ``health_ended.lua``, page by page."""
    since, recent = codec.us(query.since), codec.us(query.recent_since)
    for state in sorted(RUN_STATES):
        failed = state in FAILURE_STATES
        offset = 0
        while True:
            reply = await connections.run(
                "health_ended", (state.value, since, recent, offset, ENDED_PAGE)
            )
            for i in range(1, len(reply), 4):
                queue, task, runs, in_recent = reply[i : i + 4]
                builder.ended(
                    queue,
                    task,
                    recent=Ended(runs=int(in_recent), failures=int(in_recent) if failed else 0),
                    window=Ended(runs=int(runs), failures=int(runs) if failed else 0),
                )
            read = int(reply[0])
            offset += read
            if read < ENDED_PAGE:
                break
