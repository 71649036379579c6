"""The connections of one Redis backend: async and sync clients, the scripts, and errors.

Every state change is one Lua script from ``lua/`` (``common.lua`` is prepended to each, and
``flows.lua``, the workflow rules, to those of :data:`FLOW_SCRIPTS`), loaded
once per server and called by SHA; redis-py's script objects reload a script the server lost
(``SCRIPT FLUSH``, a restart, a failover) and run it again. Redis errors become taskward's:
an unreachable or restarting server is :class:`~taskward.errors.BackendUnavailable`, a key of
the wrong type under our prefix and a full server say what is wrong and how to fix it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.exceptions
import redis.retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript, Script

from taskward.backends.redis.checks import check_policy, check_version
from taskward.backends.redis.config import RedisConfig
from taskward.backends.redis.errors import building, translated

__all__ = ["FIXED_KEYS", "SCRIPT_NAMES", "SOURCES", "Connections"]

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
    "limits",
    "hold",
    "partition_flow",
    "workflow_insert",
    "workflow",
    "workflow_cancel",
    "release",
    "cron_fires",
    "cron_pause",
    "health",
    "health_ended",
    "reseal",
)
# The scripts that apply the workflow rules: flows.lua comes after common.lua in each.
FLOW_SCRIPTS: Final = frozenset(
    {
        "finish",
        "cancel",
        "retry",
        "delete",
        "workflow_insert",
        "workflow",
        "workflow_cancel",
        "release",
    }
)
CONNECT_TIMEOUT: Final = 5.0
SOCKET_TIMEOUT: Final = 30.0
POOL_TIMEOUT: Final = 10.0  # how long a call waits for a free connection (as PostgreSQL's pool)
# The fixed keys of a store and their types (per-queue keys are checked by the scripts' use).
FIXED_KEYS: Final = {
    "seq": "string",
    "running": "zset",
    "queues": "set",
    "paused": "set",
    "limits": "hash",
    "waits": "hash",
    "cursors": "hash",
    "unique": "hash",
    "leases": "hash",
    "workers": "hash",
    "beats": "zset",
    "schedules": "hash",
    "cronstate": "hash",
    "cronpaused": "set",
    "version": "string",
    "wseq": "string",
}


def _source(name: str) -> str:
    folder = resources.files("taskward.backends.redis").joinpath("lua")
    parts = ["common", "flows", name] if name in FLOW_SCRIPTS else ["common", name]
    return "\n".join(folder.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in parts)


SOURCES: Final = {name: _source(name) for name in SCRIPT_NAMES}


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
        options: dict[str, Any] = {
            "decode_responses": True,
            # Bytes planted in the store (a pickle) decode to text that is not JSON, which
            # every reader refuses like any other bad payload, instead of failing the read.
            "encoding_errors": "replace",
            "socket_connect_timeout": CONNECT_TIMEOUT,
            # A half-open connection (a partition, a failover without a reset) must fail a
            # call, not hang a heartbeat forever; the longest script is far below this.
            "socket_timeout": SOCKET_TIMEOUT,
            "health_check_interval": 30,
        }
        if not self.config.client_url.startswith("unix:"):
            options["socket_keepalive"] = True  # TCP only
        return options

    def make_async(self) -> Any:
        """A new async client on the configured server.

        Never retried by redis-py: a script whose reply was lost may have run, and sending
        it again would run it twice (an insert stored twice, a claim leased to nobody).
        The error reaches taskward, whose callers retry what is safe to retry. A full pool
        waits for a connection instead of failing.
        """
        config = self.config
        with building(config):
            if config.cluster:
                return redis.asyncio.cluster.RedisCluster.from_url(
                    config.client_url,
                    max_connections=config.pool_size,
                    retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
                    **self._options(),
                )
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                config.client_url,
                max_connections=config.pool_size,
                timeout=POOL_TIMEOUT,
                retry=redis.asyncio.retry.Retry(NoBackoff(), 0),  # the pool's, not the client's
                **self._options(),
            )
            return redis.asyncio.Redis(
                connection_pool=pool, retry=redis.asyncio.retry.Retry(NoBackoff(), 0)
            )

    def _make_sync(self) -> Any:
        config = self.config
        with building(config):
            if config.cluster:
                return redis.cluster.RedisCluster.from_url(
                    config.client_url,
                    max_connections=config.pool_size,
                    retry=redis.retry.Retry(NoBackoff(), 0),
                    **self._options(),
                )
            pool = redis.BlockingConnectionPool.from_url(
                config.client_url,
                max_connections=config.pool_size,
                timeout=POOL_TIMEOUT,
                retry=redis.retry.Retry(NoBackoff(), 0),  # the pool's, not the client's
                **self._options(),
            )
            return redis.Redis(connection_pool=pool, retry=redis.retry.Retry(NoBackoff(), 0))

    async def open(self) -> None:
        """Create the async client and check the server (idempotent, once when concurrent)."""
        if self.client is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.client is None:
                await self._open()

    async def ready(self) -> Any:
        """The async client, opened (and the server checked) on first use."""
        if self.client is None:
            await self.open()
        return self.client

    async def _open(self) -> None:
        client = self.make_async()
        try:
            with translated(self.config):
                try:
                    # A server that accepts connections but never answers fails fast, not
                    # after the socket timeout meant for long scripts.
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await client.ping()
                        await self._check_server(client)
                except TimeoutError:
                    raise redis.TimeoutError(
                        f"no answer within {CONNECT_TIMEOUT:g} s (is it a Redis server?)"
                    ) from None
        except BaseException:
            await _close_async(client)
            raise
        self.client = client
        self.scripts = {name: client.register_script(SOURCES[name]) for name in SCRIPT_NAMES}

    async def _check_server(self, client: Any) -> None:
        """Refuse a server too old, or one that may evict keys (an evicted key is a lost job)."""
        config = self.config
        check_version(await client.info("server"), config, cluster=config.cluster)
        if config.check_policy:
            check_policy(await client.info("memory"), config, cluster=config.cluster)

    async def run(self, name: str, args: Sequence[Any]) -> Any:
        """Run one script with the store's base as its first argument."""
        if self.client is None:
            await self.open()
        with translated(self.config):
            try:
                return await self.scripts[name](keys=self.anchor, args=[self.base, *args])
            except redis.exceptions.NoScriptError:
                # Flushed again while redis-py reloaded it: send the source itself.
                return await self.client.eval(SOURCES[name], 1, *self.anchor, self.base, *args)

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
                try:
                    return scripts[name](keys=self.anchor, args=[self.base, *args])
                except redis.exceptions.NoScriptError:
                    return client.eval(SOURCES[name], 1, *self.anchor, self.base, *args)
        finally:
            with self._sync_lock:
                left = self._sync_users.pop(id(client)) - 1
                if left:
                    self._sync_users[id(client)] = left
                retired = client is not self._sync_client and not left
            if retired:
                _close_sync(client)

    def _probe_sync(self) -> None:
        """Check the server from a short-lived client whose every wait is short."""
        config = self.config
        with building(config):
            cls: Any = redis.cluster.RedisCluster if config.cluster else redis.Redis
            options = {**self._options(), "socket_timeout": CONNECT_TIMEOUT}
            probe = cls.from_url(
                config.client_url, retry=redis.retry.Retry(NoBackoff(), 0), **options
            )
        try:
            with translated(config):
                probe.ping()
                check_version(probe.info("server"), config, cluster=config.cluster)
                if config.check_policy:
                    check_policy(probe.info("memory"), config, cluster=config.cluster)
        finally:
            _close_sync(probe)

    def _open_sync(self) -> None:
        self._probe_sync()
        client = self._make_sync()
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
            _close_sync(sync_client)
        if client is not None:
            await _close_async(client)


async def _close_async(client: Any) -> None:
    """Close a client and its pool (a pool passed in is not closed by ``aclose`` alone)."""
    if isinstance(client, redis.asyncio.Redis):
        await client.aclose(close_connection_pool=True)
    else:
        await client.aclose()


def _close_sync(client: Any) -> None:
    """Close a sync client and its pool."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()
