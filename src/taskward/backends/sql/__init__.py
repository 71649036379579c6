"""SQL text of the SQL backends, kept in ``.sql`` files as named blocks, loaded once.

Each SQL store keeps its SQL beside its code: the package named by ``package`` (for example
``"taskward.backends.postgres"``) holds ``queries.sql`` (every statement the backend runs) and
``migrations/NNNN_*.sql``. A block in ``queries.sql`` starts with a line
``-- name: some_name``; the statement follows, up to the next such line. Other ``--`` comment
lines inside a block are documentation and are dropped on load.

Files are read through :mod:`importlib.resources`, so they are found inside a wheel or a zip too.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Final

__all__ = ["load_queries", "read_text"]

_NAME_LINE: Final = re.compile(r"^--\s*name:\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$")


def read_text(package: str, *parts: str) -> str:
    """Return the text of the file ``parts`` inside the installed package ``package``."""
    resource = files(package)
    for part in parts:
        resource = resource / part
    return resource.read_text(encoding="utf-8")


def parse_queries(text: str) -> dict[str, str]:
    """Split ``text`` into ``{name: statement}`` at each ``-- name: x`` line.

    Comment lines and a trailing semicolon are dropped from each statement. Raises
    ``ValueError`` on a duplicate name, an empty block, or SQL before the first name.
    """
    queries: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []
    for line in [*text.splitlines(), "-- name: _end_of_file"]:
        match = _NAME_LINE.match(line.strip())
        if match is None:
            stripped = line.strip()
            if stripped and not stripped.startswith("--"):
                if name is None:
                    raise ValueError(f"SQL before the first '-- name:' line: {stripped!r}")
                body.append(line.rstrip())
            continue
        if name is not None:
            queries[name] = _finish_block(name, body, queries)
        name, body = match["name"], []
    return queries


def _finish_block(name: str, body: list[str], seen: dict[str, str]) -> str:
    if name in seen:
        raise ValueError(f"query {name!r} is defined twice")
    statement = "\n".join(body).strip().removesuffix(";").rstrip()
    if not statement:
        raise ValueError(f"query {name!r} has no SQL")
    return statement


@cache
def _queries(package: str) -> MappingProxyType[str, str]:
    return MappingProxyType(parse_queries(read_text(package, "queries.sql")))


def load_queries(package: str) -> dict[str, str]:
    """Return ``{name: sql}`` from ``queries.sql`` of ``package`` (parsed once per process)."""
    return dict(_queries(package))
