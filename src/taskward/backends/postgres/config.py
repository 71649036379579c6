"""What a ``postgresql://`` URL asks for: where to connect, and taskward's own parameters.

taskward's query parameters (``schema``, ``pool_min_size``, ``pool_max_size``, ``prepare``)
are taken out of the URL before connecting; all others go to libpq. This module also fills
the SQL text of ``queries.sql`` and ``migrations/`` for one schema. It imports no driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from taskward.backends.postgres import rows
from taskward.backends.sql import load_queries
from taskward.errors import InvalidOptions

__all__ = ["POSTGRES_SQL", "PostgresConfig", "parse_postgres_url"]

POSTGRES_SQL: Final = "taskward.backends.postgres"  # the package holding queries.sql, migrations/
SCHEMA_RE: Final = re.compile(r"[a-z_][a-z0-9_]{0,47}")
OWN_PARAMS: Final = frozenset({"schema", "pool_min_size", "pool_max_size", "prepare"})


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidOptions(f"invalid postgres URL parameter {name}={value!r}: use true or false")


def _int(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise InvalidOptions(
            f"invalid postgres URL parameter {name}={value!r}: an int >= {minimum}"
        )
    return number


def parse_postgres_url(url: str) -> tuple[str, dict[str, str]]:
    """Split ``url`` into the libpq connection URL and taskward's own parameters."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"postgres", "postgresql"}:
        raise InvalidOptions(f"invalid PostgreSQL URL {url!r}: use postgresql://user@host/db")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_PARAMS}
    rest = [(k, v) for k, v in query if k not in OWN_PARAMS]
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    return conninfo, own


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresConfig:
    """One backend's settings, read from its URL and checked (:meth:`from_url`).

    ``prepare=false`` is for a transaction pooler (PgBouncer in transaction mode): no
    server-side prepared statements and no startup options.
    """

    conninfo: str
    schema: str = "public"
    min_size: int = 1
    max_size: int = 10
    prepare: bool = True

    @classmethod
    def from_url(cls, url: str) -> PostgresConfig:
        """Parse and check ``url``; raise :class:`InvalidOptions` on a bad parameter."""
        conninfo, own = parse_postgres_url(url)
        schema = own.get("schema", "public")
        if not SCHEMA_RE.fullmatch(schema):
            raise InvalidOptions(
                f"invalid schema {schema!r}: use 1-48 characters from [a-z0-9_], "
                "not starting with a digit"
            )
        min_size = _int("pool_min_size", own.get("pool_min_size", "1"), 0)
        max_size = _int("pool_max_size", own.get("pool_max_size", "10"), 1)
        if max_size < max(min_size, 1):
            raise InvalidOptions("pool_max_size must be >= pool_min_size and >= 1")
        prepare = _bool("prepare", own.get("prepare", "true"))
        return cls(
            conninfo=conninfo,
            schema=schema,
            min_size=min_size,
            max_size=max_size,
            prepare=prepare,
        )

    @property
    def channel(self) -> str:
        """The NOTIFY channel of this schema's jobs."""
        return f"taskward_{self.schema}"

    def fill(self, sql: str) -> str:
        """``sql`` with ``{schema}``, ``{channel}`` and ``{job_columns}`` filled in.

        The schema is a validated identifier, so it can be written into the text.
        """
        return (
            sql.replace("{schema}", f'"{self.schema}"')
            .replace("{channel}", self.channel)
            .replace("{job_columns}", rows.JOB_COLUMNS)
        )

    def statements(self) -> dict[str, str]:
        """Every statement of ``queries.sql`` by name, filled in for this schema."""
        return {name: self.fill(sql) for name, sql in load_queries(POSTGRES_SQL).items()}
