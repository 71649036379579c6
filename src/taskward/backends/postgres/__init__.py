"""The PostgreSQL store: its code, ``queries.sql`` and ``migrations/``, all in this package.

- ``backend``: :class:`PostgresBackend`, the facade that wires the parts below together.
- ``config``: the URL and its parameters; the SQL text filled in for one schema.
- ``connections``: the async and sync pools, the probe before them, running statements.
- ``control``: the connection kept for lease-keeping statements (heartbeats, leader).
- ``schema``: migrations, under an advisory lock.
- ``inserts``: one job, unique keys, the caller's transaction, blocking callers.
- ``bulk``: many jobs by one COPY.
- ``work``: claims, acks, progress, leases, and the maintenance services' statements.
- ``listener``: the LISTEN connection, wake-ups, receivers of dispatched jobs.
- ``dispatch``: slots offered by idle workers, taken by a producer's insert.
- ``admin``: operators' statements (jobs, statistics, queues, schedules, workers).
- ``rows``: rows ↔ domain values, COPY lines and the column arrays of batch statements.
"""

from __future__ import annotations

from taskward.errors import NotSupported

try:  # every module of this package needs the driver: say how to get it, once
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise NotSupported(
        "the postgres backend needs psycopg 3: pip install 'taskward[postgres]'"
    ) from exc

from taskward.backends.postgres.backend import EXACT_COUNT_CAP, PostgresBackend, parse_postgres_url

__all__ = ["EXACT_COUNT_CAP", "PostgresBackend", "parse_postgres_url"]
