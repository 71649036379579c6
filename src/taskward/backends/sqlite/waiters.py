"""Waiters: the coroutines of this process waiting for jobs, and everything that wakes them.

SQLite has no notification channel, so the backend wakes waiters itself. Jobs this backend makes
pending (insert, promote, retry, resume) or claimable (a limit set, a hold released, a job of a
queue with a global limit finished) wake this process's waiters at once, and other processes'
through the
:class:`~taskward.backends.sqlite.wake.WakeChannel` (one Unix datagram each). Sync producers
insert from their own threads: their wake-ups are handed to the waiters' loop. Polling for
other connections' commits (``PRAGMA data_version``, asked by the backend on its database
thread) stays as the fallback, for writers that send no wake-up. A claim held back by time (a
hold, a full rate window) has no event to wait for: a timer wakes this process's waiters when
it ends (:meth:`Waiters.wake_at`).

A wake-up between a worker's fetch and its wait is not lost: each wake-up moves a counter, and a
wait returns at once if the counter moved since the last fetch of one of its queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Final

from taskward.backends.sqlite.wake import WakeChannel
from taskward.backends.waiters import WakeTimers
from taskward.jobs import Inserted, JobState

__all__ = ["POLL_SECONDS", "Waiters", "newly_pending_queues"]

POLL_SECONDS: Final = 0.05
"""How often a waiter looks for commits of other processes by default (the fallback)."""


class Waiters:
    """The waiters of one database file in this process, and the wake-ups sent to and for them."""

    def __init__(self, path: str, *, shared: bool) -> None:
        self.channel = WakeChannel(os.path.realpath(path))
        if not shared:
            self.channel.enabled = False  # a private database: no other process to tell
        self._waiting: dict[asyncio.Future[None], frozenset[str]] = {}
        self._count = 0  # wake-ups of every waiter so far
        self._timer_count: dict[str, int] = {}  # wake-ups by timer of one queue's waiters
        self._count_at_fetch: dict[str, tuple[int, int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # where sync producers' go
        self._timers = WakeTimers(self._wake_queue)

    def fetching(self, queue: str) -> None:
        """A fetch of ``queue`` starts: later wake-ups make the next wait return at once."""
        self._count_at_fetch[queue] = self._counts(queue)
        self._loop = asyncio.get_running_loop()

    def _counts(self, queue: str) -> tuple[int, int]:
        """The wake-ups that ``queue``'s waiters have had: of every waiter, and by timer."""
        return self._count, self._timer_count.get(queue, 0)

    async def wait(
        self,
        queues: Collection[str],
        *,
        timeout: float,
        poll_seconds: float,
        poll: Callable[[], Awaitable[bool]],
    ) -> None:
        """Return when woken, when jobs may be pending, or after ``timeout`` seconds.

        ``poll()`` is asked every ``poll_seconds`` whether other connections made jobs pending.
        Returns at once if woken since the last fetch of one of ``queues``.
        """
        names = frozenset(queues)
        if any(self._count_at_fetch.get(q, self._counts(q)) != self._counts(q) for q in names):
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        deadline = loop.time() + timeout
        future: asyncio.Future[None] = loop.create_future()
        self._waiting[future] = names
        if not self.channel.listening:
            self.channel.listen(self._remote_wake)
        try:
            while (remaining := deadline - loop.time()) > 0:
                done, _ = await asyncio.wait({future}, timeout=min(remaining, poll_seconds))
                if done or await poll():
                    return
        finally:
            del self._waiting[future]

    def jobs_ready(self, queues: Collection[str] = ()) -> None:
        """Jobs of ``queues`` (any if empty) became pending: wake waiters here and elsewhere."""
        self.wake()
        self.channel.notify(queues)

    def jobs_ready_from_thread(self, queues: Collection[str]) -> None:
        """:meth:`jobs_ready` from a sync producer's thread: this process's on their loop."""
        loop = self._loop
        if loop is not None:
            # Always, as an async insert does: a worker between its fetch and its wait sees the
            # count move. RuntimeError: that loop closed, so nobody waits on it any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.wake)
        self.channel.notify(queues)

    def wake_at(self, queue: str, *, now: datetime, at: datetime) -> None:
        """Wake this process's waiters when the clock that gave ``now`` reaches ``at``.

        For a claim of ``queue`` that a hold or a full rate window held back. Other processes
        are not told: their own claims arm their own timers.
        """
        self._timers.wake_at(queue, now=now, at=at)

    def _wake_queue(self, queue: str) -> None:
        """A timer of ``queue`` fired: wake the waiters of ``queue`` (and of every queue) only.

        Not every waiter, as :meth:`wake` does: a rate's timer fires once per window, and the
        waiters of other queues have nothing new to claim.
        """
        self._timer_count[queue] = self._timer_count.get(queue, 0) + 1
        for future, names in self._waiting.items():
            if not future.done() and (not names or queue in names):
                future.set_result(None)

    def wake(self) -> None:
        """Wake every waiter of this process."""
        self._count += 1
        for future in self._waiting:
            if not future.done():
                future.set_result(None)

    def close(self) -> None:
        """Wake every waiter, drop the timers and stop listening.

        The socket goes, and its folder if it was the last one there.
        """
        self._timers.cancel()
        self.wake()
        self.channel.close()

    def _remote_wake(self, queues: list[str]) -> None:
        """A datagram from another process: wake the waiters if it names a queue they wait on."""
        wanted = set(queues)
        if not wanted or any(not names or names & wanted for names in self._waiting.values()):
            self.wake()


def newly_pending_queues(out: Sequence[Inserted]) -> set[str]:
    """The queues of the jobs an insert made pending (whose waiters must be woken)."""
    return {i.job.queue for i in out if not i.duplicate and i.job.state is JobState.PENDING}
