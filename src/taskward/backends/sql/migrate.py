"""Schema migrations: numbered ``.sql`` files applied in order, each recorded once.

``<package>/migrations/NNNN_name.sql`` are applied by ascending ``NNNN``; the versions
applied so far are rows of the ``taskward_migrations`` table, so migrating again is a no-op.
For SQLite the check and the writes happen in one ``BEGIN IMMEDIATE`` transaction: SQLite's
single-writer lock plays the role of PostgreSQL's advisory lock, so several processes starting
at once apply each migration exactly once (the others wait, then find nothing to do).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

from taskward.backends.sql import load_queries

__all__ = ["Migration", "load_migrations", "migrate_sqlite", "split_sqlite_script"]

SQLITE_SQL: Final = "taskward.backends.sqlite"
_FILE_NAME: Final = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One schema step: its number, its name (from the file name) and its SQL script."""

    version: int
    name: str
    sql: str


@cache
def load_migrations(package: str) -> tuple[Migration, ...]:
    """Return the migrations kept in ``package`` sorted by version (read once per process).

    Raises ``ValueError`` if two files share a version number.
    """
    folder = files(package) / "migrations"
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            continue
        version = int(match["version"])
        if version in found:
            raise ValueError(f"two {package} migrations have version {version:04d}")
        sql = entry.read_text(encoding="utf-8")
        found[version] = Migration(version=version, name=match["name"], sql=sql)
    return tuple(found[v] for v in sorted(found))


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
