"""The waiters of one backend instance, and the wake-ups they have seen (PostgreSQL, Redis).

A backend whose wake-ups arrive on a connection of its own (LISTEN, pub/sub) subclasses
:class:`Waiters`: the connection calls :meth:`Waiters.wake`, ``fetch`` calls
:meth:`Waiters.note_fetch`, and ``wait_for_jobs`` awaits :meth:`Waiters.wait`. What the
class keeps: a wake-up that arrives between a fetch of a queue and the next wait for it is not
lost, because the wait returns at once when the queue's count moved since that fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

__all__ = ["Waiters"]


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
