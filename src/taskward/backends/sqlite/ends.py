"""End notices on SQLite: what ``wait_for_ends`` waits for, within and across processes.

A job that this backend ends (finish, cancel, a workflow's cancel, delete) wakes this process's
outcome waiters at once (:class:`~taskward.backends.waiters.EndWaits`), and other processes'
through a :class:`~taskward.backends.sqlite.wake.WakeChannel` of its own: the ``ends``
sub-folder of the database's wake folder. Only a process that watches jobs right now binds a
socket there (and unbinds when its last waiter leaves), so workers' fetch loops are never woken
by ends, and a finish while nobody waits anywhere costs one ``stat`` of an absent or unchanged
folder. A datagram carries the ended job ids, one per line (none: "any job").

Ends it is not told of (a workflow step cancelled because a dependency failed, a prune, a
process of an older version) are found by the watcher's fallback read (1 to 5 s).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable

from taskward.backends.sqlite.wake import WakeChannel
from taskward.backends.waiters import EndWaits

__all__ = ["ENDS_FOLDER", "Ends"]

ENDS_FOLDER = "ends"
"""The sub-folder of the wake folder whose sockets take end notices."""


class Ends:
    """The outcome watch of one database file in this process, and its end notices."""

    def __init__(self, path: str, *, shared: bool) -> None:
        self.waits = EndWaits()
        self.channel = WakeChannel(os.path.realpath(path), folder=ENDS_FOLDER)
        if not shared:
            self.channel.enabled = False  # a private database: no other process to tell

    def ended(self, job_ids: Iterable[int]) -> None:
        """Jobs this process ended: wake its waiters, and tell the processes that watch."""
        ids = list(job_ids)
        if ids:
            self.waits.ended(ids)
            self.channel.notify([str(i) for i in ids])

    async def wait(self, job_ids: Collection[int], *, timeout: float) -> None:
        """``Backend.wait_for_ends``: bind the socket while watching, then wait."""
        self.waits.update(job_ids)
        if self.waits.watched():
            if self.channel.listening and not self.channel.served:
                # Its loop ended without a close: bind again on this one, or nothing is read.
                self.channel.close()
            if not self.channel.listening:
                # Bound before the caller reads its jobs (wait returns at once for new ids),
                # so an end committed after that read sends us a datagram.
                self.channel.listen(self._remote)
        elif self.channel.listening:
            self.channel.close()  # nobody here waits: finishers skip this process again
        await self.waits.wait(job_ids, timeout=timeout)

    def _remote(self, lines: list[str]) -> None:
        """A datagram from another process: the ended ids (none or unreadable: any job)."""
        ids = [int(line) for line in lines if line.isdigit()]
        self.waits.ended(ids if ids else None)

    def close(self) -> None:
        """Wake every waiter (they read again) and unbind the socket."""
        self.waits.close()
        self.channel.close()
