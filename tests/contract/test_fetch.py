"""Contract: fetch atomically claims pending jobs of one queue, in priority then schedule order."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from taskward.backends import Backend
from taskward.jobs import Job, JobState
from taskward.states import Completed, Failed

from .helpers import (
    LEASE_SECONDS,
    NOW,
    WORKER,
    assert_utc,
    at,
    claim,
    finish_with,
    insert_one,
    new_job,
)

S = JobState
LEASE = at(LEASE_SECONDS)


async def fetch(
    backend: Backend,
    *,
    limit: int = 10,
    queue: str = "default",
    worker_id: str = WORKER,
    now: datetime = NOW,
    lease_until: datetime = LEASE,
) -> list[Job]:
    return await backend.fetch(
        queue=queue, limit=limit, worker_id=worker_id, now=now, lease_until=lease_until
    )


async def test_fetch_claims_job_and_sets_lease(backend: Backend) -> None:
    job = await insert_one(backend, args=[1], kwargs={"a": 2})
    [fetched] = await backend.fetch(
        queue="default", limit=5, worker_id="w-7", now=at(3), lease_until=at(63)
    )
    assert fetched.id == job.id
    assert fetched.state is S.RUNNING
    assert fetched.attempt == 1
    assert fetched.attempted_at == at(3)
    assert fetched.attempted_by == "w-7"
    assert fetched.lease_until == at(63)
    assert (fetched.args, fetched.kwargs) == ([1], {"a": 2})
    assert_utc(fetched.attempted_at, fetched.lease_until)
    assert await backend.get(job.id) == fetched


async def test_fetch_orders_by_priority_then_scheduled_at_then_id(backend: Backend) -> None:
    specs = [
        {"priority": 5, "scheduled_at": at(-10)},  # 0: fourth
        {"priority": 5, "scheduled_at": at(-20)},  # 1: second
        {"priority": 0, "scheduled_at": NOW},  # 2: first (highest priority)
        {"priority": 5, "scheduled_at": at(-20)},  # 3: third (same time as 1, larger id)
        {"priority": 9, "scheduled_at": at(-100)},  # 4: last (lowest priority)
    ]
    inserted = await backend.insert([new_job(**s) for s in specs], now=NOW)
    ids = [i.job.id for i in inserted]

    first_two = await fetch(backend, limit=2)
    assert {j.id for j in first_two} == {ids[2], ids[1]}
    rest = [(await fetch(backend, limit=1))[0].id for _ in range(3)]
    assert rest == [ids[3], ids[0], ids[4]]
    assert await fetch(backend) == []


async def test_fetch_honours_limit(backend: Backend) -> None:
    await backend.insert([new_job() for _ in range(7)], now=NOW)
    assert len(await fetch(backend, limit=3)) == 3
    assert len(await fetch(backend, limit=3)) == 3
    assert len(await fetch(backend, limit=3)) == 1
    assert await fetch(backend, limit=3) == []


async def test_fetch_takes_only_pending_jobs_of_its_queue(backend: Backend) -> None:
    mine = await insert_one(backend)
    await insert_one(backend, queue="other")
    await insert_one(backend, state=S.SCHEDULED, scheduled_at=at(-1))  # due, but not promoted
    done = await claim(backend, queue="done")
    assert await finish_with(backend, done, Completed())

    fetched = await fetch(backend, limit=10)
    assert [j.id for j in fetched] == [mine.id]
    assert await fetch(backend, queue="done") == []


async def test_claimed_job_is_not_handed_out_again(backend: Backend) -> None:
    job = await insert_one(backend)
    assert [j.id for j in await fetch(backend)] == [job.id]
    assert await fetch(backend) == []
    assert await fetch(backend, worker_id="another", now=at(1)) == []
    assert (await backend.get(job.id)).attempted_by == WORKER


@pytest.mark.any_store
async def test_fetch_from_empty_or_unknown_queue_returns_nothing(backend: Backend) -> None:
    assert await fetch(backend) == []
    assert await fetch(backend, queue="never-used") == []


async def test_paused_queue_yields_nothing(backend: Backend) -> None:
    job = await insert_one(backend)
    other = await insert_one(backend, queue="other")
    await backend.pause_queue("default")
    assert await fetch(backend) == []
    assert [j.id for j in await fetch(backend, queue="other")] == [other.id]
    assert (await backend.get(job.id)).state is S.PENDING
    await backend.resume_queue("default")
    assert [j.id for j in await fetch(backend)] == [job.id]


async def test_refetch_after_retry_counts_the_attempt(backend: Backend) -> None:
    job = await claim(backend)
    assert await finish_with(backend, job, Failed("E", "x"))
    assert await backend.promote_due(now=at(3600)) == 1
    [again] = await fetch(backend, now=at(3600), lease_until=at(3700))
    assert again.id == job.id
    assert again.attempt == 2
    assert again.attempted_at == at(3600)


async def test_retried_job_is_ordered_by_its_new_scheduled_at(backend: Backend) -> None:
    early = await insert_one(backend, scheduled_at=NOW)
    await backend.cancel(early.id, reason="oops", now=at(1))
    middle = await insert_one(backend, scheduled_at=at(50), now=at(2))
    await backend.retry(early.id, now=at(100))  # scheduled_at becomes at(100)
    order = [(await fetch(backend, limit=1, now=at(200)))[0].id for _ in range(2)]
    assert order == [middle.id, early.id]


async def test_concurrent_fetches_on_one_instance_never_share_a_job(backend: Backend) -> None:
    await backend.insert([new_job() for _ in range(30)], now=NOW)
    batches = await asyncio.gather(*(fetch(backend, limit=4) for _ in range(10)))
    ids = [j.id for batch in batches for j in batch]
    assert len(ids) == len(set(ids)) == 30


async def test_two_instances_fetching_concurrently_never_share_a_job(
    backend: Backend, second_backend: Backend
) -> None:
    inserted = await backend.insert([new_job() for _ in range(50)], now=NOW)
    stores = [backend, second_backend]
    batches = await asyncio.gather(
        *(
            stores[n % 2].fetch(
                queue="default", limit=3, worker_id=f"w{n % 2}", now=NOW, lease_until=LEASE
            )
            for n in range(24)
        )
    )
    ids = [j.id for batch in batches for j in batch]
    for store in stores:  # drain whatever a busy instance left behind
        while more := await store.fetch(
            queue="default", limit=50, worker_id="drain", now=NOW, lease_until=LEASE
        ):
            ids += [j.id for j in more]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(i.job.id for i in inserted)
    for batch, n in zip(batches, range(24), strict=True):
        assert all(j.attempted_by == f"w{n % 2}" and j.attempt == 1 for j in batch)
