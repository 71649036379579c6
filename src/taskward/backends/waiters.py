"""The waiters of one backend instance, and the wake-ups they have seen (PostgreSQL, Redis).

A backend whose wake-ups arrive on a connection of its own (LISTEN, pub/sub) subclasses
:class:`Waiters`: the connection calls :meth:`Waiters.wake`, ``fetch`` calls
:meth:`Waiters.note_fetch`, and ``wait_for_jobs`` awaits :meth:`Waiters.wait`. What the
class keeps: a wake-up that arrives between a fetch of a queue and the next wait for it is not
lost, because the wait returns at once when the queue's count moved since that fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Final

__all__ = ["Waiters", "WakeTimers"]


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
