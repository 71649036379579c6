"""Contract: expired leases are found, and the rescue write holds only while they stay expired.

The rescuer computes ``states.next_update(job, Orphaned(), now, policy)`` and finishes it as the
job's owner (``worker_id=job.attempted_by``); the update's ``lease_expired_before`` fence makes it
a no-op if the worker heartbeated in the meantime.
"""

from __future__ import annotations

from taskward.backends import Backend
from taskward.jobs import JobState
from taskward.states import Completed, Orphaned, next_update

from .helpers import POLICY, RETRY_DELAY, WORKER, at, claim, fetch_one, finish_with, insert_one

S = JobState


async def rescue(backend: Backend, *, now_s: float) -> list[bool]:
    expired = await backend.expired_leases(now=at(now_s), limit=100)
    updates = [next_update(job, Orphaned(), at(now_s), POLICY) for job in expired]
    flags: list[bool] = []
    for job, update in zip(expired, updates, strict=True):
        flags += await backend.finish([update], worker_id=job.attempted_by or "")
    return flags


async def test_expired_leases_returns_only_running_jobs_past_their_lease(backend: Backend) -> None:
    short = await claim(backend, queue="a", lease_seconds=30)
    await claim(backend, queue="b", lease_seconds=60)
    await insert_one(backend, queue="c")
    done = await claim(backend, queue="d", lease_seconds=10)
    assert await finish_with(backend, done, Completed())

    assert await backend.expired_leases(now=at(29), limit=10) == []
    assert await backend.expired_leases(now=at(30), limit=10) == []  # lease_until < now only
    expired = await backend.expired_leases(now=at(45), limit=10)
    assert [j.id for j in expired] == [short.id]
    assert expired[0].state is S.RUNNING
    assert expired[0].attempted_by == WORKER
    assert len(await backend.expired_leases(now=at(61), limit=10)) == 2


async def test_expired_leases_honours_limit(backend: Backend) -> None:
    jobs = [await claim(backend, queue=f"q{n}", lease_seconds=10) for n in range(5)]
    expired = await backend.expired_leases(now=at(11), limit=3)
    assert len(expired) == 3
    assert {j.id for j in expired} <= {j.id for j in jobs}


async def test_rescue_makes_orphan_retryable_and_counts_the_attempt(backend: Backend) -> None:
    job = await claim(backend, max_attempts=3, lease_seconds=30)
    assert await rescue(backend, now_s=40) == [True]
    rescued = await backend.get(job.id)
    assert rescued.state is S.RETRYABLE
    assert rescued.attempt == 1
    assert rescued.lease_until is None
    assert rescued.scheduled_at == at(40 + RETRY_DELAY)
    assert [(e.kind, e.attempt, e.at) for e in rescued.errors] == [("Orphaned", 1, at(40))]
    assert await backend.expired_leases(now=at(1000), limit=10) == []


async def test_rescue_on_last_attempt_fails_the_job(backend: Backend) -> None:
    job = await claim(backend, max_attempts=1, lease_seconds=30)
    assert await rescue(backend, now_s=40) == [True]
    dead = await backend.get(job.id)
    assert dead.state is S.FAILED
    assert dead.completed_at == at(40)
    assert dead.last_error is not None
    assert dead.last_error.kind == "Orphaned"


async def test_rescue_is_refused_after_the_lease_was_extended(backend: Backend) -> None:
    job = await claim(backend, lease_seconds=30)
    [expired] = await backend.expired_leases(now=at(40), limit=10)
    update = next_update(expired, Orphaned(), at(40), POLICY)
    # The worker was only slow: it heartbeats before the rescuer writes.
    report = await backend.extend_leases([job.id], worker_id=WORKER, lease_until=at(100))
    assert job.id not in report.lost
    assert await backend.finish([update], worker_id=WORKER) == [False]
    alive = await backend.get(job.id)
    assert alive.state is S.RUNNING
    assert alive.lease_until == at(100)
    assert alive.errors == ()


async def test_rescue_of_a_job_that_finished_meanwhile_is_refused(backend: Backend) -> None:
    job = await claim(backend, lease_seconds=30)
    [expired] = await backend.expired_leases(now=at(40), limit=10)
    update = next_update(expired, Orphaned(), at(40), POLICY)
    assert await finish_with(backend, job, Completed("late but fine"), now=at(41))
    assert await backend.finish([update], worker_id=WORKER) == [False]
    assert (await backend.get(job.id)).state is S.COMPLETED


async def test_zombie_worker_cannot_overwrite_the_rescued_run(backend: Backend) -> None:
    job = await claim(backend, worker="zombie", lease_seconds=30, max_attempts=3)
    assert await rescue(backend, now_s=40) == [True]
    await backend.promote_due(now=at(100))
    rerun = await fetch_one(backend, job, worker="healthy", now=at(100))
    assert rerun.attempt == 2

    assert not await finish_with(backend, job, Completed("zombie"), now=at(101), worker="zombie")
    report = await backend.extend_leases([job.id], worker_id="zombie", lease_until=at(200))
    assert report.lost == frozenset({job.id})
    assert await finish_with(backend, rerun, Completed("healthy"), now=at(102))
    done = await backend.get(job.id)
    assert (done.state, done.result, done.attempted_by) == (S.COMPLETED, "healthy", "healthy")
