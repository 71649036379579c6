"""Shared fixtures: an injected clock, real servers, and a fresh TaskManager per backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from taskward import FrozenClock, TaskManager
from tests_support.servers import PostgresServer, find_pg_bin, private_postgres, require_pg

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


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def manager_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty durable store: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
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
