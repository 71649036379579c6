"""NoopBackend: accepts enqueues and drops them, for environments where jobs are disabled.

This is the spec's ``enabled=false``: application code keeps calling ``enqueue`` unchanged,
nothing is stored, and every drop is counted and logged at DEBUG (one WARNING on open says so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from taskward.backends.base import Capability, MigrationReport
from taskward.backends.unsupported import NoWorkflows
from taskward.errors import JobNotFound, NotSupported
from taskward.health.figures import HealthFigures, HealthQuery
from taskward.jobs import (
    CRON_HISTORY_KEEP,
    CronFire,
    Inserted,
    Job,
    JobEdit,
    JobFilter,
    JobState,
    JobUpdate,
    LeaseReport,
    NewJob,
    Page,
    Reseal,
    Schedule,
    Stats,
    WorkerInfo,
)
from taskward.limits import QueueFlow, QueueLimits

logger = logging.getLogger(__name__)


class NoopBackend(NoWorkflows):
    """A store that stores nothing and says so."""

    def __init__(self, url: str = "noop://") -> None:
        self.url = url
        self.dropped = 0

    @property
    def capabilities(self) -> frozenset[Capability]:
        """No optional features: jobs cannot even be read back."""
        return frozenset()

    async def open(self) -> None:
        """Warn once that jobs are disabled."""
        logger.warning("taskward is disabled (noop backend): enqueued jobs are dropped")

    async def close(self) -> None:
        """Nothing to release."""

    async def migrate(self) -> MigrationReport:
        """No schema: nothing to apply, no version."""
        return MigrationReport()

    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Drop the jobs, answering each with the job as given, unsaved: id 0, attempt 0."""
        self.dropped += len(jobs)
        logger.debug("dropped %d job(s): taskward is disabled", len(jobs))
        return [Inserted(job=_unsaved(new, now)) for new in jobs]

    async def fetch(
        self, *, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Nothing to fetch."""
        return []

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Every lease is lost: there are no jobs."""
        return LeaseReport(lost=frozenset(job_ids))

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        """Nothing to finish."""
        return [False] * len(updates)

    async def set_progress(self, job_id: int, progress: Any, *, worker_id: str) -> bool:
        """Nothing to update."""
        return False

    async def wait_for_jobs(self, queues: Collection[str], *, timeout: float) -> None:
        """Sleep: nothing will ever arrive."""
        await asyncio.sleep(timeout)

    async def wait_for_ends(self, job_ids: Collection[int], *, timeout: float) -> None:
        """Sleep: no job is stored, so none ends (``wait_for`` itself raises NotSupported)."""
        if job_ids:
            await asyncio.sleep(timeout)

    async def promote_due(self, *, now: datetime) -> int:
        """Nothing is due."""
        return 0

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        """Nothing runs."""
        return []

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Nothing ever finishes."""
        return []

    async def health_figures(self, query: HealthQuery) -> HealthFigures:
        """Nothing waits, runs or ends: empty figures (a healthy, idle store)."""
        return HealthFigures()

    async def prune(self, *, before: Mapping[JobState, datetime]) -> int:
        """Nothing to delete."""
        return 0

    async def get(self, job_id: int) -> Job:
        """No job exists."""
        raise JobNotFound(job_id)

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """No job exists."""
        return []

    async def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """An empty page."""
        return Page(items=[], total_entries=0, page_number=filter.page, page_size=filter.per_page)

    async def cancel(self, job_id: int, *, reason: str, now: datetime) -> Job:
        """No job exists."""
        raise JobNotFound(job_id)

    async def retry(self, job_id: int, *, now: datetime, edit: JobEdit | None = None) -> Job:
        """No job exists (with or without an edit)."""
        raise JobNotFound(job_id)

    async def delete(self, job_id: int, *, states: Collection[JobState] | None = None) -> bool:
        """No job exists."""
        return False

    async def reseal(self, rewrites: Sequence[Reseal]) -> list[bool]:
        """No job exists: nothing is written."""
        return [False] * len(rewrites)

    async def stats(self) -> Stats:
        """No counts."""
        return Stats(counts={})

    async def pause_queue(self, queue: str) -> None:
        """Pausing needs a store."""
        raise NotSupported("the noop backend cannot pause queues")

    async def resume_queue(self, queue: str) -> None:
        """Resuming needs a store."""
        raise NotSupported("the noop backend cannot resume queues")

    async def paused_queues(self) -> set[str]:
        """No queue is paused."""
        return set()

    async def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Limits need a store."""
        raise NotSupported("the noop backend cannot limit queues")

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """No queue has limits."""
        return {}

    async def hold_queue(
        self, queue: str, *, until: datetime | None, key: str | None = None
    ) -> None:
        """Holds need a store."""
        raise NotSupported("the noop backend cannot hold queues")

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """No queue has limits or holds."""
        return QueueFlow()

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """No queue has limits or holds."""
        return {}

    async def save_schedule(self, schedule: Schedule) -> None:
        """Drop the schedule."""

    async def delete_schedule(self, name: str) -> bool:
        """No schedule exists."""
        return False

    async def list_schedules(self) -> list[Schedule]:
        """No schedule exists."""
        return []

    async def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """No schedule exists to pause or resume."""
        return False

    async def record_cron_fires(
        self, name: str, fires: Sequence[CronFire], *, now: datetime, keep: int = CRON_HISTORY_KEEP
    ) -> None:
        """Drop the records: no schedule exists."""

    async def cron_history(self, name: str, *, limit: int = CRON_HISTORY_KEEP) -> list[CronFire]:
        """No schedule exists, so no history."""
        return []

    async def acquire_lease(
        self, name: str, *, holder: str, now: datetime, until: datetime
    ) -> bool:
        """Always granted: there is nothing to coordinate."""
        return True

    async def record_worker(self, info: WorkerInfo) -> None:
        """Not recorded."""

    async def remove_worker(self, worker_id: str) -> None:
        """Nothing recorded."""

    async def list_workers(self, *, alive_since: datetime) -> list[WorkerInfo]:
        """No workers recorded."""
        return []


def _unsaved(new: NewJob, now: datetime) -> Job:
    return Job(
        id=0,
        task=new.task,
        queue=new.queue,
        args=new.args,
        kwargs=new.kwargs,
        state=new.state,
        priority=new.priority,
        attempt=0,
        max_attempts=new.max_attempts,
        scheduled_at=new.scheduled_at,
        inserted_at=now,
        timeout=new.timeout,
        unique_key=new.unique_key,
        tags=new.tags,
        meta=new.meta,
        depends_on=new.depends_on,
    )
