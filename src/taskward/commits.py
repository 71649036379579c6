"""Group commit: enqueues that arrive while a commit is in flight share the next one.

A web server enqueues from many requests at once. Each insert committing on its own pays a
full commit (an fsync on SQLite with ``synchronous=FULL``, a WAL flush on PostgreSQL with
``synchronous_commit=on``) while the others wait for the store's write lock. Here the first
caller inserts at once, as before (no added latency when alone); callers that arrive while
its commit is in flight queue up, and the next of them, the *leader*, inserts the whole queue
in one transaction for everyone. Each caller still returns only when its own job is durable,
with its own job; nothing is cached or acknowledged early.

A job that the store refuses alone (a value the database cannot hold) fails alone: when a
batch fails with anything but an unavailable store, its jobs are inserted one by one, and
each caller gets its own outcome. Unique jobs and enqueues inside a caller's transaction
never join a batch (the caller's connection, or the duplicate check, is theirs alone).

:class:`GroupCommit` serves coroutines on one event loop; :class:`BlockingGroupCommit`
serves threads (a WSGI server's request threads): the leader is one of the waiting threads,
so no thread is started for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from taskward.errors import BackendUnavailable
from taskward.jobs import Inserted, NewJob

__all__ = ["MAX_BATCH", "BlockingGroupCommit", "GroupCommit"]

MAX_BATCH = 500
"""At most this many jobs per shared commit (a longer queue is split into several)."""

Insert = Callable[[Sequence[NewJob]], Awaitable[list[Inserted]]]
BlockingInsert = Callable[[Sequence[NewJob]], list[Inserted]]


class GroupCommit:
    """Inserts of coroutines on one event loop, committed together under contention."""

    def __init__(self, insert: Insert) -> None:
        """``insert(jobs)`` stores ``jobs`` in one transaction and returns one result each."""
        self._insert = insert
        self._busy = False
        self._queue: list[tuple[NewJob, asyncio.Future[Inserted]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def insert(self, new: NewJob) -> Inserted:
        """Store ``new`` (alone, or with the jobs of its batch); return its result."""
        if not self._busy:
            self._busy = True
            try:
                (inserted,) = await self._insert([new])
                return inserted
            finally:
                self._next()
        future: asyncio.Future[Inserted] = asyncio.get_running_loop().create_future()
        self._queue.append((new, future))
        return await future

    def _next(self) -> None:
        """Start the queued batch, or stand idle."""
        queue = [(new, future) for new, future in self._queue if not future.cancelled()]
        batch, rest = queue[:MAX_BATCH], queue[MAX_BATCH:]
        self._queue = rest
        if not batch:
            self._busy = False
            return
        flush = asyncio.get_running_loop().create_task(self._flush(batch))
        self._flushes.add(flush)
        flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[NewJob, asyncio.Future[Inserted]]]) -> None:
        try:
            results = await _each_outcome(self._insert, [new for new, _ in batch])
            for (_, future), outcome in zip(batch, results, strict=True):
                if future.cancelled():
                    continue  # its caller went away: the job is stored all the same
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
        except BaseException as exc:  # cancelled with the loop: every waiter learns it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            self._next()


async def _each_outcome(insert: Insert, jobs: list[NewJob]) -> list[Any]:
    """One result or exception per job: the batch at once, else one by one."""
    try:
        return await insert(jobs)
    except BackendUnavailable as exc:
        return [exc] * len(jobs)  # the store is down: no job of the batch is stored
    except Exception as exc:
        if len(jobs) == 1:
            return [exc]
    out: list[Any] = []
    for job in jobs:  # the batch failed as a whole: find the job(s) the store refuses
        try:
            (inserted,) = await insert([job])
            out.append(inserted)
        except Exception as exc:
            out.append(exc)
    return out


class _Slot:
    """A waiting thread's job, and then its outcome (or the batch it must insert)."""

    __slots__ = ("batch", "done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.batch: list[tuple[NewJob, _Slot]] | None = None  # set: this thread leads


class BlockingGroupCommit:
    """Inserts of many threads, committed together under contention (leader/followers)."""

    def __init__(self, insert: BlockingInsert) -> None:
        """``insert(jobs)`` stores ``jobs`` in one transaction and returns one result each."""
        self._insert = insert
        self._lock = threading.Lock()
        self._busy = False
        self._queue: list[tuple[NewJob, _Slot]] = []

    def insert(self, new: NewJob) -> Inserted:
        """Store ``new`` (alone, or with the jobs of its batch); return its result."""
        slot: _Slot | None = None
        with self._lock:
            if self._busy:
                slot = _Slot()
                self._queue.append((new, slot))
            else:
                self._busy = True
        if slot is None:
            try:
                (inserted,) = self._insert([new])
                return inserted
            finally:
                self._hand_over()
        slot.done.wait()
        while slot.batch is not None:  # chosen to lead: insert the batch, own job included
            batch, slot.batch = slot.batch, None
            self._lead(batch)
        if slot.error is not None:
            raise slot.error
        result: Inserted = slot.result
        return result

    def _lead(self, batch: list[tuple[NewJob, _Slot]]) -> None:
        try:
            outcomes = _each_outcome_blocking(self._insert, [new for new, _ in batch])
            for (_, slot), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    slot.error = outcome
                else:
                    slot.result = outcome
        except BaseException as exc:  # KeyboardInterrupt in the leader: tell everyone
            for _, slot in batch:
                slot.error = exc
            raise
        finally:
            for _, slot in batch:
                slot.done.set()
            self._hand_over()

    def _hand_over(self) -> None:
        """Give the queued batch to its first thread to insert, or stand idle."""
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            if not batch:
                self._busy = False
                return
        leader = batch[0][1]
        leader.batch = batch
        leader.done.set()


def _each_outcome_blocking(insert: BlockingInsert, jobs: list[NewJob]) -> list[Any]:
    """:func:`_each_outcome` for a blocking ``insert``."""
    try:
        return insert(jobs)
    except BackendUnavailable as exc:
        return [exc] * len(jobs)
    except Exception as exc:
        if len(jobs) == 1:
            return [exc]
    out: list[Any] = []
    for job in jobs:
        try:
            (inserted,) = insert([job])
            out.append(inserted)
        except Exception as exc:
            out.append(exc)
    return out
