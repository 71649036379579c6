"""The Redis (and Valkey) store: its code and its Lua scripts (``lua/``), all in this package.

- ``backend``: :class:`RedisBackend`, the facade; one method per call of the protocol.
- ``config``: the URL and taskward's own parameters (``prefix``, ``pool_size``, ``cluster``).
- ``client``: the async and sync clients and the scripts.
- ``errors``: redis-py's errors as taskward's; ``checks``: the server checks at open.
- ``flows``: workflows (insert, read, cancel, the sweep); their rules are ``lua/flows.lua``.
- ``admin``: queue controls, limits, schedules and the worker registry (no job states).
- ``listener``: the wake-up subscription and this process's waiters.
- ``codec``: job hashes ↔ domain values, and the scripts' argument lists.
"""

from __future__ import annotations

from taskward.errors import NotSupported

try:  # every module of this package needs the driver: say how to get it, once
    import redis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise NotSupported("the redis backend needs redis-py: pip install 'taskward[redis]'") from exc

from taskward.backends.redis.backend import RedisBackend
from taskward.backends.redis.config import RedisConfig, parse_redis_url

__all__ = ["RedisBackend", "RedisConfig", "parse_redis_url"]
