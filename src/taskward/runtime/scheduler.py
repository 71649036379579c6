"""CronScheduler: inserts each (schedule name, fire time) once, from any number of workers.

Every worker may run it. Each fire time becomes a job whose unique key is
``cron:{name}:{fire time}`` with no expiry, so a second scheduler (or a restart) that proposes the
same slot gets the existing job back instead of a second one. Slots missed by more than
``max_lateness`` seconds (the workers were down) are skipped, not replayed in a burst.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from taskward.backends.base import Backend
from taskward.clock import Clock
from taskward.cron import CronExpression
from taskward.errors import TaskwardError
from taskward.jobs import NewJob, Schedule
from taskward.observe.events import Event, EventBus
from taskward.runtime.maintenance import Leadership
from taskward.runtime.service import PeriodicService
from taskward.text import inert

logger = logging.getLogger(__name__)


def cron_unique_key(name: str, fire_at: datetime) -> str:
    """Return the unique key of one schedule slot."""
    return f"cron:{name}:{fire_at.isoformat()}"


class CronScheduler(PeriodicService):
    """Turns recurring schedules into jobs at their fire times."""

    name = "cron"

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        *,
        make_job: Callable[[Schedule, datetime], NewJob],
        interval: float = 1.0,
        max_lateness: float = 60.0,
        leadership: Leadership | None = None,
        events: EventBus | None = None,
    ) -> None:
        super().__init__(interval)
        self.events = events if events is not None else EventBus()
        self.leadership = leadership
        self.backend = backend
        self.clock = clock
        self.make_job = make_job
        self.max_lateness = max_lateness
        self._checked_until: datetime | None = None

    async def run_once(self) -> None:
        """Insert every slot that fell due since the last round (on the leader only).

        Only the leader inserts, so nodes do not all race for each slot; the slot's unique key
        stays the safety net when leadership changes hands mid-slot.
        """
        if self.leadership is not None and not await self.leadership.is_leader():
            self._checked_until = None  # a new leader looks back max_lateness, no further
            return
        now = self.clock.now()
        start = now - timedelta(seconds=self.max_lateness)
        if self._checked_until is not None and self._checked_until > start:
            start = self._checked_until
        new_jobs: list[NewJob] = []
        for schedule in await self.backend.list_schedules():
            new_jobs.extend(self._due_jobs(schedule, start, now))
        if new_jobs:
            inserted = await self.backend.insert(new_jobs, now=now)
            for item in inserted:
                if not item.duplicate:
                    logger.info(
                        "cron inserted job %s (%s) for %s",
                        item.job.id,
                        inert(item.job.task),
                        item.job.scheduled_at.isoformat(),
                        extra={"job_id": item.job.id, "task": item.job.task},
                    )
                    self.events.emit(
                        Event.for_job(
                            "cron.inserted",
                            item.job,
                            now,
                            schedule=item.job.meta.get("schedule"),
                            fire_at=item.job.scheduled_at,
                        )
                    )
        self._checked_until = now

    def _due_jobs(self, schedule: Schedule, start: datetime, end: datetime) -> list[NewJob]:
        try:
            cron = CronExpression.parse(schedule.cron, schedule.timezone)
            return [self.make_job(schedule, at) for at in cron.fires_between(start, end)]
        except TaskwardError:
            # A schedule saved by an older version (or by hand) may no longer validate:
            # skip it loudly rather than stop every other schedule.
            logger.exception("skipping invalid schedule %r", schedule.name)
            return []
