"""Schedule actions an operator takes by hand: run a recurring schedule's job now.

"Run now" inserts the job a fire of the schedule would insert (the same builder: its task,
arguments, queue, priority and attempts), with a unique key of its own for the current
second (``run-now:<name>:<second>``, never a fire's ``cron:…`` key, so a manual run at a fire
time does not take the place of that fire). Two requests within one second make one job: the
second gets the first job back. The task must be registered in this process (its options
decide the job's queue and whether its arguments are sealed). The
fire history is left alone: it records what schedulers did at planned times (and moves the
schedule's ``last_fire_at``, which catch-up reads), and a manual run is no planned time. The
job is told apart by its meta: ``schedule``, ``fire_at`` and ``run_now: true``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime

from taskward.backends.base import Backend
from taskward.errors import ScheduleNotFound
from taskward.jobs import Inserted, NewJob, Schedule

__all__ = ["RUN_NOW_META", "find_schedule", "run_schedule_now"]

logger = logging.getLogger("taskward.schedules")

RUN_NOW_META = "run_now"
"""The meta key (true) of a job a schedule's "Run now" inserted, not one of its fire times."""


async def find_schedule(backend: Backend, name: str) -> Schedule:
    """The stored schedule ``name``; raise ``ScheduleNotFound`` if there is none."""
    for schedule in await backend.list_schedules():
        if schedule.name == name:
            return schedule
    raise ScheduleNotFound(name)


async def run_schedule_now(
    backend: Backend,
    schedule: Schedule,
    make_job: Callable[[Schedule, datetime], NewJob],
    now: datetime,
) -> Inserted:
    """Insert ``schedule``'s job for the second of ``now``; a duplicate answers the first.

    ``make_job`` is the manager's ``schedule_job`` (the builder a scheduler's fire uses); the
    job's unique key is the manual run's for ``now`` without its microseconds: every request
    within that second gets the same job (``Inserted.duplicate`` for all but the first).
    """
    at = now.replace(microsecond=0)
    new = make_job(schedule, at)
    new = dataclasses.replace(
        new,
        unique_key=f"run-now:{schedule.name}:{at.isoformat()}",
        meta={**new.meta, RUN_NOW_META: True},
    )
    (inserted,) = await backend.insert([new], now=now)
    logger.info(
        "schedule %r run now: job %s%s",
        schedule.name,
        inserted.job.id,
        " (already inserted this second)" if inserted.duplicate else "",
        extra={"job_id": inserted.job.id, "schedule": schedule.name},
    )
    return inserted
