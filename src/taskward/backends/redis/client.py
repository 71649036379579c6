"""The connections of one Redis backend: async and sync clients, the scripts, and errors.

Every state change is one Lua script from ``lua/`` (``common.lua`` is prepended to each), loaded
once per server and called by SHA; redis-py's script objects reload a script the server lost
(``SCRIPT FLUSH``, a restart, a failover) and run it again. Redis errors become taskward's:
an unreachable or restarting server is :class:`~taskward.errors.BackendUnavailable`, a key of
the wrong type under our prefix and a full server say what is wrong and how to fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import Any, Final

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.commands.core import AsyncScript, Script

from taskward.backends.redis.config import RedisConfig
from taskward.errors import BackendUnavailable, InvalidOptions, NotSupported, TaskwardError

__all__ = [
    "FIXED_KEYS",
    "SCRIPT_NAMES",
    "Connections",
    "NotSupportedServer",
    "StoreError",
    "translated",
]

SCRIPT_NAMES: Final = (
    "insert",
    "fetch",
    "finish",
    "extend",
    "progress",
    "promote",
    "expired",
    "per_minute",
    "prune",
    "cancel",
    "retry",
    "delete",
    "stats",
    "list",
    "lease",
)
CONNECT_TIMEOUT: Final = 5.0
MIN_VERSION: Final = (6, 2)
# The fixed keys of a store and their types (per-queue keys are checked by the scripts' use).
FIXED_KEYS: Final = {
    "seq": "string",
    "later": "zset",
    "running": "zset",
    "queues": "set",
    "paused": "set",
    "unique": "hash",
    "leases": "hash",
    "workers": "hash",
    "beats": "zset",
    "schedules": "hash",
    "version": "string",
}


class StoreError(TaskwardError):
    """The Redis store refused a command: a foreign key under our prefix, or a full server."""


class NotSupportedServer(NotSupported):
    """The Redis server cannot hold taskward's jobs safely as configured (refused at open)."""


def _source(name: str) -> str:
    folder = resources.files("taskward.backends.redis").joinpath("lua")
    common = folder.joinpath("common.lua").read_text(encoding="utf-8")
    return common + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


SOURCES: Final = {name: _source(name) for name in SCRIPT_NAMES}


@contextlib.contextmanager
def translated(config: RedisConfig) -> Iterator[None]:
    """Turn redis-py's errors into taskward's, naming the server (without its password)."""
    where = config.safe_url
    try:
        yield
    except redis.AuthenticationError as exc:
        raise BackendUnavailable(f"Redis at {where} refused the credentials: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BackendUnavailable(f"Redis at {where} cannot be reached: {exc}") from exc
    except redis.ResponseError as exc:
        text = str(exc)
        if text.startswith("OOM") or "maxmemory" in text:
            raise StoreError(
                f"Redis at {where} is full (maxmemory reached); nothing was written. "
                "Raise maxmemory, prune finished jobs, or move other data off this server"
            ) from exc
        if "WRONGTYPE" in text:
            raise StoreError(
                f"a key under {config.base} on {where} holds a value of another type: "
                "something other than taskward wrote there. Give taskward its own "
                "prefix= (or database) and leave its keys alone"
            ) from exc
        if "LOADING" in text or "MASTERDOWN" in text or "READONLY" in text:
            raise BackendUnavailable(f"Redis at {where} is not ready: {text}") from exc
        if "invalid DB index" in text or "DB index is out of range" in text:
            raise InvalidOptions(f"Redis at {where}: {text}") from exc
        raise StoreError(f"Redis at {where} refused a command: {text}") from exc


class Connections:
    """The clients of one backend: async for the worker and admin, sync for blocking callers."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.base = config.base
        self.anchor = [f"{self.base}:seq"]  # KEYS[1] of every script: routes to the slot
        self.client: Any = None
        self._opening: asyncio.Lock | None = None
        self.scripts: dict[str, AsyncScript] = {}
        self._sync_lock = threading.Lock()
        self._sync_client: Any = None
        self._sync_scripts: dict[str, Script] = {}
        self._sync_users: dict[int, int] = {}  # calls in flight, by id() of their sync client

    @property
    def sync_client(self) -> Any:
        """The sync client, None until the first blocking call opened it."""
        return self._sync_client

    def _options(self) -> dict[str, Any]:
        return {
            "decode_responses": True,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "health_check_interval": 30,
        }

    def make_async(self) -> Any:
        """A new async client (pool) on the configured server."""
        config = self.config
        if config.cluster:
            return redis.asyncio.cluster.RedisCluster.from_url(
                config.client_url, max_connections=config.pool_size, **self._options()
            )
        return redis.asyncio.Redis.from_url(
            config.client_url, max_connections=config.pool_size, **self._options()
        )

    async def open(self) -> None:
        """Create the async client and check the server (idempotent, once when concurrent)."""
        if self.client is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.client is None:
                await self._open()

    async def _open(self) -> None:
        client = self.make_async()
        try:
            with translated(self.config):
                await client.ping()
                await self._check_server(client)
        except BaseException:
            await client.aclose()
            raise
        self.client = client
        self.scripts = {name: client.register_script(SOURCES[name]) for name in SCRIPT_NAMES}

    async def _check_server(self, client: Any) -> None:
        """Refuse a server too old, or one that may evict keys (an evicted key is a lost job)."""
        info = await client.info("server")
        if self.config.cluster:  # one reply per node: every node must pass
            infos = [v for v in info.values() if isinstance(v, dict)] or [info]
        else:
            infos = [info]
        for server in infos:
            check_version(server, self.config)
        if not self.config.check_policy:
            return
        memory = await client.info("memory")
        nodes = [v for v in memory.values() if isinstance(v, dict)] if self.config.cluster else []
        for node in nodes or [memory]:
            check_policy(node, self.config)

    async def run(self, name: str, args: Sequence[Any]) -> Any:
        """Run one script with the store's base as its first argument."""
        if self.client is None:
            await self.open()
        with translated(self.config):
            return await self.scripts[name](keys=self.anchor, args=[self.base, *args])

    def run_blocking(self, name: str, args: Sequence[Any]) -> Any:
        """:meth:`run` from the calling thread, on the sync client (opened on first use).

        A close while other threads are in a call retires the client instead of closing it
        under them: the last call out closes it, and the next call opens a new one.
        """
        with self._sync_lock:
            if self._sync_client is None:
                self._open_sync()
            client, scripts = self._sync_client, self._sync_scripts
            self._sync_users[id(client)] = self._sync_users.get(id(client), 0) + 1
        try:
            with translated(self.config):
                return scripts[name](keys=self.anchor, args=[self.base, *args])
        finally:
            with self._sync_lock:
                left = self._sync_users.pop(id(client)) - 1
                if left:
                    self._sync_users[id(client)] = left
                retired = client is not self._sync_client and not left
            if retired:
                client.close()

    def _open_sync(self) -> None:
        config = self.config
        cls: Any = redis.cluster.RedisCluster if config.cluster else redis.Redis
        client = cls.from_url(
            config.client_url, max_connections=config.pool_size, **self._options()
        )
        with translated(config):
            client.ping()
        self._sync_client = client
        self._sync_scripts = {name: client.register_script(SOURCES[name]) for name in SCRIPT_NAMES}

    async def close(self) -> None:
        """Close both clients (idempotent); the backend opens again on its next use."""
        client, self.client = self.client, None
        self._opening = None  # a lock belongs to one event loop; the next open may run on another
        with self._sync_lock:
            sync_client, self._sync_client = self._sync_client, None
            in_use = sync_client is not None and id(sync_client) in self._sync_users
        if sync_client is not None and not in_use:
            sync_client.close()
        if client is not None:
            await client.aclose()


def check_version(server: dict[str, Any], config: RedisConfig) -> None:
    """Raise unless the server is Redis >= 6.2 or Valkey (which reports a Redis version too)."""
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


def check_policy(memory: dict[str, Any], config: RedisConfig) -> None:
    """Raise unless ``maxmemory-policy`` is ``noeviction``."""
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise NotSupportedServer(
            f"Redis at {config.safe_url} has maxmemory-policy {policy}: it may evict keys, and "
            "an evicted key is a lost job. Set `maxmemory-policy noeviction` (CONFIG SET or "
            "redis.conf), or give taskward a server of its own; check_policy=false skips this "
            "check at your own risk"
        )
