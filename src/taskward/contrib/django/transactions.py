"""Whether sync calls go through Django's own connection, and which one.

When taskward's store *is* the Django database (PostgreSQL), the backend's sync calls use
Django's connection of the calling thread instead of connections of its own: an enqueue inside
``transaction.atomic()`` is written in that transaction (it exists if, and only if, the block
commits), outside one it commits at once, and ``get_result`` reads what the transaction sees.
A web process then opens no connection besides Django's, which Django closes as it always does
(after each request, and before its test runner drops the test database).

Three things must hold: the store accepts a caller's connection (PostgreSQL); Django's
connection is psycopg 3 (``psycopg.Connection``; psycopg2's cannot be handed to taskward);
and both point at the same database (host, port and name, compared without a round trip).
From async code, ``aenqueue`` and ``aget_result`` then use Django's connection as Django's own
async ORM does (``sync_to_async`` in its thread-sensitive thread), and the sync calls raise
Django's ``SynchronousOnlyOperation``, as ORM calls there do.
"""

from __future__ import annotations

import functools
import getpass
from typing import Any

from taskward.backends.base import Capability
from taskward.manager import TaskManager

__all__ = ["django_connection", "same_database", "shares_database", "where"]

_LOCAL = frozenset({"", "localhost", "127.0.0.1", "::1"})


def shares_database(alias: str, manager: TaskManager) -> bool:
    """True when the store is Django database ``alias`` (PostgreSQL), read from the settings.

    Decided without connecting, so that async code can ask too.
    """
    if Capability.TRANSACTIONAL_ENQUEUE not in manager.backend.capabilities:
        return False
    from django.db import connections

    from taskward.contrib.django.options import postgres_url

    theirs = postgres_url(connections[alias].settings_dict)
    ours = where(manager.backend.url)
    there = where(theirs) if theirs else None
    return ours is not None and there is not None and same_database(ours, there)


def django_connection(alias: str, manager: TaskManager) -> Any:
    """Django's psycopg connection for ``alias`` when it is the store, else None.

    Connects Django's connection if needed; from async code that raises Django's
    ``SynchronousOnlyOperation``, as any ORM call there does.
    """
    if not shares_database(alias, manager):
        return None
    from django.db import connections

    connection = connections[alias]
    connection.ensure_connection()
    raw = connection.connection
    import psycopg

    if not isinstance(raw, psycopg.Connection):
        return None  # psycopg2: its connection cannot be handed to taskward
    store = where(manager.backend.url)
    if store is None or not same_database(store, (raw.info.host, raw.info.port, raw.info.dbname)):
        return None
    return raw


@functools.lru_cache(maxsize=64)
def where(url: str) -> tuple[str, int, str] | None:
    """``(host, port, database)`` a ``postgresql://`` URL connects to, or None for another URL."""
    if not url.lower().startswith(("postgresql:", "postgres:")):
        return None
    from psycopg.conninfo import conninfo_to_dict

    from taskward.backends.postgres.config import parse_postgres_url

    params = conninfo_to_dict(parse_postgres_url(url)[0])
    user = str(params.get("user") or getpass.getuser())
    return (
        str(params.get("host") or ""),
        int(params.get("port") or 5432),
        str(params.get("dbname") or user),
    )


def same_database(a: tuple[str, int, str], b: tuple[str, int, str]) -> bool:
    """True when two ``(host, port, database)`` name one database (local names are equal)."""

    def host(name: str) -> str:
        return "local" if name in _LOCAL or name.startswith("/") else name.lower()

    return host(a[0]) == host(b[0]) and int(a[1]) == int(b[1]) and a[2] == b[2]
