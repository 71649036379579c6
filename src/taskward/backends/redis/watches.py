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

from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import translated
from taskward.backends.redis.listener import Listener
from taskward.backends.watches import REFRESH_SECONDS, WATCH_SECONDS, StoredWatches

__all__ = ["REFRESH_SECONDS", "WATCH_SECONDS", "Watches"]


class Watches(StoredWatches):
    """The watch sets of one backend instance (its member in them is :attr:`token`)."""

    def __init__(self, connections: Connections, listener: Listener) -> None:
        super().__init__(listener)
        self._connections = connections

    async def write(self, added: frozenset[int], dropped: frozenset[int], *, refresh: bool) -> bool:
        """Add this instance to the sets of ``added`` (expiry moved on), leave ``dropped``'s."""
        client = self._connections.client
        if client is None:
            return False
        base, ms = self._connections.base, int(WATCH_SECONDS * 1000)
        with translated(self._connections.config):
            pipe = client.pipeline(transaction=False)
            for job_id in sorted(added):
                pipe.sadd(f"{base}:watch:{job_id}", self.token)
                pipe.pexpire(f"{base}:watch:{job_id}", ms)
            for job_id in sorted(dropped):
                pipe.srem(f"{base}:watch:{job_id}", self.token)
            await pipe.execute()
        return True
