"""The checks a Redis server passes before taskward keeps jobs in it (at every open).

Redis 6.2 or later (Valkey reports a Redis version too), and ``maxmemory-policy
noeviction``: an evicted key is a lost job. A cluster answers INFO per node; every node must
pass.
"""

from __future__ import annotations

from typing import Any, Final

from taskward.backends.redis.config import RedisConfig
from taskward.backends.redis.errors import NotSupportedServer

__all__ = ["MIN_VERSION", "check_policy", "check_version"]

MIN_VERSION: Final = (6, 2)


def _per_node(info: dict[str, Any], cluster: bool) -> list[dict[str, Any]]:
    """INFO of a cluster answers per node (node -> fields): every node must pass."""
    if cluster:
        nodes = [v for v in info.values() if isinstance(v, dict)]
        return nodes or [info]
    return [info]


def check_version(info: dict[str, Any], config: RedisConfig, *, cluster: bool = False) -> None:
    """Raise unless every server is Redis >= 6.2 or Valkey (which reports a Redis version)."""
    for server in _per_node(info, cluster):
        _check_version(server, config)


def check_policy(info: dict[str, Any], config: RedisConfig, *, cluster: bool = False) -> None:
    """Raise unless every server's ``maxmemory-policy`` is ``noeviction``."""
    for memory in _per_node(info, cluster):
        _check_policy(memory, config)


def _check_version(server: dict[str, Any], config: RedisConfig) -> None:
    text = str(server.get("redis_version", "0"))
    try:
        version = tuple(int(part) for part in text.split(".")[:2])
    except ValueError:
        version = (0, 0)
    if version < MIN_VERSION:
        raise NotSupportedServer(
            f"Redis at {config.safe_url} is version {text}; taskward needs Redis 6.2 or later "
            "(or Valkey 7.2+): ZPOPMIN with a count, multi-field HSET and GETDEL are used"
        )


def _check_policy(memory: dict[str, Any], config: RedisConfig) -> None:
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise NotSupportedServer(
            f"Redis at {config.safe_url} has maxmemory-policy {policy}: it may evict keys, and "
            "an evicted key is a lost job. Set `maxmemory-policy noeviction` (CONFIG SET or "
            "redis.conf), or give taskward a server of its own; check_policy=false skips this "
            "check at your own risk"
        )
