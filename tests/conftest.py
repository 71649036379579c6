"""Shared fixtures: an injected clock, real servers, and a fresh TaskManager per backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskward import FrozenClock, TaskManager
from tests_support.servers import (
    PostgresServer,
    RedisCluster,
    RedisServer,
    find_pg_bin,
    find_redis_server,
    private_postgres,
    private_redis,
    private_redis_cluster,
    require_pg,
    require_redis,
)

# The test app's task modules: workers run their plain functions by "module:function" name
# (a worker runs only registered code). Set in the environment so that worker subprocesses
# started by the tests declare them too; tests of the rule itself pass task_modules=().
os.environ.setdefault(
    "TASKWARD_TASK_MODULES",
    "tests_support.jobs,tests_support.reliability_app,reliability.test_transactions",
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def manager_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty store of each backend in turn (memory, sqlite, postgres, redis).

    PostgreSQL gets a new schema, Redis a new key prefix on the session's server.
    """
    if request.param == "memory":
        return "memory://"
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty durable store: a SQLite file, a new PostgreSQL schema or Redis prefix."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
async def tw(manager_url: str) -> AsyncIterator[TaskManager]:
    manager = TaskManager(manager_url, poll_interval=0.05, lease_seconds=5)
    async with manager:
        yield manager


# -- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole run (see tests_support.servers)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if require_pg():
            pytest.fail("TASKWARD_REQUIRE_PG is set but PostgreSQL (pg_ctl) is not installed")
        pytest.skip("PostgreSQL server binaries (pg_ctl) not found")
    with private_postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL of a fresh, empty taskward store: a new schema per test."""
    return f"{pg_server.url()}?schema=t_{uuid.uuid4().hex[:16]}"


# -- Redis --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway redis-server (no persistence) for the whole run (see tests_support.servers).

    Tests that stop, kill or reconfigure a server start their own with ``private_redis``.
    """
    if find_redis_server() is None:
        if require_redis():
            pytest.fail("TASKWARD_REQUIRE_REDIS is set but redis-server is not installed")
        pytest.skip("redis-server not found")
    with private_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of a fresh, empty taskward store: a new key prefix per test on the shared server."""
    return redis_server.url(0, prefix=f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """One throwaway 3-master Redis Cluster for the whole run (started on first use)."""
    if find_redis_server() is None:
        if require_redis():
            pytest.fail("TASKWARD_REQUIRE_REDIS is set but redis-server is not installed")
        pytest.skip("redis-server not found")
    with private_redis_cluster(masters=3) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """A fresh, empty taskward store on the cluster: a new prefix (so a new slot) per test."""
    return redis_cluster.url(prefix=f"t_{uuid.uuid4().hex[:16]}")


# The Django test project runs under Django's own test runner (tests/django runs it).
collect_ignore = ["django_project"]
