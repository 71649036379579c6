"""Redis errors as taskward's: what a caller of the Redis backend gets for each failure.

Unreachable, restarting, read-only (a failover), busy or reconfiguring servers are
:class:`~taskward.errors.BackendUnavailable` (the call wrote nothing; the worker keeps its
outcomes and writes them again); a full server and a foreign key under the prefix are
:class:`StoreError`; a URL redis-py cannot use is :class:`~taskward.errors.InvalidOptions`.
Messages name the server without its password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

import redis
import redis.exceptions

from taskward.backends.redis.config import RedisConfig
from taskward.errors import BackendUnavailable, InvalidOptions, NotSupported, TaskwardError

__all__ = ["NotSupportedServer", "StoreError", "building", "translated"]


class StoreError(TaskwardError):
    """The Redis store refused a command: a foreign key under our prefix, or a full server."""


class NotSupportedServer(NotSupported):
    """The Redis server cannot hold taskward's jobs safely as configured (refused at open)."""


# Replies that mean "not now": a failover, a restart loading its data, a long script
# (BUSY), a cluster reconfiguring. The call wrote nothing; the caller may try again.
_NOT_NOW: Final = (
    "MISCONF",
    "LOADING",
    "MASTERDOWN",
    "READONLY",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOREPLICAS",
)
_TRANSIENT: Final = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,
    redis.exceptions.ClusterError,
)


@contextlib.contextmanager
def translated(config: RedisConfig) -> Iterator[None]:
    """Turn redis-py's errors into taskward's, naming the server (without its password).

    Unreachable, restarting, read-only (a failover) or busy servers are
    :class:`BackendUnavailable`: the worker keeps its outcomes and writes them again.
    """
    where = config.safe_url
    try:
        yield
    except redis.AuthenticationError as exc:
        raise BackendUnavailable(f"Redis at {where} refused the credentials: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError, *_TRANSIENT) as exc:
        raise BackendUnavailable(f"Redis at {where} is unavailable: {exc}") from exc
    except redis.ResponseError as exc:
        text = str(exc)
        code = str(getattr(exc, "status_code", "") or "")
        # Redis < 7 wraps an error raised inside a script: "ERR Error running script ...
        # -READONLY You can't write ...": look for the code anywhere in the text.
        if code.startswith(_NOT_NOW) or any(
            f"-{c}" in text or text.startswith(c) for c in _NOT_NOW
        ):
            raise BackendUnavailable(f"Redis at {where} is not available now: {text}") from exc
        if code == "OOM" or text.startswith("OOM") or "maxmemory" in text:
            raise StoreError(
                f"Redis at {where} is full (maxmemory reached); nothing was written. "
                "Raise maxmemory, prune finished jobs, or move other data off this server"
            ) from exc
        if "WRONGTYPE" in text or code == "WRONGTYPE":
            found = text.partition("WRONGTYPE")[2].strip()
            raise StoreError(
                f"a key under {config.base} on {where} holds a value of another type"
                f"{f' ({found})' if found.startswith('the key') else ''}: something other "
                "than taskward wrote there. Give taskward its own prefix= (or database) and "
                "leave its keys alone; nothing was written"
            ) from exc
        if "DB index" in text:
            raise InvalidOptions(f"Redis at {where}: {text}") from exc
        raise StoreError(f"Redis at {where} refused a command: {text}") from exc
    except redis.RedisError as exc:
        raise StoreError(f"Redis at {where}: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def building(config: RedisConfig) -> Iterator[None]:
    """Turn redis-py's complaints about a URL into :class:`InvalidOptions`."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise InvalidOptions(f"invalid Redis URL {config.safe_url}: {exc}") from exc
