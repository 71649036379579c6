"""Outcome watches on PostgreSQL: the rows that make an ended job worth a NOTIFY.

``Backend.wait_for_ends`` keeps ``taskward_watches`` (migration 0012) in step with the ids this
backend instance watches (the bookkeeping is :class:`taskward.backends.watches.StoredWatches`);
each refresh also deletes expired rows of anyone. The statements
that end jobs notify the ``_ends`` channel only for jobs found there, and the listener
(``listener.py``) turns those notices into wake-ups of the waiters.
"""

from __future__ import annotations

from collections.abc import Collection

from taskward.backends.postgres.connections import Connections
from taskward.backends.postgres.listener import Listener
from taskward.backends.postgres.work import notify_ends
from taskward.backends.watches import REFRESH_SECONDS, WATCH_SECONDS, StoredWatches

__all__ = ["REFRESH_SECONDS", "WATCH_SECONDS", "Watches"]


class Watches(StoredWatches):
    """The watch rows of one backend instance (its ``watcher`` column is :attr:`token`)."""

    def __init__(self, connections: Connections, listener: Listener) -> None:
        super().__init__(listener)
        self._connections = connections

    async def write(self, added: frozenset[int], dropped: frozenset[int], *, refresh: bool) -> bool:
        """Insert (or move on) the rows of ``added``, delete those of ``dropped``."""
        base = {"watcher": self.token}
        if added:
            params = {**base, "ids": sorted(added), "seconds": WATCH_SECONDS}
            await self._connections.execute("watch_jobs", params)
        if dropped:
            await self._connections.execute("unwatch_jobs", {**base, "ids": sorted(dropped)})
        if refresh:
            await self._connections.execute("drop_expired_watches")
        return True

    async def notify(self, job_ids: Collection[int]) -> None:
        """Jobs ended outside ``finish`` (a cancel, a delete): notify the watched ones.

        Best-effort (``work.notify_ends``): the change is committed already, so a failed
        notice is logged, never raised; the waiters' fallback read finds the end.
        """
        if job_ids:
            await notify_ends(self._connections, job_ids)
