"""Wake-ups between processes on one machine: what LISTEN/NOTIFY is to PostgreSQL.

SQLite has no notification channel, so a worker in another process would only learn of new
jobs by polling. :class:`WakeChannel` gives every *waiting* process one Unix datagram socket in
a private folder named after the database file; a process that makes jobs pending sends one
datagram (the queue names) to each socket there. Nothing is stored and nothing depends on it:
a lost or refused datagram costs only the polling delay, which stays as the fallback, and a
datagram from a stranger only causes one needless fetch.

Sockets of processes that died are unlinked by the next sender (the kernel refuses the send).
A sender lists the folder only when its modification time changed (a socket came or went) or
a second passed; otherwise one ``stat`` is all a send costs when nobody listens.

A channel may live in a sub-folder (``folder=``): the end notices of ``wait_for_ends`` use
their own (``ends``), bound only by processes that wait for outcomes, so workers' fetch loops
are not woken by ends and a finish with no outcome waiter anywhere costs one ``stat``.
Where Unix sockets do not exist (Windows) the channel is disabled and polling is all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Final

__all__ = ["WakeChannel"]

logger = logging.getLogger(__name__)

#: Longest payload sent; more queue names than fit mean "any queue" (an empty payload).
MAX_PAYLOAD: Final = 2048
_SUFFIX: Final = ".sock"
#: How long a sender trusts its listing of an unchanged folder (a clock tick may hide a bind).
LISTING_SECONDS: Final = 1.0


class WakeChannel:
    """Datagram wake-ups among the processes using one database file."""

    def __init__(self, key: str, *, folder: str | None = None) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        uid = os.getuid() if hasattr(os, "getuid") else 0
        # Short on purpose: a Unix socket path must fit in about 100 bytes.
        self.base = Path(tempfile.gettempdir()) / f"taskward-{uid}-{digest}"
        self.directory = self.base if folder is None else self.base / folder
        # (folder's mtime in ns, its sockets, monotonic time listed): see notify.
        self._listing: tuple[int, list[str], float] | None = None
        self.enabled = hasattr(socket, "AF_UNIX")
        self._listener: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._sender_lock = threading.Lock()  # sync producers notify from their own threads
        self._path: str | None = None
        # Weakly: a loop that ended without a close must not be kept alive by its reader
        # (its manager's outcome watchers are keyed by loop, weakly).
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    @property
    def listening(self) -> bool:
        """True while this process has its socket bound and read by the event loop."""
        return self._listener is not None

    @property
    def served(self) -> bool:
        """True while listening with a reader on a loop that still runs.

        A loop that ended (``asyncio.run`` returned; nobody called close) leaves the socket
        bound with a reader that no loop serves: datagrams to it are never read.
        """
        loop = self._loop() if self._loop is not None else None
        return self._listener is not None and loop is not None and loop.is_running()

    def listen(self, on_wake: Callable[[list[str]], None]) -> bool:
        """Bind this process's socket; ``on_wake(queues)`` runs on the loop per datagram batch.

        ``queues`` is empty for "any queue". Returns False (and polling carries on alone) when
        the channel cannot be set up; never raises.
        """
        if not self.enabled or self._listener is not None:
            return self._listener is not None
        try:
            self._make_directory()
            path = str(self.directory / f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.bind(path)
                loop = asyncio.get_running_loop()
                loop.add_reader(sock.fileno(), self._readable, sock, on_wake)
            except BaseException:
                sock.close()
                raise
        except (OSError, NotImplementedError, RuntimeError) as exc:
            logger.debug("no cross-process wake-ups (%s); polling only", exc)
            self.enabled = False
            return False
        self._listener, self._path, self._loop = sock, path, weakref.ref(loop)
        return True

    def _make_directory(self) -> None:
        for folder in dict.fromkeys((self.base, self.directory)):
            folder.mkdir(mode=0o700, exist_ok=True)
            self._check_owner(folder)

    def _check_owner(self, folder: Path | None = None) -> os.stat_result:
        """Raise PermissionError if another user owns the folder (raises OSError if absent)."""
        folder = folder or self.directory
        info = folder.stat()
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            # Someone else's folder in a shared /tmp: never send to or listen in it.
            raise PermissionError(f"{folder} belongs to another user")
        return info

    def _sockets(self) -> list[str] | None:
        """The sockets in the folder (None if it is absent), listed again only when needed."""
        try:
            info = self._check_owner()
        except PermissionError:
            self.enabled = False  # never tell a stranger's sockets our queue names
            return None
        except OSError:
            return None  # nobody has listened yet
        listing, now = self._listing, time.monotonic()
        if (
            listing is not None
            and listing[0] == info.st_mtime_ns
            and now - listing[2] < LISTING_SECONDS
        ):
            return listing[1]
        try:
            entries = [e.path for e in os.scandir(self.directory) if e.name.endswith(_SUFFIX)]
        except OSError:
            return None
        self._listing = (info.st_mtime_ns, entries, now)
        return entries

    @staticmethod
    def _readable(sock: socket.socket, on_wake: Callable[[list[str]], None]) -> None:
        names: list[str] = []
        anything = False
        while True:
            try:
                data = sock.recv(MAX_PAYLOAD)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            anything = True
            if not data:
                names = []  # "any queue" wins over a list
                break
            names.extend(data.decode("utf-8", "replace").split("\n"))
        if anything:
            on_wake(names)

    def notify(self, queues: Collection[str] = ()) -> None:
        """Tell every other listening process that jobs of ``queues`` (any if empty) wait.

        Never raises and never blocks: a full socket buffer means that process has a wake-up
        pending already.
        """
        if not self.enabled:
            return
        entries = self._sockets()
        if not entries:
            return
        targets = [path for path in entries if path != self._path]
        sender = self._sender_socket() if targets else None
        if sender is None:
            return
        payload = "\n".join(sorted(set(queues))).encode()
        if len(payload) > MAX_PAYLOAD:
            payload = b""
        for path in targets:
            try:
                sender.sendto(payload, path)
            except (ConnectionRefusedError, FileNotFoundError):
                # Its process is gone: nobody reads this socket any more.
                with contextlib.suppress(OSError):
                    os.unlink(path)
                self._listing = None
            except OSError:
                pass  # buffer full (a wake-up is pending there already) or a stranger's file

    def _sender_socket(self) -> socket.socket | None:
        if self._sender is None:
            with self._sender_lock:
                if self._sender is None:
                    try:
                        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                        sender.setblocking(False)
                        self._sender = sender
                    except OSError:
                        self.enabled = False
        return self._sender

    def close(self) -> None:
        """Stop listening and remove this process's socket (idempotent)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            loop = self._loop() if self._loop is not None else None
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(Exception):
                    loop.remove_reader(listener.fileno())
            listener.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
                self.directory.rmdir()  # only when it is empty: others may still listen
                if self.directory != self.base:
                    self.base.rmdir()  # the last channel of this database file here
            self._path = None
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()
