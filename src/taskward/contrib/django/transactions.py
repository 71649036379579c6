"""Whether sync calls go through Django's own connection, and which one.

When taskward's store *is* the Django database (``OPTIONS`` has no ``url`` and the database
is PostgreSQL: the store's URL is then built from that database's own connection parameters),
the backend's calls use Django's connection of the calling thread instead of connections of
its own: an enqueue inside ``transaction.atomic()`` is written in that transaction (it
exists if, and only if, the block commits), outside one it commits at once, and
``get_result`` reads what the transaction sees. A web process then opens no connection
besides Django's, which Django closes as it always does (after each request, and before its
test runner drops the test database).

The decision is made from the configuration, never by comparing addresses: with an explicit
``url`` the store is another database, even one that looks the same, and an enqueue commits
at once. From async code, ``aenqueue`` and ``aget_result`` use Django's connection as
Django's own async ORM does (``sync_to_async`` in its thread-sensitive thread), and the sync
calls raise Django's ``SynchronousOnlyOperation``, as ORM calls there do.
"""

from __future__ import annotations

from typing import Any

from taskward.backends.base import Capability
from taskward.manager import TaskManager

__all__ = ["database_errors", "django_connection", "shares_database"]


def shares_database(alias: str, explicit_url: bool, manager: TaskManager) -> bool:
    """True when the store is Django database ``alias``: no explicit URL, and PostgreSQL."""
    if explicit_url or Capability.TRANSACTIONAL_ENQUEUE not in manager.backend.capabilities:
        return False
    from django.db import connections

    from taskward.contrib.django.options import POSTGRES_ENGINES

    return bool(connections[alias].settings_dict.get("ENGINE") in POSTGRES_ENGINES)


def django_connection(alias: str, explicit_url: bool, manager: TaskManager) -> Any:
    """Django's psycopg connection for ``alias`` when it is the store, else None.

    Connects Django's connection if needed (from async code that raises Django's
    ``SynchronousOnlyOperation``, as any ORM call there does), and refuses, as Django does,
    to work in a transaction a failed statement broke. None when Django uses psycopg2, whose
    connection cannot be handed to taskward: the job then commits at once.
    """
    if not shares_database(alias, explicit_url, manager):
        return None
    from django.db import connections

    connection = connections[alias]
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    raw = connection.connection
    import psycopg

    return raw if isinstance(raw, psycopg.Connection) else None


def database_errors(alias: str) -> Any:
    """Django's wrapper that turns driver errors into ``django.db`` errors for ``alias``."""
    from django.db import connections

    return connections[alias].wrap_database_errors
