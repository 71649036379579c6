"""The PostgreSQL store: its code, ``queries.sql`` and ``migrations/``, all in this package.

The backend itself is :class:`~taskward.backends.postgres.backend.PostgresBackend`.
"""

from __future__ import annotations

from taskward.backends.postgres.backend import EXACT_COUNT_CAP, PostgresBackend, parse_postgres_url

__all__ = ["EXACT_COUNT_CAP", "PostgresBackend", "parse_postgres_url"]
