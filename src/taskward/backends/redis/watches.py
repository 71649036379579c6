"""Outcome watches on Redis: the keys that make an ended job worth a message.

``Backend.wait_for_ends`` keeps one set per watched job, ``{prefix}:watch:<id>``, holding the
tokens of the backend instances that watch it, with an expiry that each refresh moves on (a
process that dies leaves a set that expires after :data:`WATCH_SECONDS`). New ids are written
before the call returns (so the caller reads them after the store watches them); ids no
longer watched lose this instance's token. Every script that ends a job (``index`` and
``forget`` in ``lua/common.lua``: finish, cancel, a workflow's cancel, a propagated cancel,
delete, prune) publishes the job's id on ``{prefix}:ends`` only when its set exists: one
``EXISTS`` per ended job while nobody waits. The listener (``listener.py``) subscribes to that
channel on its connection and wakes the waiters.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection
from typing import Final

from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import translated
from taskward.backends.redis.listener import Listener
from taskward.backends.waiters import EndWaits

__all__ = ["REFRESH_SECONDS", "WATCH_SECONDS", "Watches"]

WATCH_SECONDS: Final = 60.0
"""How long a watch lives without a refresh (its process died, or lost the server)."""
REFRESH_SECONDS: Final = 20.0
"""How often a waiting process moves its watches' expiry on."""


class Watches:
    """The watch sets of one backend instance, and its waits for ends."""

    def __init__(self, connections: Connections, listener: Listener) -> None:
        self._connections = connections
        self._listener = listener
        self.token = secrets.token_hex(8)
        """This instance's member in the watch sets: other processes' are never removed."""
        self._stored: set[int] = set()
        self._refreshed = 0.0
        self._lock: asyncio.Lock | None = None  # one sync at a time (a cancelled caller's goes on)

    async def wait(self, job_ids: Collection[int], *, timeout: float) -> None:
        """``Backend.wait_for_ends``: sync the watch sets, then wait for a message or timeout."""
        ends = self._listener.ends
        ends.update(job_ids)
        if ends.watched():
            self._listener.start()  # subscribed before the caller reads (new ids return)
        # Shielded: a caller cancelled half-way (a new waiter joined) must not cut a pipeline
        # off; the next call sees what it stored.
        await asyncio.shield(self._locked_sync(ends))
        await ends.wait(job_ids, timeout=timeout)

    async def _locked_sync(self, ends: EndWaits) -> None:
        """:meth:`_sync` of what is watched when its turn comes, never two at once."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._sync(ends.watched())

    async def _sync(self, watched: frozenset[int]) -> None:
        loop_time = asyncio.get_running_loop().time()
        refresh = bool(watched) and loop_time - self._refreshed >= REFRESH_SECONDS
        added = watched if refresh else watched - self._stored
        dropped = self._stored - watched
        client = self._connections.client
        if client is None or not (added or dropped):
            return
        base, ms = self._connections.base, int(WATCH_SECONDS * 1000)
        with translated(self._connections.config):
            pipe = client.pipeline(transaction=False)
            for job_id in sorted(added):
                pipe.sadd(f"{base}:watch:{job_id}", self.token)
                pipe.pexpire(f"{base}:watch:{job_id}", ms)
            for job_id in sorted(dropped):
                pipe.srem(f"{base}:watch:{job_id}", self.token)
            await pipe.execute()
        self._stored = (self._stored | added) - dropped
        if refresh:
            self._refreshed = loop_time
