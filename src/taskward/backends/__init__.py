"""Backends: ``open_backend(url)`` picks the store from the URL scheme, importing it lazily."""

from __future__ import annotations

from taskward.backends.base import Backend, Capability
from taskward.errors import InvalidOptions

__all__ = ["Backend", "Capability", "open_backend"]


def open_backend(url: str, *, synchronous: str = "FULL") -> Backend:
    """Return an (unopened) backend for ``url``.

    ``synchronous`` is SQLite's durability level (FULL: no acknowledged enqueue is lost on
    power failure; NORMAL: faster, may lose the last transactions on power failure).
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "memory":
        from taskward.backends.memory import MemoryBackend

        return MemoryBackend(url)
    if scheme == "noop":
        from taskward.backends.noop import NoopBackend

        return NoopBackend(url)
    if scheme == "sqlite":
        from taskward.backends.sqlite import SqliteBackend

        return SqliteBackend(url, synchronous=synchronous)
    if scheme in {"postgres", "postgresql"}:
        from taskward.backends.postgres import PostgresBackend

        return PostgresBackend(url)
    if scheme in {"redis", "rediss", "unix"}:
        from taskward.backends.redis import RedisBackend

        return RedisBackend(url)
    raise InvalidOptions(
        f"unknown backend URL scheme {scheme!r}: use sqlite:///path, postgresql://user@host/db, "
        "redis://host:port/db, memory:// or noop://"
    )
