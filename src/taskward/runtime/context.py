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
        self._cancelled = False  # a flag nobody awaits: an asyncio.Event per job cost more
        self.timed_out = False
        """True once the attempt's timeout fired: a sync job's thread may still run on, but
        its outcome is already the timeout (wrappers must not report another)."""
        self._loop = asyncio.get_running_loop()

    @property
    def job_id(self) -> int:
        """The running job's id."""
        return self.job.id

    @property
    def attempt(self) -> int:
        """The current attempt number (1 on the first run)."""
        return self.job.attempt

    @property
    def fence_token(self) -> int:
        """A number to store beside this run's own writes, so a stale run's write is refused.

        Store it with each write the job makes to its own tables, and write only where the
        stored token is not greater (``... WHERE stored.fence_token <= new.fence_token``). A
        run that lost its lease (a paused or partitioned worker whose job was rescued and
        claimed again) holds a smaller token than every run claimed after its rescue, so its
        late writes change nothing.

        It is the claim's attempt number. Every claim adds one; only a snooze (or a release at
        shutdown) gives one back, and that write is fenced to the latest claim's own run, so
        it happens only once that run has ended. Hence a run that may still be executing
        always holds a smaller token than any later claim; two runs share a token only when
        the first one had finished before the second was claimed. See
        ``examples/fenced_writes.py``.
        """
        return self.job.attempt

    @property
    def cancelled(self) -> bool:
        """True once an operator asked to cancel this job (a sync job should check it)."""
        return self._cancelled

    def request_cancel(self) -> None:
        """Mark the job as asked to stop (called by the worker, not by job code)."""
        self._cancelled = True

    async def report_progress(self, progress: Any) -> bool:
        """Store ``progress`` (any JSON value, e.g. ``{"done": 3, "total": 10}``) on the job.

        Returns False if the job is no longer owned by this worker (its lease was lost).
        """
        return await self._report(progress)

    def report_progress_sync(self, progress: Any, timeout: float = 30.0) -> bool:
        """Blocking twin of :meth:`report_progress` for a sync job running in its thread."""
        if _on_loop(self._loop):
            raise RuntimeError(
                "report_progress_sync was called on the event loop; await report_progress"
            )
        future = asyncio.run_coroutine_threadsafe(_as_coro(self._report(progress)), self._loop)
        return future.result(timeout)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _as_coro(awaitable: Awaitable[bool]) -> bool:
    return await awaitable
