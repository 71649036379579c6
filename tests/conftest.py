"""Shared fixtures: an injected clock, and a fresh TaskManager per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskward import FrozenClock, TaskManager


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(params=["memory", "sqlite"])
def manager_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
async def tw(manager_url: str) -> AsyncIterator[TaskManager]:
    manager = TaskManager(manager_url, poll_interval=0.05, lease_seconds=5)
    async with manager:
        yield manager
