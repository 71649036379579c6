"""The health check's figures of the SQLite store: five statements in one read snapshot.

The statements are ``health_*`` in ``queries.sql``; each reads one partial index (claim,
promotion, lease, prune), so the cost follows the waiting, running and recently ended jobs,
never the finished history. ``health_ended`` also lists the run times of the hour's completed
jobs (SQLite has no percentile aggregate), ranked here. The rules are
:mod:`taskward.health.figures`'.
"""

from __future__ import annotations

from datetime import UTC, datetime

from taskward.backends.sqlite import rows
from taskward.backends.sqlite.connection import SqliteConnection
from taskward.health.figures import Ended, FiguresBuilder, HealthFigures, HealthQuery
from taskward.health.run_times import MICROSECOND, from_sorted

__all__ = ["health_figures"]


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def health_figures(store: SqliteConnection, query: HealthQuery) -> HealthFigures:
    """Read the figures of the health check at ``query.now`` (on the database thread)."""
    builder = FiguresBuilder()
    timed: list[tuple[str, str, str]] = []
    q = store.q
    stuck_params = (rows.epoch(query.grace_cutoff), rows.epoch(query.started_cutoff))
    with store._read() as db:  # one snapshot: a job moving between states is counted once
        paused = frozenset(queue for (queue,) in db.execute(q["list_paused"]))
        for queue, count, oldest in db.execute(q["health_pending"]):
            builder.due(queue, count, _time(oldest))
        for queue, count, oldest in db.execute(q["health_due_later"], (rows.epoch(query.now),)):
            builder.due(queue, count, _time(oldest))
        for queue, count, stuck in db.execute(q["health_running"], stuck_params):
            builder.running(queue, count, int(stuck or 0))
        for queue, job_id in db.execute(q["health_stuck"], stuck_params):
            builder.stuck_id(queue, job_id)
        windows = (rows.epoch(query.recent_since), rows.epoch(query.since))
        for queue, task, recent, recent_failed, runs, failed, micros in db.execute(
            q["health_ended"], windows
        ):
            builder.ended(
                queue,
                task,
                recent=Ended(runs=recent, failures=recent_failed),
                window=Ended(runs=runs, failures=failed),
            )
            if micros:  # sorted after the read: the snapshot is not held for it
                timed.append((queue, task, micros))
    for queue, task, micros in timed:
        ran = sorted(int(us) for us in micros.split(","))
        builder.run_times(from_sorted(queue, task, ran, unit=MICROSECOND))
    return builder.build(paused)
