"""Schema migrations: the files of ``migrations/`` applied in one transaction, under a lock.

A transaction-scoped advisory lock on the schema lets several processes start at once: the
first applies what is pending, the others wait, then find nothing to do. One plan of
statements serves the async pool and the sync pool (a sync producer opens nothing else).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import psycopg
from psycopg_pool import PoolClosed, PoolTimeout

from taskward.backends.base import MigrationReport
from taskward.backends.postgres.config import POSTGRES_SQL
from taskward.backends.postgres.connections import (
    AConn,
    Connections,
    drive_async,
    drive_sync,
    unavailable,
)
from taskward.backends.sql.migrate import load_migrations, migration_report

__all__ = ["migrate", "migrate_blocking"]


async def migrate(connections: Connections) -> MigrationReport:
    """Apply pending migrations in one transaction, under an advisory lock; say which."""

    async def apply(conn: AConn) -> list[int]:
        async with conn.transaction():
            return await drive_async(conn, _migration_plan(connections))

    return migration_report(POSTGRES_SQL, await connections.run(apply))


def migrate_blocking(connections: Connections) -> None:
    """:func:`migrate` from the calling thread, on the sync pool (sync producers)."""
    try:
        with connections.open_sync_pool().connection() as conn, conn.transaction():
            drive_sync(conn, _migration_plan(connections))
    except (PoolTimeout, PoolClosed, psycopg.OperationalError) as exc:
        raise unavailable(exc) from exc


def _migration_plan(
    connections: Connections,
) -> Generator[tuple[Any, Any], list[Any], list[int]]:
    """The statements of :func:`migrate`: yields (sql, params), is sent each one's rows.

    Returns the versions it applied.
    """
    q, config = connections.q, connections.config
    yield q["migration_lock"], {"schema": config.schema}
    yield q["create_schema"], None
    yield q["create_migrations_table"], None
    applied = {row[0] for row in (yield q["applied_migrations"], None)}
    done: list[int] = []
    for migration in load_migrations(POSTGRES_SQL):
        if migration.version in applied:
            continue
        yield config.fill(migration.sql).encode(), None
        yield q["record_migration"], {"version": migration.version, "name": migration.name}
        done.append(migration.version)
    return done
