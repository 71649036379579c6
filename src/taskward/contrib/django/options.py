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

from taskward.errors import InvalidOptions
from taskward.settings import Settings

__all__ = ["POSTGRES_ENGINES", "BackendOptions", "postgres_url"]

POSTGRES_ENGINES = frozenset(
    {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}
)
# libpq parameters of a Django database's OPTIONS that also make sense to taskward's pool;
# Django's own keys (pool, isolation_level, server_side_binding…) are not libpq's.
_LIBPQ_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslpassword",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "service",
        "passfile",
    }
)


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
        if schema is not None and not isinstance(schema, str):
            raise InvalidOptions(f"OPTIONS['schema'] must be a string, got {schema!r}")
        Settings.load(env={}, **rest)  # every other key is a taskward setting: check them now
        return cls(database=database, schema=schema, settings=rest)


def postgres_url(settings_dict: Mapping[str, Any], schema: str | None = None) -> str | None:
    """A ``postgresql://`` URL for a Django database's settings, or None if not PostgreSQL."""
    if settings_dict.get("ENGINE") not in POSTGRES_ENGINES:
        return None
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    host = str(settings_dict.get("HOST") or "")
    port = str(settings_dict.get("PORT") or "")
    name = quote(str(settings_dict.get("NAME") or ""), safe="")
    query: dict[str, str] = {}
    if host.startswith("/"):  # a Unix socket directory goes in the query, not the netloc
        query["host"] = host
        host = ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    netloc = f"{auth}{host}" + (f":{port}" if port else "")
    for key, value in (settings_dict.get("OPTIONS") or {}).items():
        if key in _LIBPQ_OPTIONS and isinstance(value, str | int):
            query[key] = str(value)
    if schema:
        query["schema"] = schema
    return f"postgresql://{netloc}/{name}" + (f"?{urlencode(query)}" if query else "")
