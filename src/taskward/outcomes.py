"""Awaiting jobs' outcomes: one watcher per manager and event loop (``TaskManager.wait_for``).

Every coroutine of a process that waits for a job registers the job's id with the watcher of
its manager and loop (:class:`OutcomeWatcher`). The watcher runs one loop for all of them: a
round waits for the store to say "a watched job ended" (``Backend.wait_for_ends``: a NOTIFY,
a pub/sub message, a datagram, an in-process signal) or for a fallback interval (1 s, growing
to 5 s while nothing happens), then reads every watched job with one ``get_jobs`` call and
settles the waiters of those that ended. So 500 waiters cost one read per round, not 500
queries, and an idle wait costs no polling beyond the fallback.

What "ended" means and what a waiter gets (:func:`outcome`): ``completed`` gives the stored
result; ``failed``, ``discarded`` and ``cancelled`` raise :class:`~taskward.errors.JobFailed`,
:class:`~taskward.errors.JobDiscarded` and :class:`~taskward.errors.JobCancelled` with the
stored error; a job that no longer exists raises :class:`~taskward.errors.JobNotFound`. Any
other state (blocked, scheduled, pending, running, retryable) is not an end: the wait goes on.
A waiter that times out or is cancelled only leaves the watcher's set; the job is not touched.

What one waiter cannot do to the others: a round settles only the ids it read (a waiter that
joins during the read waits for the next round); an id no store can hold is refused before it
joins (:func:`check_job_id`); a read refused for some ids is split until only their waiters
get the error. Each watcher is its own caller of the backend's end waits
(:class:`~taskward.backends.waiters.EndCaller`), so two managers on one backend and loop do
not overwrite each other's watch, and its ids are dropped however its loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from typing import Any, Final

from taskward.backends.base import Backend
from taskward.backends.waiters import EndCaller, call_as
from taskward.encryption import EncryptionError, is_envelope
from taskward.errors import (
    BackendUnavailable,
    InvalidOptions,
    JobCancelled,
    JobDiscarded,
    JobFailed,
    JobNotFound,
)
from taskward.graph import MAX_RESULTS_PASSED
from taskward.jobs import FINISHED_STATES, Job, JobState
from taskward.sealing import is_sealed

__all__ = [
    "FIRST_INTERVAL",
    "MAX_INTERVAL",
    "OutcomeWatcher",
    "check_job_id",
    "check_timeout",
    "outcome",
]

logger = logging.getLogger(__name__)

FIRST_INTERVAL: Final = 1.0
"""Seconds a round waits for a store's notice before reading anyway (the fallback)."""
MAX_INTERVAL: Final = 5.0
"""The fallback interval grows by half each quiet round, up to this."""
GROWTH: Final = 1.5
FAILED_ROUNDS: Final = 3
"""Rounds in a row the store may refuse with an unexpected error before the waiters get it."""
MAX_JOB_ID: Final = 2**63 - 1
"""The largest job id any store can hold (a signed 64-bit integer)."""
COALESCE_SECONDS: Final = 0.005
"""After a notice, how long a round lets more ends arrive before its read: a worker acks in
batches, and one read then settles a whole batch's waiters (5 ms of latency at most)."""


def check_timeout(timeout: float | None) -> None:
    """Raise ``InvalidOptions`` unless ``timeout`` is None or a finite number >= 0."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidOptions(f"timeout must be a number of seconds or None, not {timeout!r}")
    if not math.isfinite(timeout) or timeout < 0:
        raise InvalidOptions(f"timeout must be a finite number of seconds >= 0, not {timeout!r}")


def check_job_id(job_id: object) -> int:
    """``job_id`` as an int, or ``InvalidOptions`` unless it is a positive signed 64-bit int.

    Checked before a waiter joins the watcher: an id no store can hold (``2**63`` on
    PostgreSQL) would make the shared read fail, and so every other waiter's.
    """
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise InvalidOptions(f"job_id must be an integer, not {job_id!r}")
    if not 1 <= job_id <= MAX_JOB_ID:
        raise InvalidOptions(f"job_id must be between 1 and {MAX_JOB_ID}, not {job_id}")
    return int(job_id)


def outcome(job: Job) -> Any:
    """An ended job's result, or the error that says how it ended otherwise."""
    if job.state is JobState.COMPLETED:
        if is_sealed(job) and is_envelope(job.result):
            raise EncryptionError(
                f"job {job.id} completed; its result is encrypted and this process holds no "
                "key that opens it (encryption_keys)"
            )
        return job.result
    if job.state is JobState.CANCELLED:
        raise JobCancelled(job)
    if job.state is JobState.DISCARDED:
        raise JobDiscarded(job)
    raise JobFailed(job)


class OutcomeWatcher:
    """The waiters of one manager on one event loop, and the loop that settles them.

    ``reads`` counts the ``get_jobs`` calls made (a seam for tests and benchmarks).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        first_interval: float = FIRST_INTERVAL,
        max_interval: float = MAX_INTERVAL,
    ) -> None:
        self.backend = backend
        self.first_interval = first_interval
        self.max_interval = max_interval
        self.reads = 0
        self._waiting: dict[int, set[asyncio.Future[Job]]] = {}
        self._joined = asyncio.Event()  # set when a waiter joins: the round reads it at once
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # This watcher's key in the backend's end waits: another manager's watcher on the
        # same backend and loop keeps a watched set of its own (waiters.EndCaller).
        self._caller = EndCaller()

    @property
    def waiting(self) -> int:
        """How many job ids have waiters now."""
        return len(self._waiting)

    async def wait(self, job_id: int, *, timeout: float | None) -> Job:
        """Return job ``job_id`` once it ended; raise ``JobNotFound`` if it does not exist.

        Raises ``TimeoutError`` after ``timeout`` seconds (None: never).
        """
        if self._closed:
            raise BackendUnavailable("the manager was closed: nothing waits for jobs any more")
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(job_id, set()).add(future)
        self._joined.set()
        self._start()
        try:
            if timeout is None:
                return await future
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._leave(job_id, future)

    async def close(self) -> None:
        """Stop the loop; every waiter left gets ``BackendUnavailable`` (idempotent).

        Call it on the watcher's own loop; from another thread use :meth:`close_soon`.
        """
        self._shut()
        task, self._task = self._task, None
        if task is not None and not task.done():
            await asyncio.gather(task, return_exceptions=True)

    def close_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """:meth:`close` from any thread: ``loop`` (this watcher's) fails its waiters soon.

        A loop already closed has no waiter left to tell (its tasks were cancelled).
        """
        self._closed = True  # a wait that starts from now on is refused at once
        with contextlib.suppress(RuntimeError):  # that loop is closed
            loop.call_soon_threadsafe(self._shut)

    def _shut(self) -> None:
        """Fail every waiter with ``BackendUnavailable`` and cancel the loop (on its loop)."""
        self._closed = True
        for futures in list(self._waiting.values()):
            for future in futures:
                if not future.done():
                    future.set_exception(BackendUnavailable("the manager was closed"))
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _leave(self, job_id: int, future: asyncio.Future[Job]) -> None:
        futures = self._waiting.get(job_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiting[job_id]

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="taskward-outcome-watcher")

    async def _run(self) -> None:
        """Rounds until nobody waits: wait for a notice or the interval, then read all.

        However it ends (nobody waits, the manager closes, its loop ends and cancels it), the
        backend forgets this watcher's ids and the watcher keeps nothing of the loop: no
        finished task, no bound event (the manager keys watchers by loop, weakly).
        """
        call_as(self._caller)  # this task and the rounds it starts (they copy the context)
        try:
            await self._rounds()
        finally:
            self._caller.drop()  # synchronous: runs even when cancelled with the loop
            if self._task is asyncio.current_task():
                self._task = None
                self._joined = asyncio.Event()  # the used one holds the loop

    async def _rounds(self) -> None:
        interval = self.first_interval
        failures = 0  # rounds in a row that the store refused with an unexpected error
        while True:
            if not self._waiting:
                await self._unwatch()
                if not self._waiting:
                    return  # no await between this look and the end: a joiner restarts us
                continue
            try:
                woken = await self._round(sorted(self._waiting), interval)
                # Only the ids read are settled: a waiter that joins during the read is
                # read by the next round, not told "not found" for a job not looked for.
                ids = sorted(self._waiting)
                settled = self._settle(ids, await self._read(ids))
            except BackendUnavailable as exc:
                logger.warning("waiting for job outcomes: %s; retrying in %.0f s", exc, interval)
                await asyncio.sleep(interval)
                interval = min(interval * GROWTH, self.max_interval)
                continue
            except Exception as exc:
                # A bug or a store refusing the round: retried while it may pass, then the
                # waiters learn it rather than hang.
                failures += 1
                if failures >= FAILED_ROUNDS:
                    self._fail(list(self._waiting), exc)
                    failures = 0
                else:
                    logger.warning("waiting for job outcomes: %r; retrying", exc)
                    await asyncio.sleep(interval)
                continue
            failures = 0
            if woken or settled:
                interval = self.first_interval
            else:
                interval = min(interval * GROWTH, self.max_interval)

    async def _round(self, ids: Sequence[int], interval: float) -> bool:
        """Wait for the store's notice, a new waiter, or ``interval``; True unless time ran out."""
        self._joined.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        store = asyncio.ensure_future(self.backend.wait_for_ends(ids, timeout=interval))
        joined = asyncio.ensure_future(self._joined.wait())
        try:
            await asyncio.wait({store, joined}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (store, joined):
                waiting.cancel()
            await asyncio.gather(store, joined, return_exceptions=True)
        if store.done() and not store.cancelled() and store.exception() is not None:
            raise store.exception()  # type: ignore[misc]
        woken = loop.time() - started < interval * 0.95
        if woken and not self._joined.is_set():
            await asyncio.sleep(COALESCE_SECONDS)
        return woken

    async def _read(self, ids: Sequence[int]) -> dict[int, Job | Exception]:
        """The watched jobs that exist, by id: one ``get_jobs`` call (per 10,000 ids).

        A chunk the store refuses with an unexpected error is split until the ids that cause
        it are found: only their waiters get the error (one bad id never fails the others).
        """
        found: dict[int, Job | Exception] = {}
        for start in range(0, len(ids), MAX_RESULTS_PASSED):
            await self._read_chunk(ids[start : start + MAX_RESULTS_PASSED], found)
        return found

    async def _read_chunk(self, ids: Sequence[int], found: dict[int, Job | Exception]) -> None:
        self.reads += 1
        try:
            jobs = await self.backend.get_jobs(ids)
        except BackendUnavailable:
            raise  # the store is away: every waiter waits for it to come back
        except Exception as exc:
            if len(ids) == 1:
                logger.warning("waiting for job %d: the store refused it: %r", ids[0], exc)
                found[ids[0]] = exc
                return
            half = len(ids) // 2
            await self._read_chunk(ids[:half], found)
            await self._read_chunk(ids[half:], found)
            return
        for job in jobs:
            found[job.id] = job

    def _settle(self, ids: Sequence[int], found: dict[int, Job | Exception]) -> bool:
        """Settle the waiters of ``ids`` that ended, are missing or failed; True if any was."""
        settled = False
        for job_id in ids:
            if job_id not in self._waiting:
                continue  # its waiters left during the read
            job = found.get(job_id)
            if isinstance(job, Job) and job.state not in FINISHED_STATES:
                continue  # not ended yet (a retry, a blocked step, a scheduled job)
            for future in self._waiting.pop(job_id):
                if future.done():
                    continue
                if job is None:
                    future.set_exception(JobNotFound(job_id))
                elif isinstance(job, Exception):
                    future.set_exception(job)
                else:
                    future.set_result(job)
            settled = True
        return settled

    def _fail(self, ids: Sequence[int], exc: Exception) -> None:
        for job_id in ids:
            for future in self._waiting.pop(job_id, ()):
                if not future.done():
                    future.set_exception(exc)

    async def _unwatch(self) -> None:
        """Tell the store that nothing is watched any more (its watch rows, its socket)."""
        try:
            await self.backend.wait_for_ends((), timeout=0)
        except Exception as exc:  # the watch expires by itself; never fail a waiter for it
            logger.debug("could not drop the outcome watch: %s", exc)
