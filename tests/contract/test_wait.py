"""Contract: wait_for_jobs wakes on a new job from the same instance, else after its timeout."""

from __future__ import annotations

import asyncio

import pytest

from taskward.backends import Backend
from taskward.jobs import JobState

from .helpers import NOW, at, insert_one

LONG_WAIT = 60.0  # what a worker might pass; the test must never get near it
BOUND = 10.0  # generous: an early return takes milliseconds


async def start_waiting(backend: Backend, queues: list[str]) -> asyncio.Task[None]:
    waiter = asyncio.create_task(backend.wait_for_jobs(queues, timeout=LONG_WAIT))
    for _ in range(5):  # let the waiter run up to its wait (loop turns, not wall time)
        await asyncio.sleep(0)
    assert not waiter.done()
    return waiter


async def test_wait_returns_early_after_an_insert(backend: Backend) -> None:
    waiter = await start_waiting(backend, ["default"])
    loop = asyncio.get_running_loop()
    started = loop.time()
    await insert_one(backend, now=NOW)
    await asyncio.wait_for(waiter, timeout=BOUND)
    assert waiter.done()
    assert waiter.exception() is None
    assert loop.time() - started < BOUND


async def test_wait_returns_early_after_promote_due(backend: Backend) -> None:
    await insert_one(backend, state=JobState.SCHEDULED, scheduled_at=at(10))
    waiter = await start_waiting(backend, ["default"])
    assert await backend.promote_due(now=at(10)) == 1
    await asyncio.wait_for(waiter, timeout=BOUND)
    assert waiter.exception() is None


@pytest.mark.any_store
async def test_wait_returns_after_timeout_when_nothing_happens(backend: Backend) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(backend.wait_for_jobs(["default"], timeout=0.2), timeout=BOUND)
    elapsed = loop.time() - started
    assert 0.15 <= elapsed < BOUND
