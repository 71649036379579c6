"""CronScheduler: inserts each (schedule name, fire time) once, from any number of workers.

Every worker may run it; only the leader inserts. Each fire time becomes a job whose unique key
is ``cron:{name}:{fire time}`` with no expiry, so a second scheduler (or a restart) that
proposes the same slot gets the existing job back instead of a second one.

Per schedule and round (issue 25): the fire times since the schedule's stored ``last_fire_at``
are planned by :func:`~taskward.runtime.catchup.plan_fires` (on time, caught up, or skipped as
missed, by the schedule's ``catch_up``); their jobs are built, then the ``overlap`` policy
looks at the jobs of the schedule's last round (the round of ``last_job_id``, found in the
history) and, if none has ended, skips or cancels; then what happened to each fire time goes to
the store's fire history, which also advances ``last_fire_at``/``last_job_id``
(``Backend.record_cron_fires``). A round with no fire time due writes nothing.

A paused schedule (issue 26) is passed by: no job, no record. Resuming it records the fire
times it let pass as one skipped summary (``taskward.schedule_ops``), so it does not burst.
The overlap judge, :func:`judge_overlap`, is shared with "run now", and sees the unfinished
jobs "run now" inserted too (:func:`manual_runs`), so a manual run and a fire never overlap
where the policy forbids it.

Inserting the jobs and recording them are two steps: a scheduler that dies between them leaves
jobs the history does not name. The next round inserts their fire times again if it catches
them up (the unique key hands back the existing job, recorded as usual), but records them as
missed if its ``catch_up`` skips them, and ``last_job_id`` does not name them, so ``overlap``
does not see them. The jobs themselves run once; only the bookkeeping of that round is off.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from taskward.backends.base import Backend
from taskward.clock import Clock
from taskward.cron import CronExpression
from taskward.errors import JobNotFound, TaskwardError
from taskward.jobs import (
    FINISHED_STATES,
    WAITING_STATES,
    CronFire,
    CronOutcome,
    Job,
    JobFilter,
    JobState,
    NewJob,
    Overlap,
    Schedule,
)
from taskward.observe.events import Event, EventBus
from taskward.runtime.catchup import FirePlan, plan_fires
from taskward.runtime.maintenance import Leadership
from taskward.runtime.service import PeriodicService
from taskward.text import inert

logger = logging.getLogger(__name__)

MAX_LATENESS = 60.0
"""Seconds a fire time may be late and still be inserted on time (the scheduler's default)."""

CancelJob = Callable[[int, str], Awaitable[Job]]
"""Requests the cancel of a job with a reason: the manager's operator cancel path."""


def cron_unique_key(name: str, fire_at: datetime) -> str:
    """Return the unique key of one schedule slot."""
    return f"cron:{name}:{fire_at.isoformat()}"


class CronScheduler(PeriodicService):
    """Turns recurring schedules into jobs at their fire times, and records what it did."""

    name = "cron"

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        *,
        make_job: Callable[[Schedule, datetime], NewJob],
        interval: float = 1.0,
        max_lateness: float = MAX_LATENESS,
        leadership: Leadership | None = None,
        events: EventBus | None = None,
        cancel_job: CancelJob | None = None,
    ) -> None:
        super().__init__(interval)
        self.events = events if events is not None else EventBus()
        self.leadership = leadership
        self.backend = backend
        self.clock = clock
        self.make_job = make_job
        self.max_lateness = max_lateness
        self.cancel_job = cancel_job

    async def run_once(self) -> None:
        """Handle every fire time that fell due since each schedule's last (leader only).

        Only the leader inserts, so nodes do not all race for each slot; the slot's unique key
        stays the safety net when leadership changes hands mid-slot, and a planned time already
        in the history keeps its first record.
        """
        if self.leadership is not None and not await self.leadership.is_leader():
            return
        now = self.clock.now()
        for schedule in await self.backend.list_schedules():
            if schedule.paused:  # its resume records the fire times it let pass
                continue
            plan = self._plan(schedule, now)
            if plan is not None and not plan.empty:
                await self._fire(schedule, plan, now)

    def _plan(self, schedule: Schedule, now: datetime) -> FirePlan | None:
        try:
            cron = CronExpression.parse(schedule.cron, schedule.timezone)
        except TaskwardError:
            # A schedule saved by an older version (or by hand) may no longer validate:
            # skip it loudly rather than stop every other schedule.
            logger.exception("skipping invalid schedule %r", schedule.name)
            return None
        return plan_fires(schedule, cron, now=now, max_lateness=self.max_lateness)

    async def _fire(self, schedule: Schedule, plan: FirePlan, now: datetime) -> None:
        """Build the plan's jobs, apply the overlap policy, insert, and record every fire time."""
        records = [plan.skipped] if plan.skipped is not None else []
        due = [(at, CronOutcome.CAUGHT_UP) for at in plan.caught_up]
        due += [(at, CronOutcome.INSERTED) for at in plan.on_time]
        if due:
            records += await self._due(schedule, due, now)
        await self.backend.record_cron_fires(schedule.name, records, now=now)

    async def _due(
        self, schedule: Schedule, due: list[tuple[datetime, CronOutcome]], now: datetime
    ) -> list[CronFire]:
        """The records of the fire times ``due``: built, judged by ``overlap``, inserted.

        The jobs are built first: ``cancel_running`` must not stop the previous run for a fire
        time whose own job cannot be built (nothing would replace it).
        """
        try:
            new_jobs = [self.make_job(schedule, at) for at, _ in due]
        except TaskwardError as exc:  # e.g. stored arguments a changed task no longer accepts
            # Recorded, not retried every second: the history shows why nothing ran. Only the
            # exception's type goes there: its text may quote argument values (a
            # partition_key function's error, say), which the log keeps for the operator.
            logger.exception("skipping schedule %r: its job does not build", inert(schedule.name))
            reason = f"its job does not build ({type(exc).__name__}); see the scheduler's log"
            return [
                CronFire(planned_at=at, outcome=CronOutcome.SKIPPED, reason=reason) for at, _ in due
            ]
        trigger = f"fire time {due[-1][0].isoformat()}"
        skip, note = await judge_overlap(
            self.backend, schedule, trigger=trigger, now=now, cancel_job=self.cancel_job
        )
        if skip:
            logger.info("cron %r skipped %d fire time(s): %s", inert(schedule.name), len(due), note)
            return [
                CronFire(planned_at=at, outcome=CronOutcome.SKIPPED, reason=note) for at, _ in due
            ]
        records = await self._insert(due, new_jobs, now)
        if note:  # the cancel it asked for, on the record of the newest job
            records[-1] = replace(records[-1], reason=note)
        return records

    async def _insert(
        self, due: list[tuple[datetime, CronOutcome]], new_jobs: list[NewJob], now: datetime
    ) -> list[CronFire]:
        """Insert the built jobs of ``due``; the records of what became of each fire time."""
        inserted = await self.backend.insert(new_jobs, now=now)
        records = []
        for (at, outcome), item in zip(due, inserted, strict=True):
            records.append(CronFire(planned_at=at, outcome=outcome, job_id=item.job.id))
            if not item.duplicate:
                self._inserted(item.job, now, caught_up=outcome is CronOutcome.CAUGHT_UP)
        return records

    def _inserted(self, job: Job, now: datetime, *, caught_up: bool) -> None:
        logger.info(
            "cron inserted job %s (%s) for %s%s",
            job.id,
            inert(job.task),
            job.scheduled_at.isoformat(),
            " (caught up)" if caught_up else "",
            extra={"job_id": job.id, "task": job.task},
        )
        self.events.emit(
            Event.for_job(
                "cron.inserted",
                job,
                now,
                schedule=job.meta.get("schedule"),
                fire_at=job.scheduled_at,
                caught_up=caught_up,
            )
        )


async def judge_overlap(
    backend: Backend,
    schedule: Schedule,
    *,
    trigger: str,
    now: datetime,
    cancel_job: CancelJob | None = None,
) -> tuple[bool, str]:
    """Apply ``overlap`` before inserting a job of ``schedule``: skip it, and what to record.

    One judge for a fire time and for "run now" (``taskward.schedule_ops``); ``trigger``
    names which in the cancel reason ("fire time …", "run now at …"). The previous run is
    every job of the schedule's last round (see :func:`previous_round`); a job counts as
    running until it has ended (completed, failed, discarded, cancelled): a job still waiting
    for a worker overlaps too. A job that is gone (pruned, deleted) has ended. Returns whether
    to skip, and the note for the record: why it skipped, or the cancels it asked for.
    """
    policy = Overlap(schedule.overlap)
    if policy is Overlap.ALLOW:
        return False, ""
    previous = await previous_round(backend, schedule)
    seen = {job.id for job in previous}
    previous += [job for job in await manual_runs(backend, schedule) if job.id not in seen]
    running = [job for job in previous if job.state not in FINISHED_STATES]
    if not running:
        return False, ""
    if policy is Overlap.SKIP:
        return True, f"previous {_runs(running)} still running ({_states(running)})"
    asked = []
    for job in running:
        reason = (
            f"cancelled by schedule {schedule.name!r}: {trigger} came while it was "
            f"{job.state} (overlap=cancel_running)"
        )
        try:
            if cancel_job is not None:
                await cancel_job(job.id, reason)
            else:
                await backend.cancel(job.id, reason=reason, now=now)
        except JobNotFound:  # deleted since it was read: it has ended
            continue
        logger.info("cron %r requested the cancel of job %s", inert(schedule.name), job.id)
        asked.append(job)
    if not asked:
        return False, ""
    return False, f"cancel of previous {_runs(asked)} requested ({_states(asked)})"


async def previous_round(backend: Backend, schedule: Schedule) -> list[Job]:
    """The jobs the schedule's last round inserted (the round of ``last_job_id``).

    Usually one job; after a ``catch_up="all"`` burst, all of it: the run still going may
    be an older one of the burst, not the newest. The round is read from the history (its
    records share one ``recorded_at``), so only as far as the history still holds it;
    ``last_job_id`` itself is always judged.
    """
    if schedule.last_job_id is None:
        return []
    ids = [schedule.last_job_id]
    history = await backend.cron_history(schedule.name)
    last = next((f for f in history if f.job_id == schedule.last_job_id), None)
    if last is not None:
        ids += [
            f.job_id
            for f in history
            if f.job_id is not None
            and f.job_id != schedule.last_job_id
            and f.recorded_at == last.recorded_at
        ]
    return await backend.get_jobs(sorted(ids))


RUN_NOW_META = "run_now"
"""The meta key (true) of a job a schedule's "Run now" inserted, not one of its fire times."""
MANUAL_RUNS_READ = 100
"""Unfinished jobs of the schedule's task read to find its manual runs (the newest ones)."""


async def manual_runs(backend: Backend, schedule: Schedule) -> list[Job]:
    """The unfinished jobs a "Run now" of ``schedule`` inserted (no fire record names them).

    Read from the newest :data:`MANUAL_RUNS_READ` unfinished jobs of the schedule's task: a
    task with more waiting jobs than that may hide an older manual run from the judge.
    """
    if Overlap(schedule.overlap) is Overlap.ALLOW:
        return []
    unfinished = frozenset(WAITING_STATES | {JobState.RUNNING})
    flt = JobFilter(states=unfinished, task=schedule.task, per_page=MANUAL_RUNS_READ)
    page = await backend.list_jobs(flt)
    return [
        job
        for job in page.items
        # Meta a store could not read (UnreadablePayload) is no manual run's.
        if isinstance(job.meta, dict)
        and job.meta.get(RUN_NOW_META) is True
        and job.meta.get("schedule") == schedule.name
    ]


def _runs(jobs: list[Job]) -> str:
    """``run 7`` or ``runs 7, 9``: the previous runs a history record names."""
    ids = ", ".join(str(job.id) for job in jobs)
    return f"run {ids}" if len(jobs) == 1 else f"runs {ids}"


def _states(jobs: list[Job]) -> str:
    return ", ".join(str(job.state) for job in jobs)
