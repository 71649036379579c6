"""Cron fire history in PostgreSQL: the records of migration 0011 and the schedule's state.

:func:`record` runs ``record_cron_fires`` (the records and the schedule's ``last_fire_at``/
``last_job_id``, on the schedule's locked row) and ``trim_cron_history`` in one transaction,
so a reader never sees records without the state they imply. Deleting a schedule deletes its
records (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from taskward.backends.postgres.connections import AConn, Connections
from taskward.jobs import CronFire, CronOutcome

__all__ = ["history", "record"]


async def record(
    connections: Connections,
    name: str,
    fires: Sequence[CronFire],
    *,
    now: datetime,
    keep: int,
) -> None:
    """Append ``fires`` to ``name``'s history (see ``Backend.record_cron_fires``)."""
    if not fires:
        return
    with_jobs = [f for f in fires if f.job_id is not None]
    params = {
        "name": name,
        "now": now,
        "planned_at": [f.planned_at for f in fires],
        "outcome": [str(f.outcome) for f in fires],
        "job_id": [f.job_id for f in fires],
        "reason": [f.reason for f in fires],
        "count": [f.count for f in fires],
        "newest": max(f.planned_at for f in fires),
        "last_job_id": max(with_jobs, key=lambda f: f.planned_at).job_id if with_jobs else None,
        "keep": max(keep, 1),
    }
    q = connections.q

    async def write(conn: AConn) -> None:
        async with conn.transaction():
            await conn.execute(q["record_cron_fires"], params)
            await conn.execute(q["trim_cron_history"], params)

    await connections.run(write)


async def history(connections: Connections, name: str, *, limit: int) -> list[CronFire]:
    """The newest ``limit`` records of ``name``, newest planned time first."""
    found = await connections.fetchall("cron_history", {"name": name, "limit": max(limit, 0)})
    return [
        CronFire(
            planned_at=row[0],
            outcome=CronOutcome(row[1]),
            job_id=row[2],
            reason=row[3],
            count=row[4],
            recorded_at=row[5],
        )
        for row in found
    ]
