"""The SQLite store: everything about it lives in this package.

``backend`` (the :class:`SqliteBackend` facade), ``store`` (one connection and the statements of
every call), ``rows`` (rows ↔ domain values), ``wake`` (wake-ups between processes),
``queries.sql`` and ``migrations/``.
"""

from taskward.backends.sqlite.backend import SqliteBackend, parse_sqlite_url

__all__ = ["SqliteBackend", "parse_sqlite_url"]
