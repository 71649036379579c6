"""Contract: expired leases are found, and the rescue write holds only while they stay expired.

The rescue is the real ``taskward.runtime.maintenance.Rescuer`` (no leadership, a frozen clock):
it computes ``states.next_update(job, Orphaned(), now, policy)`` and finishes it as the job's
owner (``worker_id=job.attempted_by``); the update's ``lease_expired_before`` fence makes it a
no-op if the worker heartbeated in the meantime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

import pytest

from taskward.backends import Backend
from taskward.backoff import ConstantBackoff
from taskward.clock import FrozenClock
from taskward.jobs import Job, JobState, JobUpdate
from taskward.observe.events import Event, EventBus
from taskward.runtime.maintenance import Rescuer
from taskward.states import Completed
from taskward.tasks import Task, TaskOptions

from .helpers import POLICY, RETRY_DELAY, WORKER, at, claim, fetch_one, finish_with, insert_one

S = JobState
Meanwhile = Callable[[list[Job]], Awaitable[None]]


class Watched:
    """The contract backend as the Rescuer sees it, watched at the seam.

    Records the jobs ``expired_leases`` found and the flag ``finish`` answered for each rescue
    write; ``meanwhile`` runs between the two, as a worker racing the Rescuer would.
    """

    def __init__(self, backend: Backend, meanwhile: Meanwhile | None) -> None:
        self.backend = backend
        self.meanwhile = meanwhile
        self.expired: list[Job] = []
        self.written: list[bool] = []

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        jobs = await self.backend.expired_leases(now=now, limit=limit)
        self.expired += jobs
        if self.meanwhile is not None:
            await self.meanwhile(jobs)
        return jobs

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        flags = await self.backend.finish(updates, worker_id=worker_id)
        self.written += flags
        return flags

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


async def rescue(
    backend: Backend,
    *,
    now_s: float,
    task: Task[Any, Any] | None = None,
    meanwhile: Meanwhile | None = None,
) -> list[bool]:
    """Run one round of the Rescuer at ``at(now_s)``; return the flag of each rescue write.

    ``task`` is what the Rescuer resolves every job's task name to (None: unknown here, so the
    default policy applies).
    """
    watched = Watched(backend, meanwhile)
    events = EventBus()
    rescued: list[Event] = []
    events.on("job.rescued", rescued.append)
    rescuer = Rescuer(
        cast(Backend, watched),
        FrozenClock(at(now_s)),
        1.0,
        leadership=None,
        resolve=lambda name: task,
        default_policy=POLICY,
        events=events,
    )
    await rescuer.run_once()
    # One write per expired job, each reported as rescued exactly when the fence let it through.
    assert len(watched.written) == len(watched.expired)
    written = [job.id for job, ok in zip(watched.expired, watched.written, strict=True) if ok]
    assert [e.job_id for e in rescued] == written
    return watched.written


def task_with_backoff(seconds: float) -> Task[Any, Any]:
    def noop() -> None:
        return None

    return Task(
        noop,
        name="tests:noop",
        options=TaskOptions(),
        backoff=ConstantBackoff(seconds),
        manager=None,
    )


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


async def test_rescue_retries_on_the_backoff_of_the_task_it_resolves(backend: Backend) -> None:
    job = await claim(backend, max_attempts=3, lease_seconds=30)
    assert await rescue(backend, now_s=40, task=task_with_backoff(7)) == [True]
    rescued = await backend.get(job.id)
    assert rescued.state is S.RETRYABLE
    assert rescued.scheduled_at == at(40 + 7)  # the task's policy, not the default one


async def test_rescue_on_last_attempt_fails_the_job(backend: Backend) -> None:
    job = await claim(backend, max_attempts=1, lease_seconds=30)
    assert await rescue(backend, now_s=40) == [True]
    dead = await backend.get(job.id)
    assert dead.state is S.FAILED
    assert dead.completed_at == at(40)
    assert dead.last_error is not None
    assert dead.last_error.kind == "Orphaned"


@pytest.mark.any_store
async def test_rescue_of_a_store_with_no_expired_lease_writes_nothing(backend: Backend) -> None:
    assert await rescue(backend, now_s=10**6) == []


async def test_rescue_of_a_lease_not_yet_expired_writes_nothing(backend: Backend) -> None:
    job = await claim(backend, lease_seconds=30)
    assert await rescue(backend, now_s=30) == []  # lease_until < now only
    assert await backend.get(job.id) == job


async def test_rescue_is_refused_after_the_lease_was_extended(backend: Backend) -> None:
    job = await claim(backend, lease_seconds=30)

    async def worker_heartbeats(expired: list[Job]) -> None:
        # The worker was only slow: it heartbeats before the rescuer writes.
        assert [j.id for j in expired] == [job.id]
        report = await backend.extend_leases([job.id], worker_id=WORKER, lease_until=at(100))
        assert job.id not in report.lost

    assert await rescue(backend, now_s=40, meanwhile=worker_heartbeats) == [False]
    alive = await backend.get(job.id)
    assert alive.state is S.RUNNING
    assert alive.lease_until == at(100)
    assert alive.errors == ()


async def test_rescue_of_a_job_that_finished_meanwhile_is_refused(backend: Backend) -> None:
    job = await claim(backend, lease_seconds=30)

    async def worker_finishes(expired: list[Job]) -> None:
        assert [j.id for j in expired] == [job.id]
        assert await finish_with(backend, job, Completed("late but fine"), now=at(41))

    assert await rescue(backend, now_s=40, meanwhile=worker_finishes) == [False]
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
