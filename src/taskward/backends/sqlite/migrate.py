"""The SQLite migration runner: applies ``migrations/NNNN_*.sql`` of this package, once each.

The files are read by the shared :func:`~taskward.backends.sql.migrate.load_migrations`; the
versions applied so far are rows of ``taskward_migrations``. The check and the writes happen in
one ``BEGIN IMMEDIATE`` transaction: SQLite's single-writer lock plays the role of PostgreSQL's
advisory lock, so several processes starting at once apply each migration exactly once (the
others wait, then find nothing to do), and all pending migrations apply, or none does.

There is no ``schema.sql``: the migrations are the one source of the schema. Times are REAL
unix epoch seconds (UTC), JSON values are TEXT, and table names carry the ``taskward_`` prefix
so that the tables can live in an application's own database file. To read the current
schema, migrate an empty file and ask ``sqlite3 jobs.db .schema``.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from taskward.backends.sql import load_queries
from taskward.backends.sql.migrate import load_migrations

__all__ = ["SQLITE_SQL", "migrate_sqlite", "split_sqlite_script"]

SQLITE_SQL: Final = "taskward.backends.sqlite"
"""The package holding SQLite's ``queries.sql`` and ``migrations/``."""


def split_sqlite_script(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies stay whole), dropping comments.

    ``executescript`` would do this too, but it commits any open transaction first, which
    would release the lock that makes concurrent migration safe.
    """
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer.append(line)
        text = "\n".join(buffer)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            buffer = []
    rest = "\n".join(buffer).strip()
    if rest:
        raise ValueError(f"incomplete SQL statement at the end of a migration: {rest[:80]!r}")
    return statements


def migrate_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Apply the pending SQLite migrations on ``conn``; return the versions applied now.

    ``conn`` must be in autocommit mode (``isolation_level=None``) and outside a transaction.
    Everything happens in one ``BEGIN IMMEDIATE`` transaction: all pending migrations apply,
    or none does.
    """
    queries = load_queries(SQLITE_SQL)
    conn.execute(queries["begin_immediate"])
    try:
        conn.execute(queries["create_migrations_table"])
        applied = {row[0] for row in conn.execute(queries["applied_migrations"])}
        done: list[int] = []
        for migration in load_migrations(SQLITE_SQL):
            if migration.version in applied:
                continue
            for statement in split_sqlite_script(migration.sql):
                conn.execute(statement)
            conn.execute(queries["record_migration"], (migration.version, migration.name))
            done.append(migration.version)
        conn.execute(queries["commit"])
    except BaseException:
        if conn.in_transaction:
            conn.execute(queries["rollback"])
        raise
    return done
