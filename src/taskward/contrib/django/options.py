"""The ``OPTIONS`` of a taskward entry in Django's ``TASKS`` setting, and the store they name.

``OPTIONS`` takes every :class:`~taskward.settings.Settings` field by its name (``url``,
``default_max_attempts``, ``default_timeout``, ``lease_seconds``…) plus ``database``, the Django
database alias whose transactions an enqueue joins (default ``"default"``). Without ``url``,
a PostgreSQL ``database`` is the store itself, so jobs live beside the app's tables and an
enqueue inside ``transaction.atomic()`` commits or rolls back with them; any other database
leaves the store to ``TASKWARD_URL`` or taskward's default (``sqlite:///./taskward.db``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from taskward.backends.postgres.config import SCHEMA_RE
from taskward.errors import InvalidOptions
from taskward.settings import Settings

__all__ = ["POSTGRES_ENGINES", "BackendOptions", "postgres_url"]

POSTGRES_ENGINES = frozenset(
    {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}
)
# What Django's get_connection_params() returns that is not a libpq keyword.
_NOT_LIBPQ = frozenset({"cursor_factory", "context", "prepare_threshold", "autocommit"})


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """``OPTIONS`` read and checked: taskward's settings and the Django database alias."""

    database: str = "default"
    schema: str | None = None
    """The PostgreSQL schema of taskward's tables when the store is the Django database."""
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> BackendOptions:
        """Check ``options``; raise :class:`InvalidOptions` naming a bad or unknown key."""
        if not isinstance(options, Mapping):
            raise InvalidOptions(f"OPTIONS must be a dict, got {type(options).__name__}")
        rest = dict(options)
        database = rest.pop("database", "default")
        schema = rest.pop("schema", None)
        if not isinstance(database, str) or not database:
            raise InvalidOptions(f"OPTIONS['database'] must be a database alias, got {database!r}")
        if schema is not None and (not isinstance(schema, str) or not SCHEMA_RE.fullmatch(schema)):
            raise InvalidOptions(
                f"OPTIONS['schema'] must be 1-48 characters from [a-z0-9_], not starting with a "
                f"digit, got {schema!r}"
            )
        Settings.load(env={}, **rest)  # every other key is a taskward setting: check them now
        return cls(database=database, schema=schema, settings=rest)


def postgres_url(connection: Any, schema: str | None = None) -> str | None:
    """A ``postgresql://`` URL reaching the database of Django ``connection``, or None.

    Built from Django's own ``get_connection_params()``, so it names the server exactly as
    Django's connections do: every libpq keyword of the database's settings and ``OPTIONS``
    (TLS and authentication included), host lists and IPv6 addresses in the query, and
    libpq's environment defaults (``PGHOST``, ``PGPORT``…) left to libpq on both sides.
    """
    if connection.settings_dict.get("ENGINE") not in POSTGRES_ENGINES:
        return None
    params = dict(connection.get_connection_params())
    user = quote(str(params.pop("user", "") or ""), safe="")
    password = quote(str(params.pop("password", "") or ""), safe="")
    name = quote(str(params.pop("dbname", "") or ""), safe="")
    query = {
        key: str(value)
        for key, value in params.items()
        if key not in _NOT_LIBPQ and isinstance(value, str | int) and value != ""
    }
    if schema:
        query["schema"] = schema
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgresql://{auth}/{name}" + (f"?{urlencode(query)}" if query else "")
