"""Maintenance services: Stager, Rescuer, Pruner and Releaser.

Stager: due jobs → pending. Rescuer: expired leases. Pruner: old jobs. Releaser: the
workflow safety net.

Rescuer and Pruner only act while their worker holds the leader lease; that saves work, it is
not needed for safety (every write they make is fenced or idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from taskward.backends.base import Backend, Capability
from taskward.backoff import RetryPolicy
from taskward.clock import Clock
from taskward.jobs import Job, JobState
from taskward.observe.events import Event, EventBus
from taskward.runtime.service import PeriodicService
from taskward.states import Orphaned, next_update
from taskward.tasks import Task
from taskward.text import inert

logger = logging.getLogger(__name__)
LEADER_LEASE = "taskward:leader"


class Stager(PeriodicService):
    """Moves scheduled and retryable jobs whose time has come to pending."""

    name = "stager"

    def __init__(self, backend: Backend, clock: Clock, interval: float) -> None:
        super().__init__(interval)
        self.backend = backend
        self.clock = clock

    async def run_once(self) -> None:
        """Promote every due job."""
        await self.backend.promote_due(now=self.clock.now())


class Leadership:
    """Holds (or tries to take) the leader lease; ``is_leader()`` renews it as it asks."""

    def __init__(self, backend: Backend, clock: Clock, holder: str, ttl: float) -> None:
        self.backend = backend
        self.clock = clock
        self.holder = holder
        self.ttl = ttl

    async def is_leader(self) -> bool:
        """Take or renew the lease; True while this worker leads."""
        now = self.clock.now()
        until = now + timedelta(seconds=self.ttl)
        return await self.backend.acquire_lease(
            LEADER_LEASE, holder=self.holder, now=now, until=until
        )


class Rescuer(PeriodicService):
    """Gives jobs whose worker died (lease expired) their outcome: retryable or failed."""

    name = "rescuer"

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        interval: float,
        *,
        leadership: Leadership | None,
        resolve: Callable[[str], Task[Any, Any] | None],
        default_policy: RetryPolicy,
        events: EventBus | None = None,
    ) -> None:
        super().__init__(interval)
        self.backend = backend
        self.clock = clock
        self.leadership = leadership
        self.resolve = resolve
        self.default_policy = default_policy
        self.events = events if events is not None else EventBus()

    async def run_once(self) -> None:
        """Rescue up to 500 orphaned jobs; one that cannot be rescued never blocks the others."""
        if self.leadership is not None and not await self.leadership.is_leader():
            return
        now = self.clock.now()
        for job in await self.backend.expired_leases(now=now, limit=500):
            try:
                await self._rescue(job, now)
            except OSError:
                raise  # the store is unreachable: every other job would fail alike
            except Exception:
                logger.exception(
                    "could not rescue job %s (%s); trying again next round",
                    job.id,
                    inert(job.task),
                    extra={"job_id": job.id, "task": job.task, "queue": job.queue},
                )

    async def _rescue(self, job: Job, now: datetime) -> None:
        task = self.resolve(job.task)
        policy = task.backoff if task is not None else self.default_policy
        update = next_update(job, Orphaned(), now, policy)
        owner = job.attempted_by or ""
        if (await self.backend.finish([update], worker_id=owner))[0]:
            logger.warning(
                "rescued job %s (%s) from dead worker %s: now %s",
                job.id,
                inert(job.task),
                inert(owner),
                update.state,
                extra={"job_id": job.id, "task": job.task, "queue": job.queue},
            )
            error = update.error
            self.events.emit(
                Event.for_job(
                    "job.rescued",
                    job,
                    now,
                    state=update.state.value,
                    worker=owner,
                    error=f"{error.kind}: {error.message}" if error else None,
                )
            )


class Pruner(PeriodicService):
    """Deletes completed and dead jobs past their retention."""

    name = "pruner"

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        interval: float,
        *,
        leadership: Leadership | None,
        completed_days: float,
        failed_days: float,
    ) -> None:
        super().__init__(interval)
        self.backend = backend
        self.clock = clock
        self.leadership = leadership
        self.completed_days = completed_days
        self.failed_days = failed_days

    async def run_once(self) -> None:
        """Delete what is past retention."""
        if self.leadership is not None and not await self.leadership.is_leader():
            return
        deleted = await self.backend.prune(
            before=cutoffs(self.clock, self.completed_days, self.failed_days)
        )
        if deleted:
            logger.info("pruned %d old job(s)", deleted)


class Releaser(PeriodicService):
    """Recounts blocked workflow steps and releases those nothing holds back.

    The release normally happens in the transaction that ends a step's last dependency; this
    is the net under it (a dependency deleted after it ended, a store edited by hand). Each run
    recounts one small batch, resuming after the last step the previous run examined (the
    backend's cursor), so every blocked step is reached in turn however many wait
    legitimately, and no run costs more than a bounded number of dependency lookups.
    """

    name = "releaser"
    batch = 1000  # the backend stops earlier once RELEASE_LOOKUPS dependencies were read

    def __init__(
        self, backend: Backend, clock: Clock, interval: float, *, leadership: Leadership | None
    ) -> None:
        super().__init__(interval)
        self.backend = backend
        self.clock = clock
        self.leadership = leadership
        self.cursor = 0
        """The last job id the previous run examined (0: start over)."""

    async def run_once(self) -> None:
        """Release what the recount of the next batch frees."""
        if Capability.WORKFLOWS not in self.backend.capabilities:
            return
        if self.leadership is not None and not await self.leadership.is_leader():
            return
        released, self.cursor = await self.backend.release_blocked(
            now=self.clock.now(), limit=self.batch, after=self.cursor
        )
        if released:
            logger.warning("released %d blocked workflow step(s) the sweep found free", released)


def cutoffs(clock: Clock, completed_days: float, failed_days: float) -> dict[JobState, Any]:
    """Return the prune cutoff per finished state."""
    now = clock.now()
    done = now - timedelta(days=completed_days)
    dead = now - timedelta(days=failed_days)
    return {
        JobState.COMPLETED: done,
        JobState.CANCELLED: done,
        JobState.FAILED: dead,
        JobState.DISCARDED: dead,
    }
