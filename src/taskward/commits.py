"""Group commit: enqueues that arrive while a commit is in flight share the next one.

A web server enqueues from many requests at once. Each insert committing on its own pays a
full commit (an fsync on SQLite with ``synchronous=FULL``, a WAL flush on PostgreSQL with
``synchronous_commit=on``) while the others wait for the store's write lock. Here the first
caller inserts at once, as before (no added latency when alone); callers that arrive while
its commit is in flight queue up, and the next of them, the *leader*, inserts the whole queue
in one transaction for everyone. Each caller still returns only when its own job is durable,
with its own job; nothing is cached or acknowledged early.

A job the store refuses (``InvalidJob``: a value the database cannot hold) fails alone: the
batch is then inserted job by job. Any other failure fails the batch once (nothing of it was
stored), each caller getting an exception of its own (chained to the shared one, so that no
caller's traceback holds another's frames). Unique jobs and enqueues inside a caller's
transaction never join a batch (the caller's connection, or the duplicate check, is theirs).

:class:`GroupCommit` serves coroutines on one event loop; :class:`BlockingGroupCommit`
serves threads (a WSGI server's request threads): the leader is one of the waiting threads,
so no thread is started for it, and a waiting thread that is interrupted (Ctrl-C, a signal
handler's exception) leaves the queue, or passes on a batch it was handed, before it goes.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import threading
from collections.abc import Awaitable, Callable, Sequence

from taskward.errors import BackendUnavailable, InvalidJob
from taskward.jobs import Inserted, NewJob

__all__ = ["MAX_BATCH", "BlockingGroupCommit", "GroupCommit"]

MAX_BATCH = 500
"""At most this many jobs per shared commit (a longer queue is split into several)."""

Insert = Callable[[Sequence[NewJob]], Awaitable[list[Inserted]]]
BlockingInsert = Callable[[Sequence[NewJob]], list[Inserted]]
Outcome = Inserted | BaseException


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
        # A context of its own: the batch is nobody's request (tracing, contextvars).
        flush = asyncio.get_running_loop().create_task(
            self._flush(batch), context=contextvars.Context()
        )
        self._flushes.add(flush)
        flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[NewJob, asyncio.Future[Inserted]]]) -> None:
        outcomes: list[Outcome] = []
        try:
            await _each_outcome(self._insert, [new for new, _ in batch], outcomes)
        finally:
            # Cancelled with the loop part way: the outcomes known so far are delivered, the
            # others are unknown (never the cancellation itself: it is not the caller's).
            for index, (_, future) in enumerate(batch):
                if future.done():
                    continue  # its caller went away: the job is stored all the same
                outcome = outcomes[index] if index < len(outcomes) else _unknown()
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            self._next()


async def _each_outcome(insert: Insert, jobs: list[NewJob], out: list[Outcome]) -> None:
    """Append one result or exception per job to ``out``: the batch at once, else one by one.

    Only ``InvalidJob`` (a value the store refuses: nothing was stored) splits the batch; any
    other failure is every job's, as is.
    """
    try:
        out.extend(await insert(jobs))
        return
    except InvalidJob as exc:
        if len(jobs) == 1:
            out.append(exc)
            return
    except Exception as exc:
        out.extend(_private(exc) for _ in jobs)
        return
    for job in jobs:  # the batch was refused: find the job(s) the store refuses
        try:
            (inserted,) = await insert([job])
            out.append(inserted)
        except InvalidJob as exc:
            out.append(exc)
        except Exception as exc:  # the store failed meanwhile: the rest fail with it
            out.extend(_private(exc) for _ in jobs[len(out) :])
            return


def _private(exc: Exception) -> Exception:
    """A copy of ``exc`` for one caller, chained to it: raising it touches nobody else's."""
    try:
        own = copy.copy(exc)
    except Exception:
        own = BackendUnavailable(str(exc))
    own.__cause__ = exc
    return own


def _unknown() -> BackendUnavailable:
    return BackendUnavailable(
        "the enqueue was interrupted before its commit returned: the job may or may not be stored"
    )


class _Slot:
    """A waiting thread's job, and then its outcome (or the batch it must insert)."""

    __slots__ = ("batch", "done", "outcome")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: Outcome | None = None
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
        slot = _Slot()
        leading = False
        try:
            with self._lock:
                if self._busy:
                    self._queue.append((new, slot))
                else:
                    leading = True
                    self._busy = True
            if leading:
                (inserted,) = self._insert([new])
                return inserted
        finally:
            if leading:
                self._hand_over()
        try:
            slot.done.wait()
            while slot.batch is not None:  # chosen to lead: insert the batch, own job in it
                batch, slot.batch = slot.batch, None
                self._lead(batch)
        except BaseException:
            self._abandon(slot)
            raise
        outcome = slot.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None  # set before done (see _lead)
        return outcome

    def _lead(self, batch: list[tuple[NewJob, _Slot]]) -> None:
        outcomes: list[Outcome] = []
        try:
            _each_outcome_blocking(self._insert, [new for new, _ in batch], outcomes)
        finally:
            # Interrupted part way (Ctrl-C in this thread): the outcomes known so far are
            # delivered, the others are unknown (never the interruption itself: it is ours).
            for index, (_, slot) in enumerate(batch):
                slot.outcome = outcomes[index] if index < len(outcomes) else _unknown()
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
            leader.batch = batch  # under the lock: _abandon sees it queued, or handed this
        leader.done.set()

    def _abandon(self, slot: _Slot) -> None:
        """A waiting thread is leaving (interrupted): take its job out, pass its batch on."""
        with self._lock:
            for index, (_, queued) in enumerate(self._queue):
                if queued is slot:
                    del self._queue[index]  # never sent: not stored
                    return
            batch, slot.batch = slot.batch, None
        if batch is None:
            return  # its job was in a batch already: stored or not, the batch goes on
        rest = [(new, queued) for new, queued in batch if queued is not slot]
        if not rest:
            self._hand_over()
            return
        leader = rest[0][1]
        leader.batch = rest
        leader.done.set()


def _each_outcome_blocking(insert: BlockingInsert, jobs: list[NewJob], out: list[Outcome]) -> None:
    """:func:`_each_outcome` for a blocking ``insert``."""
    try:
        out.extend(insert(jobs))
        return
    except InvalidJob as exc:
        if len(jobs) == 1:
            out.append(exc)
            return
    except Exception as exc:
        out.extend(_private(exc) for _ in jobs)
        return
    for job in jobs:
        try:
            (inserted,) = insert([job])
            out.append(inserted)
        except InvalidJob as exc:
            out.append(exc)
        except Exception as exc:
            out.extend(_private(exc) for _ in jobs[len(out) :])
            return
