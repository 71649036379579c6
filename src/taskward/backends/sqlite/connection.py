"""One SQLite connection: opening it (file mode, pragmas), its transactions, its errors.

:class:`SqliteConnection` is the base of :class:`~taskward.backends.sqlite.store.SqliteStore`:
it opens the connection on first use on the calling thread (which must stay the same unless the
store is pooled), applies migrations, and gives the statements their two kinds of transaction:
``_write`` (``BEGIN IMMEDIATE``, which takes SQLite's single writer lock up front, so a
check-then-write is race-free across processes) and ``_read`` (one snapshot for several
SELECTs). :func:`unavailable` turns SQLite's lock and open errors into
:class:`~taskward.errors.BackendUnavailable`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from taskward.backends.sql import load_queries
from taskward.backends.sqlite.migrate import SQLITE_SQL, migrate_sqlite
from taskward.errors import BackendUnavailable, NotSupported

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MEMORY_PATH",
    "SqliteConnection",
    "create_private_file",
    "forked_message",
    "refuse_caller_transaction",
    "register_functions",
    "unavailable",
]

MEMORY_PATH: Final = ":memory:"
MIN_SQLITE_VERSION: Final = (3, 35, 0)  # UPDATE … RETURNING
BUSY_TIMEOUT_MS: Final = 10_000
STATEMENT_CACHE_SIZE: Final = 256


class SqliteConnection:
    """One SQLite connection, opened lazily, and its transactions (single thread only)."""

    def __init__(self, path: str, *, synchronous: str, any_thread: bool = False) -> None:
        self.path = path
        self.synchronous = synchronous
        # A pooled store (sync producers) is used by one thread at a time, not always the same.
        self.any_thread = any_thread
        self.q = load_queries(SQLITE_SQL)
        self._conn: sqlite3.Connection | None = None
        # A claim needs no fsync of its own (see _write): its commit may relax FULL/EXTRA.
        self._relaxed_sync = (
            self.q["set_synchronous"].format(level="NORMAL")
            if synchronous in ("FULL", "EXTRA") and path != MEMORY_PATH
            else None
        )
        self._own_sync = self.q["set_synchronous"].format(level=synchronous)
        self._capped: int | None = None  # what taskward_capped last passed through

    def open(self) -> None:
        """Open the connection if needed (idempotent)."""
        self._db()

    def _db(self) -> sqlite3.Connection:
        """The connection, opened on first use (on the calling thread, which must stay the same)."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise NotSupported(
                f"the sqlite backend needs SQLite >= 3.35 (UPDATE … RETURNING); this Python "
                f"links SQLite {sqlite3.sqlite_version}"
            )
        if self.path != MEMORY_PATH:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            create_private_file(self.path)
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            cached_statements=STATEMENT_CACHE_SIZE,
            check_same_thread=not self.any_thread,
        )
        try:
            register_functions(conn, self._note_capped)
            conn.execute(self.q["set_busy_timeout"].format(milliseconds=BUSY_TIMEOUT_MS))
            if self.path != MEMORY_PATH:
                conn.execute(self.q["set_journal_mode_wal"])
            conn.execute(self.q["set_synchronous"].format(level=self.synchronous))
        except BaseException:
            conn.close()
            raise
        return conn

    def _note_capped(self, count: int) -> int:
        """``taskward_capped``: remember that a global limit capped the claim at ``count``."""
        self._capped = count
        return count

    def take_capped(self) -> int | None:
        """The count a global limit capped ``fetch_jobs`` at since the last call, else None."""
        capped, self._capped = self._capped, None
        return capped

    def close(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied now."""
        return migrate_sqlite(self._db())

    def pragmas(self) -> dict[str, Any]:
        """The connection's journal mode, synchronous level (0-3) and busy timeout (ms)."""
        db = self._db()
        return {
            "journal_mode": db.execute(self.q["get_journal_mode"]).fetchone()[0],
            "synchronous": db.execute(self.q["get_synchronous"]).fetchone()[0],
            "busy_timeout": db.execute(self.q["get_busy_timeout"]).fetchone()[0],
        }

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error.

        ``durable=False`` commits with ``synchronous=NORMAL`` (no fsync of the WAL), for
        claims: a claim lost to a power cut only leaves its jobs pending, to run again
        (at-least-once), and the next durable commit fsyncs the WAL up to and including it.
        """
        db = self._db()
        relax = None if durable else self._relaxed_sync
        if relax is not None:
            db.execute(relax)
        db.execute(self.q["begin_immediate"])
        try:
            yield db
            db.execute(self.q["commit"])
        except BaseException:
            if db.in_transaction:
                db.execute(self.q["rollback"])
            raise
        finally:
            if relax is not None:
                db.execute(self._own_sync)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so that several SELECTs see one snapshot."""
        db = self._db()
        db.execute(self.q["begin_read"])
        try:
            yield db
        finally:
            if db.in_transaction:
                db.execute(self.q["commit"])


def register_functions(conn: sqlite3.Connection, capped: Callable[[int], int]) -> None:
    """Give ``conn`` the functions taskward's statements call.

    ``taskward_capped(n)``: ``fetch_jobs`` passes the count a global limit allowed through it
    when the limit capped the claim below what it asked, and only then; it must return ``n``.
    ``capped`` is called with it (the store remembers it, to count the wait).
    """
    conn.create_function("taskward_capped", 1, capped)


def create_private_file(path: str) -> None:
    """Create ``path`` empty and readable by its owner only (0600), unless it exists.

    SQLite would create it 0644 less the umask: job arguments and results readable by every
    user of the machine. ``O_EXCL`` makes the creation race-free (another process creating it
    at the same moment wins, and both open the same file); an existing file keeps the mode
    its operator chose. SQLite gives the ``-wal`` and ``-shm`` files it makes later the mode
    of the database file, so they are private too. The umask still applies: a stricter one
    is kept, never widened.
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        # It exists (its mode is the operator's), or it cannot be created: SQLite then says
        # why in its own error, which the backend reports as BackendUnavailable.
        return
    os.close(fd)


def unavailable(exc: sqlite3.Error, path: str) -> BackendUnavailable | None:
    """The :class:`BackendUnavailable` to raise for ``exc``, or None if it is another error."""
    message = str(exc).lower()
    if "locked" in message or "busy" in message:
        return BackendUnavailable(
            f"SQLite database {path} stayed locked by another connection for more than "
            f"{BUSY_TIMEOUT_MS / 1000:g}s ({exc}); is a long transaction holding it?"
        )
    if "unable to open" in message or "not a database" in message or "readonly" in message:
        return BackendUnavailable(f"cannot use SQLite database {path}: {exc}")
    return None


def forked_message(path: str) -> str:
    """Why a process forked while the backend of ``path`` had a connection open is refused."""
    return (
        f"the SQLite database {path} was open when this process was forked; open "
        "the TaskManager in each process after forking (SQLite's locks do not survive a "
        "fork, and the database thread is the parent's)"
    )


def refuse_caller_transaction(connection: Any) -> None:
    """SQLite cannot join the caller's transaction: its connections live on other threads."""
    if connection is not None:
        raise NotSupported(
            "the sqlite backend cannot enqueue inside your own sqlite3 transaction yet; "
            "enqueue after your commit, or use the postgres backend"
        )
