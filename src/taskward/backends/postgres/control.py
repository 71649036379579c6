"""The control connection: one connection, outside the pool, for lease-keeping statements.

Heartbeats, lease extensions, worker records and leader election use a connection of their
own: with the pool busy (job bodies enqueueing or reporting progress, a slow claim), a
heartbeat queued behind them could miss its lease, and the rescue would run live jobs a
second time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import psycopg

from taskward.backends.postgres.connections import (
    CONTROL_TIMEOUT,
    AConn,
    Connections,
    connect,
    unavailable,
)
from taskward.errors import BackendUnavailable

__all__ = ["ControlConnection"]


class ControlConnection:
    """Runs lease-keeping statements, one at a time, on a connection kept for them."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self.conn: AConn | None = None
        self.lock = asyncio.Lock()
        self._epoch = 0  # close() moves it on: a call waiting then opens nothing

    async def fetchall(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        """Run the statement ``name``; return its rows.

        Each statement is bounded by ``CONTROL_TIMEOUT`` (a silent network must not hang the
        heartbeat), and one that failed on an old connection (a server restart) is retried
        once on a new one: all of them can safely run twice.
        """
        epoch = self._epoch
        async with self.lock:
            kept = self.conn is not None and not self.conn.closed
            try:
                return await self._once(epoch, name, params)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not kept:
                    raise unavailable(exc) from exc
            try:  # the kept connection had died (a server restart): once more, on a new one
                return await self._once(epoch, name, params)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise unavailable(exc) from exc

    async def _once(self, epoch: int, name: str, params: Mapping[str, Any]) -> list[Any]:
        """One try of :meth:`fetchall`; a failed connection is dropped."""
        if epoch != self._epoch:
            raise BackendUnavailable("the PostgreSQL backend was closed")
        try:
            async with asyncio.timeout(CONTROL_TIMEOUT):
                conn = await self._connection()
                cursor = await conn.execute(self._connections.q[name], params)
                found: list[Any] = await cursor.fetchall() if cursor.description else []
                return found
        except TimeoutError as exc:
            await self._drop()
            raise BackendUnavailable(
                f"PostgreSQL did not answer within {CONTROL_TIMEOUT:g} s"
            ) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError):
            await self._drop()
            raise

    async def _connection(self) -> AConn:
        conn = self.conn
        if conn is None or conn.closed:
            conn = await connect(
                self._connections.config.conninfo,
                connect_timeout=int(CONTROL_TIMEOUT),
                **self._connections.connect_kwargs(),
            )
            self.conn = conn
        return conn

    async def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Close the connection; a call waiting for the lock fails instead of reopening it."""
        self._epoch += 1
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()
