"""Connections to PostgreSQL: the two pools, the probe before them, and running statements.

- The async pool serves every statement of the event loop; it opens on first use, after
  one direct probe connection (a wrong host or password fails at once with libpq's message,
  where a pool would retry until its timeout) that also checks the session time zone.
- The sync pool serves blocking inserts from producer threads; a forked child leaves its
  parent's pool alone and opens its own.
- Row adapters: a faster loader for the JSON columns of every job row.
- ``drive_async`` / ``drive_sync`` run a *plan* (a generator of statements, sent each one's
  rows) on one connection, so one plan serves async and sync callers alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Loader
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from taskward.backends.postgres.config import PostgresConfig
from taskward.errors import BackendUnavailable, InvalidOptions

__all__ = [
    "CONTROL_TIMEOUT",
    "AConn",
    "AsyncPooledConnection",
    "Connections",
    "PooledConnection",
    "connect",
    "drive_async",
    "drive_sync",
    "unavailable",
]

T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]
# Sync pools a forked child found open: kept referenced, so that no finaliser closes them.
_INHERITED_POOLS: list[Any] = []
# Names PostgreSQL may report for a UTC session time zone.
UTC_ZONES: Final = frozenset(
    {"UTC", "ETC/UTC", "UCT", "ETC/UCT", "GMT", "ETC/GMT", "ZULU", "UNIVERSAL", "ETC/UNIVERSAL"}
)
# Bound on a lease-keeping statement (and on opening its connection), in seconds.
CONTROL_TIMEOUT: Final = 10.0


class _JsonLoader(Loader):
    """Loads json/jsonb columns: ``[]`` and ``{}`` (most payload columns) without a parse.

    Anything else is decoded to str first: ``json.loads`` on bytes sniffs the encoding.
    """

    def load(self, data: Buffer) -> Any:
        """Decode one JSON value (a fresh list or dict each time: a Job's are its own)."""
        if len(data) == 2:
            if data == b"[]":
                return []
            if data == b"{}":
                return {}
        return json.loads(bytes(data).decode())


def _row_adapters() -> AdaptersMap:
    """The psycopg adapters with a faster loader for the JSON columns every job row carries.

    JSON dominated decoding a job row: a claim (query included) went from about 34 to 21 us
    of CPU per job. (Array loaders stay psycopg's: its compiled row loader calls them
    directly, so a Python override would never run.)
    """
    adapters = AdaptersMap(psycopg.adapters)
    for name in ("json", "jsonb"):
        adapters.register_loader(name, _JsonLoader)
    return adapters


ROW_ADAPTERS: Final = _row_adapters()


class PooledConnection(psycopg.Connection[Any]):
    """A connection of the sync pool, keeping one cursor for taskward's statements.

    ``Connection.execute`` makes a new cursor for every statement: about 20 µs of client CPU,
    a third of a one-job insert's. A statement run by :meth:`run` has its rows read before
    the next one runs on the connection, so one cursor serves them all.
    """

    _kept: psycopg.Cursor[Any] | None = None

    def run(self, query: str, params: Mapping[str, Any] | None = None) -> psycopg.Cursor[Any]:
        """Execute ``query`` on the kept cursor (made on first use) and return it."""
        cursor = self._kept
        if cursor is None or cursor.closed:
            cursor = self._kept = self.cursor()
        return cursor.execute(query, params)


class AsyncPooledConnection(psycopg.AsyncConnection[Any]):
    """A connection of the async pool, keeping one cursor (see :class:`PooledConnection`)."""

    _kept: psycopg.AsyncCursor[Any] | None = None

    async def run(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> psycopg.AsyncCursor[Any]:
        """Execute ``query`` on the kept cursor (made on first use) and return it."""
        cursor = self._kept
        if cursor is None or cursor.closed:
            cursor = self._kept = self.cursor()
        return await cursor.execute(query, params)


def unavailable(exc: BaseException) -> BackendUnavailable:
    """The error a caller gets for a connection failure ``exc``."""
    return BackendUnavailable(f"PostgreSQL is unavailable: {exc}".strip())


def check_time_zone(zone: str | None) -> None:
    """Refuse a session whose time zone is not UTC (only ``prepare=false`` can get one).

    Every timestamp is read back in the session's zone, and a job's times must be UTC.
    """
    if (zone or "").upper() not in UTC_ZONES:
        raise InvalidOptions(
            f"the PostgreSQL session time zone is {zone!r}, not UTC: with prepare=false "
            "taskward sends no startup options (PgBouncer refuses them), so set it on the "
            "server side: ALTER DATABASE <db> SET timezone TO 'UTC' (or ALTER ROLE ... "
            "SET timezone TO 'UTC')"
        )


class Connections:
    """The pools of one backend and the statements they run (``q``: name → SQL).

    Both pools open lazily on first use and open again on use after :meth:`close`.
    """

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self.q = config.statements()
        self.pool: AsyncConnectionPool[AsyncPooledConnection] | None = None
        self._open_lock = asyncio.Lock()
        self.sync_pool: ConnectionPool[PooledConnection] | None = None
        self._sync_pid = 0  # the process that opened the sync pool (a forked child needs its own)
        self._sync_lock = threading.Lock()

    def connect_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of every connection taskward makes."""
        kwargs: dict[str, Any] = {"autocommit": True, "context": ROW_ADAPTERS}
        if self.config.prepare:
            kwargs["options"] = "-c TimeZone=UTC"
        else:
            # Behind a transaction pooler: no server-side prepared statements, and no startup
            # options either (PgBouncer refuses them); the database's own time zone must be
            # UTC, which the probe connection checks.
            kwargs["prepare_threshold"] = None
        return kwargs

    async def open_pool(self) -> AsyncConnectionPool[AsyncPooledConnection]:
        """Return the async pool, opening it first if needed."""
        if self.pool is not None:
            return self.pool
        async with self._open_lock:
            if self.pool is None:
                check_time_zone(await self._probe())
                pool = AsyncConnectionPool(
                    self.config.conninfo,
                    connection_class=AsyncPooledConnection,
                    min_size=self.config.min_size,
                    max_size=self.config.max_size,
                    kwargs=self.connect_kwargs(),
                    open=False,
                    timeout=10.0,
                    name="taskward",
                )
                try:
                    await pool.open(wait=self.config.min_size > 0, timeout=10.0)
                except BaseException as exc:
                    # Cancelled too: a pool left open keeps its connections, and its worker
                    # tasks, busy connecting, swallow the cancel of asyncio.run's shutdown
                    # and then wait for work forever (the process never exits). close()
                    # stops them; the cancel was delivered, so this await runs to its end.
                    await to_the_end(pool.close())
                    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
                        raise unavailable(exc) from exc
                    raise
                self.pool = pool
        return self.pool

    async def _probe(self) -> str | None:
        """Connect once, directly; return the session's time zone.

        A wrong host or password fails at once with libpq's own message, where the pool
        would retry until its timeout.
        """
        try:
            probe = await connect(self.config.conninfo, **self.connect_kwargs())
        except psycopg.OperationalError as exc:
            raise unavailable(exc) from exc
        try:
            return probe.info.parameter_status("TimeZone")
        finally:
            await probe.close()

    def open_sync_pool(self) -> ConnectionPool[PooledConnection]:
        """Return this process's sync pool, opening it first if needed (thread-safe)."""
        pool = self.sync_pool
        if pool is not None and self._sync_pid == os.getpid():
            return pool
        with self._sync_lock:  # like the async pool, it reopens on use after close()
            pool = self.sync_pool
            if pool is not None and self._sync_pid != os.getpid():
                # A forked child: the parent's sockets are not ours to use, nor to close (a
                # close, even by the garbage collector, would end the parent's sessions).
                _INHERITED_POOLS.append(pool)
                self.sync_pool = pool = None
            if pool is None:
                # One direct connection first: a wrong host or a server down fails at once
                # with libpq's message, where the pool would retry until its timeout.
                try:
                    probe = psycopg.connect(
                        self.config.conninfo,
                        connect_timeout=int(CONTROL_TIMEOUT),
                        **self.connect_kwargs(),
                    )
                except psycopg.OperationalError as exc:
                    raise unavailable(exc) from exc
                zone = probe.info.parameter_status("TimeZone")
                probe.close()
                check_time_zone(zone)
                pool = ConnectionPool(
                    self.config.conninfo,
                    connection_class=PooledConnection,
                    min_size=min(1, self.config.max_size),
                    max_size=self.config.max_size,
                    kwargs=self.connect_kwargs(),
                    open=False,
                    timeout=10.0,
                    name="taskward-sync",
                )
                pool.open(wait=False)
                self.sync_pool, self._sync_pid = pool, os.getpid()
            return pool

    def close_sync_pool(self) -> None:
        """Close the sync pool from the calling thread, if this process opened one.

        A later sync call opens it again. For a caller that does its sync work on its own
        connections from now on and must leave none of ours idle (a test database about to be
        dropped).
        """
        with self._sync_lock:
            pool, self.sync_pool = self.sync_pool, None
        if pool is not None and self._sync_pid == os.getpid():
            pool.close()

    async def close(self) -> None:
        """Close both pools (idempotent); a forked child leaves its parent's sync pool."""
        pool, self.pool = self.pool, None
        # Not under _sync_lock: a thread opening the pool may hold it for a connect timeout.
        sync_pool, self.sync_pool = self.sync_pool, None
        try:
            if pool is not None:
                await to_the_end(pool.close())
        finally:  # cancelled during the first close: the sync pool is still closed
            if sync_pool is not None and self._sync_pid == os.getpid():
                await to_the_end(asyncio.to_thread(sync_pool.close))

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncPooledConnection]:
        """A pooled connection; connection failures become :class:`BackendUnavailable`."""
        pool = await self.open_pool()
        try:
            async with pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc

    async def run(self, fn: Callable[[AConn], Coroutine[Any, Any, T]]) -> T:
        """Return ``await fn(conn)`` on a pooled connection."""
        async with self.connection() as conn:
            return await fn(conn)

    async def fetchall(self, name: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Run the statement ``name``; return its rows."""
        async with self.connection() as conn:
            cursor = await conn.run(self.q[name], params)
            found: list[Any] = await cursor.fetchall()
            return found

    async def execute(self, name: str, params: Mapping[str, Any] | None = None) -> int:
        """Run the statement ``name``; return how many rows it changed."""
        async with self.connection() as conn:
            cursor = await conn.run(self.q[name], params)
            count: int = cursor.rowcount
            return count


async def to_the_end(closing: Coroutine[Any, Any, None]) -> None:
    """Run ``closing`` to its end even if the caller is cancelled meanwhile.

    The cancel goes through once it has ended (a second cancel stops the wait, not
    ``closing``): a pool's close stopped half-way leaves its connections open.
    """
    task = asyncio.ensure_future(closing)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.shield(task)
        raise


async def connect(conninfo: str, **kwargs: Any) -> AConn:
    """A new connection (``psycopg.AsyncConnection.connect``); cancelled, it leaves none.

    Cancelled while connecting, psycopg leaves the half-made connection (whose session the
    server may already have started) to its frames, and the traceback of the cancel keeps
    those frames for as long as the cancelled task is kept: one session left open per
    cancel. The traceback is dropped here, so that the socket closes at once.
    """
    try:
        return await psycopg.AsyncConnection.connect(conninfo, **kwargs)
    except asyncio.CancelledError as exc:
        raise exc.with_traceback(None)  # noqa: B904 - the same cancel, without psycopg's frames


async def drive_async(conn: AConn, plan: Generator[tuple[Any, Any], list[Any], T]) -> T:
    """Run a plan's statements on ``conn`` in order, sending each one's rows back."""
    try:
        step = next(plan)
        while True:
            cursor = await conn.execute(*step)
            step = plan.send(await cursor.fetchall() if cursor.description else [])
    except StopIteration as done:
        result: T = done.value
        return result


def drive_sync(conn: psycopg.Connection[Any], plan: Generator[tuple[Any, Any], list[Any], T]) -> T:
    """:func:`drive_async` on a sync connection."""
    try:
        step = next(plan)
        while True:
            cursor = conn.execute(*step)
            step = plan.send(cursor.fetchall() if cursor.description else [])
    except StopIteration as done:
        result: T = done.value
        return result
