"""Contract: job leases are heartbeated by their owner; named leases elect one leader."""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.jobs import JobState
from taskward.states import Completed

from .helpers import OTHER_WORKER, WORKER, at, claim, finish_with, insert_one

S = JobState


async def test_extend_leases_moves_the_lease_of_owned_jobs(backend: Backend) -> None:
    a = await claim(backend, queue="a", lease_seconds=30)
    b = await claim(backend, queue="b", lease_seconds=30)
    report = await backend.extend_leases([a.id, b.id], worker_id=WORKER, lease_until=at(90))
    assert report.lost == frozenset()
    assert report.cancel_requested == frozenset()
    for job in (a, b):
        stored = await backend.get(job.id)
        assert stored.lease_until == at(90)
        assert stored.state is S.RUNNING
        assert stored.attempt == 1
    assert await backend.expired_leases(now=at(60), limit=10) == []


async def test_extend_leases_reports_lost_jobs(backend: Backend) -> None:
    mine = await claim(backend, queue="a", worker=WORKER)
    theirs = await claim(backend, queue="b", worker=OTHER_WORKER, lease_seconds=30)
    finished = await claim(backend, queue="c", worker=WORKER)
    assert await finish_with(backend, finished, Completed())
    pending = await insert_one(backend, queue="d")
    unknown = 987654

    report = await backend.extend_leases(
        [mine.id, theirs.id, finished.id, pending.id, unknown],
        worker_id=WORKER,
        lease_until=at(500),
    )
    assert report.lost == frozenset({theirs.id, finished.id, pending.id, unknown})
    assert report.cancel_requested == frozenset()
    assert (await backend.get(mine.id)).lease_until == at(500)
    assert (await backend.get(theirs.id)).lease_until == at(30)  # untouched
    assert (await backend.get(finished.id)).lease_until is None


async def test_extend_leases_reports_cancel_requested(backend: Backend) -> None:
    keep = await claim(backend, queue="a")
    stop = await claim(backend, queue="b")
    await backend.cancel(stop.id, reason="operator", now=at(1))
    report = await backend.extend_leases([keep.id, stop.id], worker_id=WORKER, lease_until=at(90))
    assert report.cancel_requested == frozenset({stop.id})
    assert report.lost == frozenset()
    assert (await backend.get(stop.id)).lease_until == at(90)  # still ours until it stops


@pytest.mark.any_store
async def test_extend_leases_of_nothing(backend: Backend) -> None:
    report = await backend.extend_leases([], worker_id=WORKER, lease_until=at(90))
    assert (report.lost, report.cancel_requested) == (frozenset(), frozenset())


async def test_acquire_lease_by_two_holders(backend: Backend) -> None:
    assert await backend.acquire_lease("leader", holder="a", now=at(0), until=at(30))
    assert not await backend.acquire_lease("leader", holder="b", now=at(10), until=at(40))
    assert await backend.acquire_lease("other-lease", holder="b", now=at(10), until=at(40))


async def test_acquire_lease_renewal_extends_it(backend: Backend) -> None:
    assert await backend.acquire_lease("leader", holder="a", now=at(0), until=at(30))
    assert await backend.acquire_lease("leader", holder="a", now=at(20), until=at(50))
    assert not await backend.acquire_lease("leader", holder="b", now=at(40), until=at(70))
    assert await backend.acquire_lease("leader", holder="a", now=at(45), until=at(75))


async def test_acquire_lease_takeover_after_expiry(backend: Backend) -> None:
    assert await backend.acquire_lease("leader", holder="a", now=at(0), until=at(30))
    assert not await backend.acquire_lease("leader", holder="b", now=at(29), until=at(59))
    assert await backend.acquire_lease("leader", holder="b", now=at(31), until=at(61))
    assert not await backend.acquire_lease("leader", holder="a", now=at(32), until=at(62))
    assert await backend.acquire_lease("leader", holder="b", now=at(40), until=at(70))
