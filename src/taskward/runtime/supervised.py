"""A worker process started by the supervisor: how it knows it is one, and its link back.

The supervisor (:mod:`taskward.runtime.supervisor`) starts each child with the operator's
own command line and two environment variables: :data:`CHILD_ENV` (the child's index, which
makes the command run one plain worker whatever ``--processes`` says) and :data:`LINK_ENV`
(a socket inherited from the supervisor). Over that socket the child reports once that its
worker has started (the supervisor's readiness signal: a child that dies before it is ready
is a start-up failure); the supervisor never writes to it, so the child reads end-of-file
only when the supervisor is gone, and then stops gracefully instead of living on unsupervised.

A child that reached its recycling limits exits with :data:`RECYCLE_EXIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

__all__ = ["CHILD_ENV", "LINK_ENV", "RECYCLE_EXIT", "ChildLink", "supervised_index"]

logger = logging.getLogger("taskward.supervisor")

CHILD_ENV = "TASKWARD_SUPERVISED_CHILD"
"""Set to the child's index (0, 1, …) in each worker process the supervisor starts."""
LINK_ENV = "TASKWARD_SUPERVISOR_FD"
"""The file descriptor of the child's end of its socket to the supervisor."""
RECYCLE_EXIT = 75
"""Exit status of a child that reached its recycling limits: replace it at once, no backoff.

75 is ``EX_TEMPFAIL`` in sysexits.h, "try again": no other exit of a worker uses it.
"""
READY = b"R"


def supervised_index() -> int | None:
    """The index of this process under a supervisor; None if no supervisor started it."""
    raw = os.environ.get(CHILD_ENV)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return 0  # still a child: it must not start a supervisor of its own


class ChildLink:
    """The child's end of its socket to the supervisor (see the module docstring)."""

    def __init__(self, sock: socket.socket, index: int) -> None:
        self.sock = sock
        self.index = index
        sock.setblocking(False)

    @classmethod
    def from_env(cls) -> ChildLink | None:
        """The link the supervisor passed to this process, if any (and still open)."""
        index, raw = supervised_index(), os.environ.get(LINK_ENV)
        # Read once, then gone: a process this worker starts (a job running `taskward
        # worker`, say) must not take itself for a supervised child, nor this descriptor.
        os.environ.pop(LINK_ENV, None)
        os.environ.pop(CHILD_ENV, None)
        if index is None or raw is None:
            return None
        try:
            return cls(socket.socket(fileno=int(raw)), index)
        except (OSError, ValueError):
            logger.warning(
                "worker process %d: no link to its supervisor (%s=%r)", index, LINK_ENV, raw
            )
            return None

    async def serve(self, started: asyncio.Event, stop: Callable[[str], None]) -> None:
        """Report readiness once ``started`` is set; call ``stop`` if the supervisor goes away.

        Runs until the supervisor is gone or the caller cancels it.
        """
        loop = asyncio.get_running_loop()
        announce = asyncio.ensure_future(self._announce(started))
        try:
            with contextlib.suppress(OSError):
                while await loop.sock_recv(self.sock, 64):
                    pass  # the supervisor never writes: only end-of-file comes
            logger.warning(
                "worker process %d: its supervisor is gone; stopping gracefully", self.index
            )
            stop("its supervisor is gone")
        finally:
            announce.cancel()
            await asyncio.gather(announce, return_exceptions=True)

    async def _announce(self, started: asyncio.Event) -> None:
        await started.wait()
        with contextlib.suppress(OSError):  # the supervisor is gone: serve() sees that
            await asyncio.get_running_loop().sock_sendall(self.sock, READY)

    def close(self) -> None:
        """Close this end (the supervisor then sees end-of-file, as when the process exits)."""
        self.sock.close()
