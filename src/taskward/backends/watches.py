"""Outcome watches kept in a store, so that a job's end is announced only when someone waits.

PostgreSQL (watch rows) and Redis (watch sets) share the bookkeeping here: which ids this
backend instance has stored, when they were last refreshed, and one sync at a time. A
subclass writes the difference to its store (:meth:`StoredWatches.write`).
``Backend.wait_for_ends`` calls :meth:`StoredWatches.wait`: new ids are stored before it
returns (so the caller reads them after the store watches them), ids no longer watched are
dropped, and every :data:`REFRESH_SECONDS` every stored id is written again, moving its expiry
on (a process that dies leaves watches that expire after :data:`WATCH_SECONDS`).
"""

from __future__ import annotations

import asyncio
import secrets
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Final, Protocol

from taskward.backends.waiters import EndWaits

__all__ = ["REFRESH_SECONDS", "WATCH_SECONDS", "EndListener", "StoredWatches"]

WATCH_SECONDS: Final = 60.0
"""How long a watch lives without a refresh (its process died, or lost the store)."""
REFRESH_SECONDS: Final = 20.0
"""How often a waiting process moves its watches' expiry on."""


class EndListener(Protocol):
    """The backend's connection that hears ends announced by the store, and wakes waiters."""

    @property
    def ends(self) -> EndWaits:
        """The outcome waiters it wakes."""
        ...

    def start(self) -> None:
        """Listen, if it does not yet."""
        ...


class StoredWatches(ABC):
    """The watches of one backend instance, and its waits for ends."""

    def __init__(self, listener: EndListener) -> None:
        self._listener = listener
        self.token = secrets.token_hex(8)
        """This instance's mark on its watches: other processes' are never touched."""
        self._stored: set[int] = set()  # the ids the store holds for this instance
        self._refreshed = 0.0  # loop time of the last refresh
        self._lock: asyncio.Lock | None = None  # one sync at a time (a cancelled caller's goes on)

    async def wait(self, job_ids: Collection[int], *, timeout: float) -> None:
        """``Backend.wait_for_ends``: sync the watches, then wait for a notice or ``timeout``."""
        ends = self._listener.ends
        ends.update(job_ids)
        if ends.watched():
            self._listener.start()  # listening before the caller reads (it returns for new ids)
        # Shielded: a caller cancelled half-way (a new waiter joined) must not cut a write
        # off on a pooled connection; the next call sees what it stored.
        await asyncio.shield(self._locked_sync(ends))
        await ends.wait(job_ids, timeout=timeout)

    async def _locked_sync(self, ends: EndWaits) -> None:
        """:meth:`_sync` of what is watched when its turn comes, never two at once."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._sync(ends.watched())

    async def _sync(self, watched: frozenset[int]) -> None:
        """Store the new ids, drop the others; write every id again when it is time."""
        loop_time = asyncio.get_running_loop().time()
        refresh = bool(watched) and loop_time - self._refreshed >= REFRESH_SECONDS
        added = frozenset(watched if refresh else watched - self._stored)
        dropped = frozenset(self._stored - watched)
        if not (added or dropped):
            return
        if await self.write(added, dropped, refresh=refresh):
            self._stored = (self._stored | added) - dropped
            if refresh:
                self._refreshed = loop_time

    @abstractmethod
    async def write(self, added: frozenset[int], dropped: frozenset[int], *, refresh: bool) -> bool:
        """Store watches of ``added`` (with a fresh expiry) and drop those of ``dropped``.

        ``refresh``: also clear what expired in the store, if it keeps such things. Answers
        False when nothing could be written (no connection yet): the next sync tries again.
        """
