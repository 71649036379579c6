"""Cron fire history on SQLite: the records of migration 0007 and the schedule's state.

Functions of a :class:`~taskward.backends.sqlite.connection.SqliteConnection` (the store), run
on its thread by the backend facade. :func:`record` writes the new records, trims the
schedule's history to the newest ``keep`` and advances ``last_fire_at``/``last_job_id`` in one
``BEGIN IMMEDIATE`` transaction, so a reader never sees records without the state they imply.
Deleting a schedule deletes its records (the migration's trigger).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from taskward.backends.sqlite.connection import SqliteConnection
from taskward.jobs import CronFire, CronOutcome

__all__ = ["history", "record"]


def record(
    store: SqliteConnection, name: str, fires: Sequence[CronFire], now: datetime, keep: int
) -> None:
    """Append ``fires`` to ``name``'s history (see ``Backend.record_cron_fires``)."""
    if not fires:
        return
    at = now.timestamp()
    with store._write() as db:
        if db.execute(store.q["schedule_exists"], (name,)).fetchone() is None:
            return
        db.executemany(
            store.q["record_cron_fire"],
            [
                (name, f.planned_at.timestamp(), str(f.outcome), f.job_id, f.reason, f.count, at)
                for f in fires
            ],
        )
        db.execute(store.q["trim_cron_history"], (name, max(keep, 1)))
        with_jobs = [f for f in fires if f.job_id is not None]
        job_id = max(with_jobs, key=lambda f: f.planned_at).job_id if with_jobs else None
        newest = max(f.planned_at for f in fires).timestamp()
        db.execute(store.q["advance_cron_state"], (name, newest, job_id))


def history(store: SqliteConnection, name: str, limit: int) -> list[CronFire]:
    """The newest ``limit`` records of ``name``, newest planned time first."""
    cursor = store._db().execute(store.q["cron_history"], (name, max(limit, 0)))
    return [
        CronFire(
            planned_at=datetime.fromtimestamp(row[0], UTC),
            outcome=CronOutcome(row[1]),
            job_id=row[2],
            reason=row[3],
            count=row[4],
            recorded_at=datetime.fromtimestamp(row[5], UTC),
        )
        for row in cursor
    ]
