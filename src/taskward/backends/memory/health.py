"""The health check's figures of the memory store: one pass over its jobs.

The reference for the SQL and Redis stores: the same rules (``taskward.health.figures``),
written as plainly as they can be.
"""

from __future__ import annotations

from collections.abc import Iterable

from taskward.health.figures import FiguresBuilder, HealthFigures, HealthQuery
from taskward.jobs import Job, JobState

__all__ = ["health_figures"]

S = JobState


def health_figures(
    jobs: Iterable[Job], paused: frozenset[str], query: HealthQuery
) -> HealthFigures:
    """Count ``jobs`` for the health check at ``query.now``."""
    builder = FiguresBuilder()
    stuck: list[Job] = []
    for job in jobs:
        if job.state is S.PENDING or (
            job.state in (S.SCHEDULED, S.RETRYABLE) and job.scheduled_at <= query.now
        ):
            builder.due(job.queue, 1, job.scheduled_at)
        elif job.state is S.RUNNING:
            is_stuck = query.is_stuck(
                attempted_at=job.attempted_at, timeout=job.timeout, lease_until=job.lease_until
            )
            builder.running(job.queue, 1, 1 if is_stuck else 0)
            if is_stuck:
                stuck.append(job)
        else:
            ended = job.discarded_at if job.state is S.DISCARDED else job.completed_at
            if ended is not None and ended >= query.since:
                builder.ended_job(
                    job.queue, job.task, job.state, recent=ended >= query.recent_since
                )
                if job.state is S.COMPLETED and job.attempted_at is not None:
                    ran = (ended - job.attempted_at).total_seconds()
                    builder.run_time(job.queue, job.task, ran)
    for job in sorted(stuck, key=lambda j: (j.attempted_at or j.inserted_at, j.id)):
        builder.stuck_id(job.queue, job.id)
    return builder.build(paused)
