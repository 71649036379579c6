"""Contract: rate limits and holds are stored per queue, shared by every instance, and exact.

A ``rate_limit`` of N per window lets at most N jobs of the queue start in each fixed window
aligned to the epoch; ``fetch`` counts its claims in that window in its own transaction (or
script). A hold (``hold_queue``, what ``RateLimited`` sets) lets no job of the queue start
before it ends. ``NOW`` is a whole second, so it opens a window of every length used here.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from taskward.backends import Backend
from taskward.errors import NotSupported
from taskward.jobs import JobState
from taskward.limits import QueueLimits, Rate
from taskward.states import Completed

from .helpers import NOW, at, fetch, fill, finish_with, new_job

S = JobState
THREE_PER_SECOND = QueueLimits(rate_limit=Rate(3, 1.0))


async def test_rate_limits_are_stored_with_global_limits_and_cleared(backend: Backend) -> None:
    both = QueueLimits(global_limit=4, rate_limit=Rate(100, 60.0))
    await backend.set_queue_limits("q", both)
    await backend.set_queue_limits("other", QueueLimits(rate_limit=Rate(2, 0.25)))
    assert await backend.queue_limits() == {
        "q": both,
        "other": QueueLimits(rate_limit=Rate(2, 0.25)),
    }
    await backend.set_queue_limits("q", QueueLimits(global_limit=4))  # the rate is dropped
    await backend.set_queue_limits("other", QueueLimits())
    assert await backend.queue_limits() == {"q": QueueLimits(global_limit=4)}


async def test_a_window_hands_out_no_more_than_the_rate(backend: Backend) -> None:
    await backend.set_queue_limits("q", THREE_PER_SECOND)
    await fill(backend, 10)
    first = await fetch(backend, 2)
    assert len(first) == 2
    assert len(await fetch(backend, 10, now=at(0.5))) == 1  # the same window: one left
    # Finishing does not give a start back: the window counts starts, not running jobs.
    for job in first:
        assert await finish_with(backend, job, Completed(), now=at(0.6))
    assert await fetch(backend, 10, now=at(0.999)) == []
    assert len(await fetch(backend, 10, now=at(1))) == 3  # the next window opens
    assert len(await fetch(backend, 10, now=at(5.5))) == 3  # windows left empty do not add up


async def test_the_window_is_shared_by_every_instance(
    backend: Backend, second_backend: Backend
) -> None:
    await backend.set_queue_limits("q", THREE_PER_SECOND)
    await fill(backend, 10)
    assert len(await fetch(backend, 2)) == 2
    assert len(await fetch(second_backend, 10, worker="worker-2")) == 1
    assert await fetch(backend, 10) == []


async def test_racing_claims_never_exceed_the_rate(
    backend: Backend, second_backend: Backend
) -> None:
    await backend.set_queue_limits("q", QueueLimits(rate_limit=Rate(7, 1.0)))
    await fill(backend, 40)
    stores = [backend, second_backend] * 4
    rounds = await asyncio.gather(
        *(fetch(store, 3, worker=f"w{i}") for i, store in enumerate(stores))
    )
    assert sum(len(jobs) for jobs in rounds) == 7


async def test_rate_and_global_limits_combine(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=2, rate_limit=Rate(3, 1.0)))
    await fill(backend, 10)
    first = await fetch(backend, 10)
    assert len(first) == 2  # the global limit binds first
    assert await finish_with(backend, first[0], Completed(), now=at(0.1))
    assert len(await fetch(backend, 10, now=at(0.2))) == 1  # the third start of the window
    assert await finish_with(backend, first[1], Completed(), now=at(0.3))
    assert await fetch(backend, 10, now=at(0.4)) == []  # a slot is free; the window is not


async def test_the_flow_shows_the_window_and_its_starts(backend: Backend) -> None:
    rate = Rate(5, 10.0)
    await backend.set_queue_limits("q", QueueLimits(rate_limit=rate))
    await fill(backend, 3)
    assert len(await fetch(backend, 10)) == 3
    flow = (await backend.queue_flow())["q"]
    assert flow.limits == QueueLimits(rate_limit=rate)
    assert flow.held_until is None
    assert flow.used_in(rate.window_of(NOW)) == 3
    assert flow.used_in(rate.window_of(at(10))) == 0


async def test_a_changed_rate_applies_to_the_current_window(backend: Backend) -> None:
    await backend.set_queue_limits("q", THREE_PER_SECOND)
    await fill(backend, 10)
    assert len(await fetch(backend, 10)) == 3
    await backend.set_queue_limits("q", QueueLimits(rate_limit=Rate(5, 1.0)))  # raised
    assert len(await fetch(backend, 10, now=at(0.5))) == 2


async def test_a_held_queue_yields_nothing_until_the_hold_ends(backend: Backend) -> None:
    await fill(backend, 4)
    await backend.hold_queue("q", until=at(10))
    assert await fetch(backend, 10) == []
    assert await fetch(backend, 10, now=at(9.9)) == []
    assert await backend.queue_limits() == {}  # a hold is not a limit
    assert (await backend.queue_flow())["q"].held_until == at(10)
    assert len(await fetch(backend, 10, now=at(10))) == 4


async def test_a_hold_only_grows_and_none_releases_it(
    backend: Backend, second_backend: Backend
) -> None:
    await fill(backend, 2)
    await backend.hold_queue("q", until=at(10))
    await second_backend.hold_queue("q", until=at(5))  # shorter: the longer one stays
    assert (await second_backend.queue_flow())["q"].held_until == at(10)
    assert await fetch(second_backend, 10, now=at(6)) == []
    await backend.hold_queue("q", until=None)
    assert len(await fetch(second_backend, 10, now=at(6))) == 2


async def test_a_hold_leaves_limits_alone_and_limits_leave_the_hold(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=3))
    await backend.hold_queue("q", until=at(10))
    await fill(backend, 5)
    assert await fetch(backend, 10) == []
    await backend.set_queue_limits("q", QueueLimits())  # clearing limits keeps the hold
    assert await fetch(backend, 10, now=at(1)) == []
    [(queue, flow)] = (await backend.queue_flow()).items()
    assert (queue, flow.limits, flow.held_until) == ("q", QueueLimits(), at(10))
    await backend.set_queue_limits("q", QueueLimits(global_limit=3))
    assert len(await fetch(backend, 10, now=at(10))) == 3


async def test_a_hold_counts_only_its_own_queue(backend: Backend) -> None:
    await fill(backend, 2, queue="q")
    await fill(backend, 2, queue="free")
    await backend.hold_queue("q", until=at(10))
    assert len(await fetch(backend, 10, queue="free")) == 2
    assert await fetch(backend, 10, queue="q") == []


async def test_a_waiting_worker_wakes_when_the_window_opens(backend: Backend) -> None:
    # Real time: the wake-up is armed on this process's clock. A window of 0.2 s must wake the
    # waiter long before its 10 s timeout.
    await backend.set_queue_limits("q", QueueLimits(rate_limit=Rate(1, 0.2)))
    await backend.insert([new_job(queue="q", args=[i]) for i in range(10)], now=_real_now())
    assert len(await fetch(backend, 10, now=_real_now())) == 1
    while await fetch(backend, 10, now=_real_now()):
        pass  # a window opened since: one more each, until the window is full
    started = time.monotonic()
    await backend.wait_for_jobs(["q"], timeout=10)
    assert time.monotonic() - started < 5
    assert len(await fetch(backend, 10, now=_real_now())) == 1


async def test_a_waiting_worker_wakes_when_the_hold_ends(backend: Backend) -> None:
    now = _real_now()
    await backend.insert([new_job(queue="q")], now=now)
    await backend.hold_queue("q", until=now + timedelta(seconds=0.3))
    assert await fetch(backend, 10, now=now) == []
    started = time.monotonic()
    await backend.wait_for_jobs(["q"], timeout=10)
    assert time.monotonic() - started < 5
    assert len(await fetch(backend, 10, now=_real_now())) == 1


@pytest.mark.any_store
async def test_a_store_keeping_nothing_refuses_holds(backend: Backend) -> None:
    from taskward.backends import Capability

    if Capability.STORES_JOBS in backend.capabilities:
        pytest.skip("stores jobs: covered by the tests above")
    with pytest.raises(NotSupported):
        await backend.hold_queue("q", until=NOW)
    assert await backend.queue_flow() == {}


def _real_now() -> datetime:
    return datetime.now(UTC)
