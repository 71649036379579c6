"""Contract: queue limits are stored per queue, shared by every instance, and fetch obeys them.

A ``global_limit`` caps the queue's running jobs across every worker: ``fetch`` counts them in
the claim's own transaction (or script), so claims racing from several instances never exceed
it, and a job whose worker died keeps its slot until its lease is rescued.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from taskward.backends import Backend
from taskward.errors import NotSupported
from taskward.jobs import JobState, JobUpdate
from taskward.limits import QueueLimits
from taskward.states import Completed

from .helpers import LEASE_SECONDS, NOW, at, fetch, fill, finish_with

S = JobState


@pytest.mark.any_store
async def test_no_queue_has_limits_at_first(backend: Backend) -> None:
    assert await backend.queue_limits() == {}


async def test_limits_are_stored_replaced_and_cleared(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=3))
    await backend.set_queue_limits("other", QueueLimits(global_limit=7))
    assert await backend.queue_limits() == {
        "q": QueueLimits(global_limit=3),
        "other": QueueLimits(global_limit=7),
    }
    await backend.set_queue_limits("q", QueueLimits(global_limit=1))
    await backend.set_queue_limits("other", QueueLimits())
    assert await backend.queue_limits() == {"q": QueueLimits(global_limit=1)}


async def test_limits_are_seen_by_another_instance(
    backend: Backend, second_backend: Backend
) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=2))
    assert await second_backend.queue_limits() == {"q": QueueLimits(global_limit=2)}
    await fill(backend, 5)
    assert len(await fetch(second_backend, 10)) == 2


async def test_fetch_hands_out_no_more_than_the_global_limit(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=2))
    await fill(backend, 5)
    first = await fetch(backend, 10)
    assert len(first) == 2
    assert await fetch(backend, 10, worker="worker-2") == []
    # One finishes: one slot comes back, to whichever worker asks.
    assert await finish_with(backend, first[0], Completed(), now=at(1))
    assert len(await fetch(backend, 10, worker="worker-2")) == 1
    assert await fetch(backend, 10) == []


async def test_the_limit_counts_only_its_own_queue(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=1))
    await fill(backend, 3, queue="q")
    await fill(backend, 3, queue="free")
    assert len(await fetch(backend, 10, queue="free")) == 3
    assert len(await fetch(backend, 10, queue="q")) == 1


async def test_a_lower_limit_than_running_hands_out_nothing(backend: Backend) -> None:
    await fill(backend, 6)
    assert len(await fetch(backend, 4)) == 4
    await backend.set_queue_limits("q", QueueLimits(global_limit=2))
    assert await fetch(backend, 10) == []
    await backend.set_queue_limits("q", QueueLimits(global_limit=5))  # raised at run time
    assert len(await fetch(backend, 10)) == 1
    await backend.set_queue_limits("q", QueueLimits())  # cleared
    assert len(await fetch(backend, 10)) == 1


async def test_racing_instances_never_exceed_the_limit(
    backend: Backend, second_backend: Backend
) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=3))
    await fill(backend, 40)
    stores = [backend, second_backend] * 4
    rounds = await asyncio.gather(
        *(fetch(store, 2, worker=f"w{i}") for i, store in enumerate(stores))
    )
    assert sum(len(jobs) for jobs in rounds) == 3
    stats = await backend.stats()
    assert stats.counts["q"][S.RUNNING] == 3


async def test_a_dead_workers_jobs_hold_their_slots_until_rescued(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=2))
    await fill(backend, 4)
    held = await fetch(backend, 10, worker="dead")
    assert len(held) == 2
    assert await fetch(backend, 10, worker="alive") == []  # the lease has not expired
    expired = NOW + timedelta(seconds=LEASE_SECONDS + 1)
    orphans = await backend.expired_leases(now=expired, limit=10)
    assert sorted(j.id for j in orphans) == sorted(j.id for j in held)
    rescue = [
        JobUpdate(
            job_id=j.id,
            attempt=j.attempt,
            state=S.RETRYABLE,
            at=expired,
            scheduled_at=expired,
            lease_expired_before=expired,
        )
        for j in orphans
    ]
    assert await backend.finish(rescue, worker_id="dead") == [True, True]
    assert len(await fetch(backend, 10, worker="alive")) == 2


async def test_a_paused_limited_queue_still_yields_nothing(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=5))
    await fill(backend, 2)
    await backend.pause_queue("q")
    assert await fetch(backend, 10) == []
    await backend.resume_queue("q")
    assert len(await fetch(backend, 10)) == 2


@pytest.mark.any_store
async def test_a_store_keeping_nothing_refuses_limits(backend: Backend) -> None:
    from taskward.backends import Capability

    if Capability.STORES_JOBS in backend.capabilities:
        pytest.skip("stores jobs: covered by the tests above")
    with pytest.raises(NotSupported):
        await backend.set_queue_limits("q", QueueLimits(global_limit=1))
