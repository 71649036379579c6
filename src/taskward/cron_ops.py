"""The operator's recurring schedules: save, delete, pause, resume, list, their fire history.

:class:`CronOperations` is mixed into :class:`~taskward.manager.TaskManager`; every method
here is one of its public methods. It needs from the manager only what is declared at the top
of the class. Running a schedule's job now is in :mod:`taskward.schedule_ops`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from taskward.backends.base import Backend
from taskward.building import TaskRef
from taskward.clock import Clock
from taskward.cron import CronExpression, CronPolicy
from taskward.errors import InvalidOptions, ScheduleNotFound
from taskward.jobs import CRON_HISTORY_KEEP, CronFire, NewJob, Schedule
from taskward.observe.events import Event, EventBus
from taskward.schedule_ops import set_schedule_paused
from taskward.serialize import encode_payload
from taskward.settings import Settings

__all__ = ["CronOperations"]

logger = logging.getLogger("taskward")


class CronOperations:
    """Recurring schedules (mixed into the TaskManager; sync twins on ``manager.sync``)."""

    events: EventBus
    settings: Settings
    clock: Clock

    async def _backend(self) -> Backend:
        raise NotImplementedError

    def build_job(
        self,
        ref: TaskRef,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> NewJob:
        """Validate a job (the manager's; see :meth:`taskward.operations.Operations.build_job`)."""
        raise NotImplementedError

    async def schedule_recurring_task(
        self,
        name: str,
        task: TaskRef,
        *,
        cron: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        catch_up: str = "skip",
        max_catch_up: int = 10,
        catch_up_within: float | None = None,
        overlap: str = "allow",
    ) -> Schedule:
        """Create or replace the recurring schedule ``name``: ``task`` at every ``cron`` time.

        ``catch_up`` (``"skip"``, ``"latest"`` or ``"all"``, at most ``max_catch_up`` and only
        fire times younger than ``catch_up_within`` seconds) says what happens to fire times
        missed while no scheduler ran; ``overlap`` (``"allow"``, ``"skip"`` or
        ``"cancel_running"``) what happens at a fire time while a job of the schedule's
        previous round has not ended. Replacing a schedule keeps its fire history and an
        operator's pause (:meth:`pause_schedule`), so an app that saves its schedules at every
        start does not undo either; the value returned is the definition saved, without that
        state (:meth:`list_recurring_tasks` reads it). The schedule stores the arguments in
        clear, even for an encrypted task; each fire's job is sealed like any other.
        """
        if not name or len(name) > 200:
            raise InvalidOptions("a recurring schedule needs a name of 1-200 characters")
        CronExpression.parse(cron, timezone)
        policy = CronPolicy.parse(
            catch_up=catch_up,
            max_catch_up=max_catch_up,
            catch_up_within=catch_up_within,
            overlap=overlap,
        )
        probe = self.build_job(
            task, args, kwargs, queue=queue, priority=priority, max_attempts=max_attempts
        )
        # The schedule keeps the clear, normalised arguments, not the probe's: the probe of an
        # encrypted task is sealed (args [], kwargs {"taskward.sealed": ...}), which no fire
        # could build a job from. Each fire's job is sealed by the builder, as any job.
        payload = encode_payload(args, kwargs or {}, max_bytes=self.settings.max_payload_bytes)
        schedule = Schedule(
            name=name,
            task=probe.task,
            cron=cron,
            timezone=timezone,
            args=payload.args,
            kwargs=payload.kwargs,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            created_at=self.clock.now(),
            catch_up=policy.catch_up,
            max_catch_up=policy.max_catch_up,
            catch_up_within=policy.catch_up_within,
            overlap=policy.overlap,
        )
        await (await self._backend()).save_schedule(schedule)
        logger.info("recurring schedule %r saved: %s %s (%s)", name, probe.task, cron, timezone)
        return schedule

    async def cancel_recurring_task(self, name: str) -> None:
        """Delete the recurring schedule ``name``; raise ``ScheduleNotFound`` if there is none."""
        if not await (await self._backend()).delete_schedule(name):
            raise ScheduleNotFound(name)

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop schedule ``name`` from firing until :meth:`resume_schedule`; return it.

        The pause is stored with the schedule and survives the app saving its schedules
        again at start (:meth:`schedule_recurring_task` keeps it). Raises
        ``ScheduleNotFound``. Its job can still be run by hand (the dashboard's "Run now").
        """
        schedule, changed = await set_schedule_paused(
            await self._backend(), name, True, now=self.clock.now()
        )
        if changed:
            self._schedule_event("cron.paused", schedule)
        return schedule

    async def resume_schedule(self, name: str) -> Schedule:
        """Let schedule ``name`` fire again from its next fire time; return it.

        The fire times that passed while it was paused are not caught up: they are recorded
        in its fire history as one skipped summary (reason "paused"). Raises
        ``ScheduleNotFound``.
        """
        schedule, changed = await set_schedule_paused(
            await self._backend(), name, False, now=self.clock.now()
        )
        if changed:
            self._schedule_event("cron.resumed", schedule)
        return schedule

    def _schedule_event(self, name: str, schedule: Schedule) -> None:
        at = self.clock.now()
        self.events.emit(Event(name=name, at=at, data={"schedule": schedule.name}))

    async def list_recurring_tasks(self) -> list[Schedule]:
        """Return every recurring schedule."""
        return await (await self._backend()).list_schedules()

    async def cron_history(
        self, name: str | Schedule, *, limit: int = CRON_HISTORY_KEEP
    ) -> list[CronFire]:
        """Return schedule ``name``'s fire history, newest planned time first.

        Each record: the planned time, what happened (``inserted``, ``caught_up``,
        ``skipped``), the job id if one was inserted, and why it was skipped. Raises
        ``ScheduleNotFound`` for an unknown schedule and ``InvalidOptions`` for a ``limit``
        outside 1-``CRON_HISTORY_KEEP``.

        ``name`` may also be a :class:`~taskward.jobs.Schedule` just read from
        :meth:`list_recurring_tasks`: its history is then read alone, without listing the
        schedules to tell an unknown name from one without records (one listing per
        schedule would make a page of N schedules cost N listings); one deleted meanwhile
        has no records.
        """
        whole = isinstance(limit, int) and not isinstance(limit, bool)
        if not whole or not 1 <= limit <= CRON_HISTORY_KEEP:
            raise InvalidOptions(
                f"limit must be an integer from 1 to {CRON_HISTORY_KEEP}, got {limit!r}"
            )
        listed = isinstance(name, Schedule)
        key = name.name if isinstance(name, Schedule) else name
        backend = await self._backend()
        history = await backend.cron_history(key, limit=limit)
        if not (history or listed) and key not in {s.name for s in await backend.list_schedules()}:
            raise ScheduleNotFound(key)
        return history

    def next_fire(self, schedule: Schedule, after: datetime | None = None) -> datetime:
        """Return the next fire time of ``schedule`` after ``after`` (default: now)."""
        cron = CronExpression.parse(schedule.cron, schedule.timezone)
        return cron.next_fire(after or self.clock.now())
