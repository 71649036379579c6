"""Blocking inserts for sync producers: a small pool of SQLite connections used in their threads.

:class:`BlockingInserts` is the ``BlockingInserter`` half of
:class:`~taskward.backends.sqlite.SqliteBackend` (``Capability.BLOCKING_INSERT``): a sync
producer inserts on a pooled connection in its own thread instead of hopping to the database
thread and back. Each pooled connection is used by one thread at a time, and up to
:data:`MAX_IDLE_STORES` are kept idle. Closing the backend moves the pool to a new generation:
idle connections close at once, one in use when it is given back (never under a running
statement). SQLite's write lock serialises these connections with the backend's own, as it does
with other processes'.

Forks: SQLite's POSIX locks do not survive a fork, so a process forked while the backend had a
connection open is refused (``BackendUnavailable``); the pooled connections it inherited are
kept referenced there, never used nor closed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from taskward.backends.sqlite.connection import (
    MEMORY_PATH,
    forked_message,
    refuse_caller_transaction,
    unavailable,
)
from taskward.backends.sqlite.store import SqliteStore
from taskward.backends.sqlite.waiters import Waiters, newly_pending_queues
from taskward.errors import BackendUnavailable, NotSupported
from taskward.jobs import Inserted, NewJob

__all__ = ["MAX_IDLE_STORES", "BlockingInserts"]

T = TypeVar("T")
MAX_IDLE_STORES: Final = 4
"""Idle connections the sync producers' pool keeps (more threads at once open more)."""
# Pooled connections a forked child found: kept referenced, so that no finaliser closes them.
_INHERITED_STORES: list[SqliteStore] = []


class BlockingInserts:
    """Inserts and migrations from the caller's thread, on a pool of connections.

    A mixin of :class:`~taskward.backends.sqlite.SqliteBackend`, which sets the attributes
    declared here and calls :meth:`_init_pool` from its constructor.
    """

    path: str
    synchronous: str
    _waiters: Waiters
    _connected_pid: int | None  # a process that has had a connection open (fork check)

    def _init_pool(self) -> None:
        self._idle_stores: list[SqliteStore] = []
        self._pool_lock = threading.Lock()
        self._generation = 0  # close() moves it on: a store of an older one is closed on return

    def insert_blocking(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs from the calling thread, on a connection of a small thread-safe pool.

        For sync producers: no hop to the database thread and back (about 0.1-0.4 ms each
        way on a small VM). SQLite's write lock serialises these connections with the
        backend's own, as it does with other processes'. Waiters of this process are woken
        on their loop; other processes by their wake channel.

        Raises:
            BackendUnavailable: this backend had a connection open when the process forked
                (open the manager in each process after forking: SQLite's locks do not
                survive a fork, so a connection made in the child could corrupt the file).
        """
        refuse_caller_transaction(connection)
        if not jobs:
            return []
        out = self._on_pooled_store(lambda store: store.insert(jobs, now))
        ready = newly_pending_queues(out)
        if ready:
            self._waiters.jobs_ready_from_thread(ready)
        return out

    def migrate_blocking(self) -> None:
        """:meth:`migrate` from the calling thread, on a pooled connection (sync producers)."""
        self._on_pooled_store(SqliteStore.migrate)

    def _on_pooled_store(self, fn: Callable[[SqliteStore], T]) -> T:
        """Run ``fn(store)`` on a pooled store in this thread, mapping lock/open errors."""
        if self.path == MEMORY_PATH:
            raise NotSupported("sqlite:///:memory: is private to one connection: use the async API")
        store, generation = self._checkout()
        try:
            return fn(store)
        except sqlite3.DatabaseError as exc:
            error = unavailable(exc, self.path)
            if error is None:
                raise
            raise error from exc
        finally:
            self._checkin(store, generation)

    def _checkout(self) -> tuple[SqliteStore, int]:
        """An idle pooled store (or a new one) for this thread alone, and its generation."""
        pid = os.getpid()
        with self._pool_lock:
            if self._connected_pid not in (None, pid):
                # Inherited from the parent: never used nor closed here (kept referenced, so
                # that no finaliser closes them either).
                _INHERITED_STORES.extend(self._idle_stores)
                self._idle_stores = []
                raise BackendUnavailable(forked_message(self.path))
            self._connected_pid = pid
            generation = self._generation
            if self._idle_stores:
                return self._idle_stores.pop(), generation
        store = SqliteStore(self.path, synchronous=self.synchronous, any_thread=True)
        store.open()
        return store, generation

    def _checkin(self, store: SqliteStore, generation: int) -> None:
        """Give a store back; closed instead if close() ran meanwhile or enough are idle."""
        with self._pool_lock:
            if generation == self._generation and len(self._idle_stores) < MAX_IDLE_STORES:
                self._idle_stores.append(store)
                return
        with contextlib.suppress(sqlite3.Error):
            store.close()

    def _close_idle_stores(self) -> None:
        """Close the idle stores; one in use is closed when given back, never mid-statement."""
        with self._pool_lock:
            self._generation += 1
            stores, self._idle_stores = self._idle_stores, []
            if self._connected_pid not in (None, os.getpid()):
                _INHERITED_STORES.extend(stores)  # a forked child: the parent's, not ours
                return
            self._connected_pid = None
        for store in stores:
            with contextlib.suppress(sqlite3.Error):
                store.close()
