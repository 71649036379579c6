"""Schema migrations shared by the SQL stores: numbered ``.sql`` files, each applied once.

``<package>/migrations/NNNN_name.sql`` (the package of one store, for example
``"taskward.backends.sqlite"``) are applied by ascending ``NNNN``; the versions applied so far
are rows of the ``taskward_migrations`` table, so migrating again is a no-op. Each store's
package runs them under its own lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory
lock), so several processes starting at once apply each migration exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

from taskward.backends.base import MigrationReport

__all__ = ["Migration", "load_migrations", "migration_report"]

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


def migration_report(package: str, applied: Iterable[int]) -> MigrationReport:
    """The report of a migration run on ``package``'s store that applied ``applied``.

    A run that returned has applied every migration ``package`` holds (it raises otherwise),
    so the store is at the newest version of them.
    """
    migrations = load_migrations(package)
    return MigrationReport(
        applied=tuple(sorted(applied)), version=migrations[-1].version if migrations else None
    )
