"""Outcome watches on PostgreSQL: the rows that make an ended job worth a NOTIFY.

``Backend.wait_for_ends`` keeps ``taskward_watches`` (migration 0012) in step with the ids this
backend instance watches: new ids are inserted before the call returns (so the caller reads
them after the store watches them), ids no longer watched are deleted, and every
:data:`REFRESH_SECONDS` the rows' ``until`` moves on (a process that dies leaves rows that
expire after :data:`WATCH_SECONDS`; each refresh deletes expired rows of anyone). The statements
that end jobs notify the ``_ends`` channel only for jobs found there, and the listener
(``listener.py``) turns those notices into wake-ups of the waiters.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection
from typing import Final

from taskward.backends.postgres.connections import Connections
from taskward.backends.postgres.listener import Listener
from taskward.backends.postgres.work import notify_ends
from taskward.backends.waiters import EndWaits

__all__ = ["REFRESH_SECONDS", "WATCH_SECONDS", "Watches"]

WATCH_SECONDS: Final = 60.0
"""How long a watch row lives without a refresh (its process died, or lost the database)."""
REFRESH_SECONDS: Final = 20.0
"""How often a waiting process moves its rows' ``until`` on."""


class Watches:
    """The watch rows of one backend instance, and its waits for ends."""

    def __init__(self, connections: Connections, listener: Listener) -> None:
        self._connections = connections
        self._listener = listener
        self.token = secrets.token_hex(8)
        """This instance's ``watcher`` column: rows of other processes are never touched."""
        self._stored: set[int] = set()  # the ids the table holds for this instance
        self._refreshed = 0.0  # loop time of the last refresh
        self._lock: asyncio.Lock | None = None  # one sync at a time (a cancelled caller's goes on)

    async def wait(self, job_ids: Collection[int], *, timeout: float) -> None:
        """``Backend.wait_for_ends``: sync the rows, then wait for a notice or ``timeout``."""
        ends = self._listener.ends
        ends.update(job_ids)
        if ends.watched():
            self._listener.start()  # LISTEN before the caller reads (it returns for new ids)
        # Shielded: a caller cancelled half-way (a new waiter joined) must not cut a statement
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
        """Insert the new ids, delete the dropped ones; refresh every row when it is time."""
        loop_time = asyncio.get_running_loop().time()
        refresh = bool(watched) and loop_time - self._refreshed >= REFRESH_SECONDS
        added = watched if refresh else watched - self._stored
        dropped = self._stored - watched
        base = {"watcher": self.token}
        if added:
            params = {**base, "ids": sorted(added), "seconds": WATCH_SECONDS}
            await self._connections.execute("watch_jobs", params)
            self._stored |= added
        if dropped:
            await self._connections.execute("unwatch_jobs", {**base, "ids": sorted(dropped)})
            self._stored -= dropped
        if refresh:
            self._refreshed = loop_time
            await self._connections.execute("drop_expired_watches")

    async def notify(self, job_ids: Collection[int]) -> None:
        """Jobs ended outside ``finish`` (a cancel, a delete): notify the watched ones.

        Best-effort (``work.notify_ends``): the change is committed already, so a failed
        notice is logged, never raised; the waiters' fallback read finds the end.
        """
        if job_ids:
            await notify_ends(self._connections, job_ids)
