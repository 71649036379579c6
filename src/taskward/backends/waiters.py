"""The waiters of one backend instance, and the wake-ups they have seen (PostgreSQL, Redis).

A backend whose wake-ups arrive on a connection of its own (LISTEN, pub/sub) subclasses
:class:`Waiters`: the connection calls :meth:`Waiters.wake`, ``fetch`` calls
:meth:`Waiters.note_fetch`, and ``wait_for_jobs`` awaits :meth:`Waiters.wait`. What the
class keeps: a wake-up that arrives between a fetch of a queue and the next wait for it is not
lost, because the wait returns at once when the queue's count moved since that fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Collection, Iterable
from contextvars import ContextVar
from datetime import datetime
from typing import Final

__all__ = ["EndCaller", "EndWaits", "Waiters", "WakeTimers", "call_as"]


class Waiters:
    """Futures waiting for queues, and how many wake-ups each queue (or all) has had."""

    def __init__(self) -> None:
        self._waiters: dict[asyncio.Future[None], frozenset[str]] = {}
        self._notified: dict[str, int] = {}
        self._notified_all = 0
        self._seen_at_fetch: dict[str, tuple[int, int]] = {}

    def note_fetch(self, queue: str) -> None:
        """Remember the wake-ups ``queue`` had seen when it was fetched (see :meth:`wait`)."""
        self._seen_at_fetch[queue] = (self._notified.get(queue, 0), self._notified_all)

    async def wait(self, queues: Collection[str], *, timeout: float) -> None:
        """Return on a wake-up for one of ``queues``, or after ``timeout`` seconds.

        Returns at once if a wake-up for one of ``queues`` arrived since this instance's
        last fetch of it, so a wake-up between that fetch and this wait is not lost.
        """
        names = frozenset(queues)
        for queue in names:
            seen = self._seen_at_fetch.get(queue)
            if seen is not None and seen != (self._notified.get(queue, 0), self._notified_all):
                return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[future] = names
        try:
            await asyncio.wait({future}, timeout=timeout)
        finally:
            del self._waiters[future]

    def wake(self, queue: str | None) -> None:
        """Wake waiters of ``queue`` (of every queue when None)."""
        if queue is None:
            self._notified_all += 1
        else:
            self._notified[queue] = self._notified.get(queue, 0) + 1
        for future, queues in self._waiters.items():
            if not future.done() and (queue is None or not queues or queue in queues):
                future.set_result(None)

    def waited_queues(self) -> frozenset[str] | None:
        """The queues someone waits for now; None when a waiter waits for every queue."""
        if any(not names for names in self._waiters.values()):
            return None
        return frozenset(q for names in self._waiters.values() for q in names)


class WakeTimers:
    """One-shot timers that wake a queue's local waiters when a hold ends or a window opens.

    A claim held back by time (a rate window full, a queue held) has no event to wait for:
    no job becomes pending and nothing finishes. ``fetch`` arms a timer for the moment the claim
    can succeed, so a waiting worker tries then instead of after its poll interval. One timer
    per queue; the earliest wins.
    """

    def __init__(self, wake: Callable[[str], None]) -> None:
        self._wake = wake
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def wake_at(self, queue: str, *, now: datetime, at: datetime) -> None:
        """Wake waiters of ``queue`` when the clock that gave ``now`` reaches ``at``."""
        loop = asyncio.get_running_loop()
        # A timer past the poll interval would not be waited for; cap it to bound the handles.
        delay = min(max((at - now).total_seconds(), 0.0), MAX_TIMER_SECONDS)
        when = loop.time() + delay
        timer = self._timers.get(queue)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[queue] = loop.call_at(when, self._fire, queue)

    def _fire(self, queue: str) -> None:
        self._timers.pop(queue, None)
        self._wake(queue)

    def cancel(self) -> None:
        """Drop every timer (the backend closes)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


MAX_TIMER_SECONDS: Final = 3600.0
"""The longest a wake timer waits; a longer hold is found again by the next poll."""


class EndCaller:
    """One caller of ``wait_for_ends`` (an outcome watcher): the key of its state in EndWaits.

    Two managers sharing one backend on one loop each have a watcher with its own watched set,
    so keying that state by event loop would make them overwrite each other (each update
    "adds" ids and returns at once: a spin). A watcher makes one caller and runs under it
    (:func:`call_as`); a caller of ``wait_for_ends`` that runs under none is keyed by its
    event loop. :meth:`drop` forgets the caller's ids everywhere, even from a cancelled task.
    """

    def __init__(self) -> None:
        self._waits: weakref.WeakSet[EndWaits] = weakref.WeakSet()

    def drop(self) -> None:
        """Forget this caller's watched ids in every :class:`EndWaits` it used (synchronous)."""
        for waits in list(self._waits):
            waits.forget(self)


_CALLER: ContextVar[EndCaller | None] = ContextVar("taskward_end_caller", default=None)


def call_as(caller: EndCaller) -> None:
    """Make ``caller`` the key of the running task's (and its child tasks') end waits."""
    _CALLER.set(caller)


class EndWaits:
    """The jobs this process waits to see end, and the end notices it has had (every backend).

    The half of ``Backend.wait_for_ends`` that does not depend on the store: a backend calls
    :meth:`ended` wherever a job ends in this process, or a notice from its store says one
    ended elsewhere, and its ``wait_for_ends`` awaits :meth:`wait`. What it keeps per caller
    (an :class:`EndCaller`: one per outcome watcher; else the event loop) is its watched set
    and the count of notices at its last return, so a notice that arrives while the caller
    reads the jobs makes its next wait return at once. :meth:`ended` may run on any thread
    (a sync producer, another loop's backend call): futures of other loops are resolved
    through their own loop.
    """

    def __init__(self) -> None:
        self._count = 0  # notices of a watched job's end so far
        self._watched: weakref.WeakKeyDictionary[object, frozenset[int]] = (
            weakref.WeakKeyDictionary()
        )
        self._seen: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._futures: set[asyncio.Future[None]] = set()
        self._fresh: weakref.WeakSet[object] = weakref.WeakSet()
        # The union of every caller's ids, kept until a caller's set changes or a caller is
        # collected (the dictionary's length drops): a notice must not rebuild it (O(W) each).
        self._union: frozenset[int] = frozenset()
        self._union_of = -1  # len(self._watched) the union was made for; -1: stale

    def watched(self) -> frozenset[int]:
        """Every job id some caller of this process watches now."""
        if self._union_of != len(self._watched):
            self._union = frozenset().union(*self._watched.values())
            self._union_of = len(self._watched)
        return self._union

    def _caller(self) -> object:
        caller = _CALLER.get()
        if caller is None:
            return asyncio.get_running_loop()
        caller._waits.add(self)  # so that caller.drop() finds this instance
        return caller

    def update(self, job_ids: Collection[int]) -> tuple[frozenset[int], frozenset[int]]:
        """Make ``job_ids`` the calling caller's watched set; return (added, dropped) ids.

        Added and dropped are relative to this whole process (what the store must learn).
        """
        caller = self._caller()
        before = self.watched()
        ids = frozenset(job_ids)
        mine = self._watched.get(caller)
        if ids - (mine or frozenset()):
            self._fresh.add(caller)  # this caller must read the ids it adds: return at once
        if ids != mine:
            if ids:
                self._watched[caller] = ids
            else:
                self._watched.pop(caller, None)
            self._union_of = -1
        after = self.watched()
        return after - before, before - after

    def forget(self, caller: object) -> None:
        """Drop ``caller``'s ids and counts (its watcher stopped, maybe cancelled with its loop).

        The store learns it at the next call of anyone (PostgreSQL and Redis watches expire
        by themselves when nobody calls again).
        """
        if self._watched.pop(caller, None) is not None:
            self._union_of = -1
        self._seen.pop(caller, None)
        self._fresh.discard(caller)

    def ended(self, job_ids: Iterable[int] | None = None) -> None:
        """Jobs ended (None: any job may have): wake the callers if one of them is watched."""
        if job_ids is not None:
            watched = self.watched()
            if not any(i in watched for i in job_ids):
                return
        self._count += 1
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None  # a thread with no loop (a sync producer)
        for future in list(self._futures):
            if future.done():
                continue
            loop = future.get_loop()
            if loop is running:
                future.set_result(None)
            else:
                # A future may only be touched on its own loop's thread.
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_wake, future)

    async def wait(self, job_ids: Collection[int], *, timeout: float) -> None:
        """Return on a notice of an end, or after ``timeout`` seconds.

        Returns at once when the last :meth:`update` of this caller added ids (the caller
        must read them now that the store watches them), when ``job_ids`` is empty, or when a
        notice arrived since this caller last returned.
        """
        loop = asyncio.get_running_loop()
        caller = self._caller()
        seen = self._seen.get(caller)
        new = caller in self._fresh
        self._fresh.discard(caller)
        try:
            if new or not job_ids or (seen is not None and seen != self._count):
                return  # (no ids: the caller only unregisters)
            future: asyncio.Future[None] = loop.create_future()
            self._futures.add(future)
            try:
                await asyncio.wait({future}, timeout=timeout)
            finally:
                self._futures.discard(future)
        finally:
            if job_ids:
                self._seen[caller] = self._count
            else:
                self._seen.pop(caller, None)  # unregistered: keep nothing of it

    def close(self) -> None:
        """Wake every caller (the backend closes); they read their jobs again."""
        self.ended(None)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
