"""The health check's figures of the PostgreSQL store: six statements in one snapshot.

The statements are ``health_*`` in ``queries.sql``; each reads one partial index (claim, due,
lease, prune), so the cost follows the waiting, running and recently ended jobs, never the
finished history. They run in one ``REPEATABLE READ READ ONLY`` transaction, so the figures
agree with each other. ``health_ended`` also ranks the completed jobs' run times
(``percentile_disc``). The rules are :mod:`taskward.health.figures`'.
"""

from __future__ import annotations

from typing import Any

from taskward.backends.postgres.connections import AConn, Connections
from taskward.health.figures import Ended, FiguresBuilder, HealthFigures, HealthQuery
from taskward.health.run_times import RunTimes

__all__ = ["health_figures"]

_STATEMENTS = (
    "list_paused",
    "health_pending",
    "health_due_later",
    "health_running",
    "health_stuck",
    "health_ended",
)


async def health_figures(connections: Connections, query: HealthQuery) -> HealthFigures:
    """Read the figures of the health check at ``query.now``."""
    q = connections.q
    params = {
        "now": query.now,
        "since": query.since,
        "recent_since": query.recent_since,
        "grace_cutoff": query.grace_cutoff,
        "started_cutoff": query.started_cutoff,
    }

    async def read(conn: AConn) -> list[list[Any]]:
        async with conn.transaction():
            # One snapshot for every statement: in READ COMMITTED each sees the commits made
            # since the one before, so a job that moved meanwhile (due -> running) counts
            # twice or not at all. Read-only: a health check never writes.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # As for the statistics: JIT would compile these aggregates for longer than they run.
            await conn.execute(q["jit_off"])
            found = []
            for name in _STATEMENTS:
                cursor = await conn.execute(q[name], params)
                found.append(await cursor.fetchall())
            return found

    paused, pending, due_later, running, stuck, ended = await connections.run(read)
    builder = FiguresBuilder()
    for queue, count, oldest in (*pending, *due_later):
        builder.due(queue, count, oldest)
    for queue, count, stuck_count in running:
        builder.running(queue, count, stuck_count)
    for queue, job_id in stuck:
        builder.stuck_id(queue, job_id)
    for queue, task, recent, recent_failed, runs, failed, timed, percentiles in ended:
        builder.ended(
            queue,
            task,
            recent=Ended(runs=recent, failures=recent_failed),
            window=Ended(runs=runs, failures=failed),
        )
        if timed and percentiles:
            p50, p95 = percentiles
            builder.run_times(
                RunTimes(
                    queue=queue,
                    task=task,
                    runs=timed,
                    p50_seconds=max(0.0, p50),
                    p95_seconds=max(0.0, p95),
                )
            )
    return builder.build(frozenset(queue for (queue,) in paused))
