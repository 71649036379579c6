"""Schedule actions an operator takes by hand: run a schedule's job now, pause, resume.

**Run now** inserts the job a fire of the schedule would insert (the same builder: its task,
arguments, queue, priority and attempts), with a unique key of its own for the current
second (``run-now:<name>:<second>``, never a fire's ``cron:…`` key, so a manual run at a fire
time does not take the place of that fire). Two requests within one second make one job: the
second gets the first job back. The task must be registered in this process (its options
decide the job's queue and whether its arguments are sealed). The schedule's ``overlap``
policy applies as at a fire time, judged by the scheduler's own judge
(:func:`~taskward.runtime.scheduler.judge_overlap`) against the jobs of the schedule's last
fire round: ``skip`` refuses with :class:`ScheduleOverlap` while one of them has not ended,
``cancel_running`` asks for their cancel and then inserts, ``allow`` inserts. A paused
schedule can still be run now: the pause stops its fire times, not an operator. The fire
history is left alone: it records what schedulers did at planned times (and moves the
schedule's ``last_fire_at``, which catch-up reads), and a manual run is no planned time. The
job is told apart by its meta: ``schedule``, ``fire_at`` and ``run_now: true``.

**Pause** sets the stored flag (``Schedule.paused``); schedulers then pass the schedule by.
**Resume** first records the fire times the pause let pass as one skipped summary (reason
"paused", see :func:`~taskward.runtime.catchup.paused_fires`), which moves ``last_fire_at`` to
the newest of them, then clears the flag: the schedule goes on at its next fire time, with no
catch-up burst. Recording before clearing means a scheduler never sees the schedule resumed
with the paused times still unhandled. A scheduler round that listed the schedule just
before the pause may still fire it once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime

from taskward.backends.base import Backend
from taskward.cron import CronExpression
from taskward.errors import ScheduleNotFound, ScheduleOverlap, TaskwardError
from taskward.jobs import Inserted, NewJob, Schedule
from taskward.runtime.catchup import paused_fires
from taskward.runtime.scheduler import (
    MAX_LATENESS,
    RUN_NOW_META,
    CancelJob,
    judge_overlap,
    manual_runs,
)
from taskward.text import inert

__all__ = [
    "RUN_NOW_META",
    "find_schedule",
    "run_schedule_now",
    "set_schedule_paused",
]

logger = logging.getLogger("taskward.schedules")


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
    *,
    cancel_job: CancelJob | None = None,
) -> Inserted:
    """Insert ``schedule``'s job for the second of ``now``; a duplicate answers the first.

    ``make_job`` is the manager's ``schedule_job`` (the builder a scheduler's fire uses); the
    job's unique key is the manual run's for ``now`` without its microseconds: every request
    within that second gets the same job (``Inserted.duplicate`` for all but the first).
    ``overlap`` applies first (raises :class:`ScheduleOverlap` for ``skip``); ``cancel_job``
    is the cancel path ``cancel_running`` uses (the manager's ``cancel_task``).
    """
    at = now.replace(microsecond=0)
    new = make_job(schedule, at)  # built first: a job that cannot build cancels nothing
    new = dataclasses.replace(
        new,
        unique_key=f"run-now:{schedule.name}:{at.isoformat()}",
        meta={**new.meta, RUN_NOW_META: True},
    )
    # A second click within the same second answers the first click's job: judged by the
    # overlap policy, that job would be "the previous run" and be refused or cancelled.
    slot = new.meta.get("fire_at")
    for job in await manual_runs(backend, schedule):
        if isinstance(job.meta, dict) and job.meta.get("fire_at") == slot:
            return Inserted(job=job, duplicate=True)
    trigger = f"run now at {at.isoformat()}"
    skip, note = await judge_overlap(
        backend, schedule, trigger=trigger, now=now, cancel_job=cancel_job
    )
    if skip:
        raise ScheduleOverlap(schedule.name, note)
    (inserted,) = await backend.insert([new], now=now)
    logger.info(
        "schedule %r run now: job %s%s%s",
        inert(schedule.name),
        inserted.job.id,
        " (already inserted this second)" if inserted.duplicate else "",
        f"; {note}" if note else "",
        extra={"job_id": inserted.job.id, "schedule": schedule.name},
    )
    return inserted


async def set_schedule_paused(
    backend: Backend, name: str, paused: bool, *, now: datetime
) -> tuple[Schedule, bool]:
    """Pause or resume schedule ``name``: the schedule, and whether this call changed it.

    ``ScheduleNotFound`` if there is none. Pausing a paused schedule (or resuming a running
    one) changes nothing. A resume records the fire times the pause let pass first (see the
    module's docstring).
    """
    schedule = await find_schedule(backend, name)
    if schedule.paused == paused:
        return schedule, False
    if not paused:
        await _record_paused(backend, schedule, now)
    if not await backend.set_schedule_paused(name, paused):
        raise ScheduleNotFound(name)  # deleted meanwhile
    logger.info("schedule %r %s", inert(name), "paused" if paused else "resumed")
    return await find_schedule(backend, name), True


async def _record_paused(backend: Backend, schedule: Schedule, now: datetime) -> None:
    """Record the fire times a paused schedule let pass (one summary), moving its last fire."""
    try:
        cron = CronExpression.parse(schedule.cron, schedule.timezone)
    except TaskwardError:
        return  # no fire time to record: schedulers skip a schedule that does not parse
    summary = paused_fires(schedule, cron, now=now, max_lateness=MAX_LATENESS)
    if summary is not None:
        await backend.record_cron_fires(schedule.name, [summary], now=now)
