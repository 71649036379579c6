"""The awaiting half of the facade (a mixin of ``TaskManager``): ``wait_for`` and its kin.

``wait_for`` (the result, or an error saying how the job ended), ``wait_for_end`` (the ended
job itself: the HTTP long poll), ``wait_for_blocking`` (``job.wait_sync()``; ``manager.sync
.wait_for`` is the generated twin) and ``outcome_watcher``, the running loop's shared watcher
(``taskward.outcomes``), which ``close`` stops.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from taskward.backends.base import Backend, Capability
from taskward.errors import NotSupported, WaitTimeout
from taskward.jobs import Job
from taskward.outcomes import OutcomeWatcher, check_job_id, check_timeout, outcome

__all__ = ["OutcomeOperations"]

R = TypeVar("R")


class OutcomeOperations:
    """Waiting for jobs' outcomes, on the manager (see :mod:`taskward.outcomes`)."""

    backend: Backend

    if TYPE_CHECKING:  # the manager's own (types only: nothing here may shadow them)

        async def _backend(self) -> Backend: ...

        def run_sync(self, awaitable: Awaitable[R]) -> R:
            """Run a coroutine on the manager's loop thread and wait for it."""
            ...

        def unsealed(self, job: Job) -> Job:
            """``job`` with its encrypted values opened where the manager's keys open them."""
            ...

    async def wait_for(self, job_id: int, *, timeout: float | None = None) -> Any:
        """Wait until job ``job_id`` ends; return its stored result when it completed.

        ``job_id`` must be a positive integer within signed 64 bits (else ``InvalidOptions``).
        Raises ``JobFailed`` (failed), ``JobDiscarded`` (discarded) or ``JobCancelled``
        (cancelled), each carrying the job and its last error; ``JobNotFound`` if the job does
        not exist or is deleted meanwhile; ``WaitTimeout`` (a ``TimeoutError``) after
        ``timeout`` seconds (None: no limit; 0: a look, no wait), leaving the job as it was.
        A job that is blocked, scheduled, pending, running or retryable has not ended: the
        wait goes on. Every waiter of this process and loop shares one watcher: one read of
        all watched jobs per round, woken by the store's notices where it has them.
        """
        return outcome(await self.wait_for_end(job_id, timeout=timeout))

    async def wait_for_end(self, job_id: int, *, timeout: float | None = None) -> Job:
        """Wait until job ``job_id`` ends (however it ends); return it as stored then.

        :meth:`wait_for` without turning the end into a result or an error (the HTTP API's
        long poll shows the job). Raises ``JobNotFound`` and ``WaitTimeout`` as it does.
        """
        job_id = check_job_id(job_id)  # before joining: a bad id must not fail the others
        check_timeout(timeout)
        backend = await self._backend()
        if Capability.STORES_JOBS not in backend.capabilities:
            raise NotSupported(f"{backend.url} stores no jobs: there is no outcome to wait for")
        try:
            if timeout == 0:  # a look, not a wait: ended now, or WaitTimeout
                job = await backend.get(job_id)
                if not job.is_finished:
                    raise TimeoutError
            else:
                job = await self.outcome_watcher().wait(job_id, timeout=timeout)
        except TimeoutError:
            raise WaitTimeout(job_id, timeout or 0.0) from None
        return self.unsealed(job)  # an encrypted result or error, opened by our keys

    def outcome_watcher(self) -> OutcomeWatcher:
        """The running loop's outcome watcher (made on first use).

        Its ``reads`` and ``waiting`` say what the waiters of this loop cost.
        """
        watchers = self._outcome_watchers()
        loop = asyncio.get_running_loop()
        watcher = watchers.get(loop)
        if watcher is None:
            watcher = watchers[loop] = OutcomeWatcher(self.backend)
        return watcher

    def wait_for_blocking(self, job_id: int, *, timeout: float | None = None) -> Any:
        """Blocking :meth:`wait_for` (``manager.sync.wait_for``, ``job.wait_sync()``)."""
        return self.run_sync(self.wait_for(job_id, timeout=timeout))

    async def _close_outcome_watcher(self) -> None:
        """Stop every loop's watcher: their waiters get ``BackendUnavailable``, not a hang.

        This loop's is awaited; another loop's (the sync portal's, another thread's) is told
        on its own thread, since its futures may only be touched there.
        """
        watchers = self._outcome_watchers()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        mine: OutcomeWatcher | None = None
        for loop, watcher in list(watchers.items()):
            watchers.pop(loop, None)
            if loop is running:
                mine = watcher
            else:
                watcher.close_soon(loop)
        if mine is not None:
            await mine.close()

    def _outcome_watchers(
        self,
    ) -> weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OutcomeWatcher]:
        # Made on first use, so the manager's __init__ needs nothing from this mixin.
        watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OutcomeWatcher] | None
        watchers = self.__dict__.get("_watchers_by_loop")
        if watchers is None:
            watchers = self.__dict__["_watchers_by_loop"] = weakref.WeakKeyDictionary()
        return watchers
