"""JobContext: what a running job may see of itself (its job row, progress, cancellation)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from taskward.jobs import Job


class JobContext:
    """Handed to a job function whose first parameter is annotated ``JobContext``."""

    def __init__(self, job: Job, report: Callable[[Any], Awaitable[bool]]) -> None:
        self.job = job
        self._report = report
        self._cancelled = asyncio.Event()

    @property
    def job_id(self) -> int:
        """The running job's id."""
        return self.job.id

    @property
    def attempt(self) -> int:
        """The current attempt number (1 on the first run)."""
        return self.job.attempt

    @property
    def cancelled(self) -> bool:
        """True once an operator asked to cancel this job (a sync job should check it)."""
        return self._cancelled.is_set()

    def request_cancel(self) -> None:
        """Mark the job as asked to stop (called by the worker, not by job code)."""
        self._cancelled.set()

    async def report_progress(self, progress: Any) -> bool:
        """Store ``progress`` (any JSON value, e.g. ``{"done": 3, "total": 10}``) on the job.

        Returns False if the job is no longer owned by this worker (its lease was lost).
        """
        return await self._report(progress)
