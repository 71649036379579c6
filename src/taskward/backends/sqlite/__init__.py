"""The SQLite store: everything about it lives in this package.

- ``backend``: :class:`SqliteBackend`, the facade; its database thread and lifecycle.
- ``blocking``: sync producers' inserts on a small pool of connections in their own threads.
- ``waiters``: this process's waiters and what wakes them; ``wake``: the datagrams that wake
  other processes.
- ``store``: the statements of every call; ``controls``: pauses, limits and holds;
  ``partitions``: partition keys at insert and the claim by key; ``connection``: one
  connection, its transactions and errors; ``rows``: rows ↔ domain values.
- ``migrate``: the migration runner; ``queries.sql`` and ``migrations/``: the SQL (the
  migrations are the one source of the schema).
"""

from taskward.backends.sqlite.backend import SqliteBackend, parse_sqlite_url

__all__ = ["SqliteBackend", "parse_sqlite_url"]
