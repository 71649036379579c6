"""Contract: due jobs are promoted to pending; prune deletes finished jobs past their cutoff."""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.errors import JobNotFound
from taskward.jobs import Job, JobState
from taskward.states import Cancelled, Completed, Discarded, Failed

from .helpers import NOW, assert_utc, at, claim, finish_with, insert_one, list_all, reach

S = JobState


async def test_promote_due_moves_due_scheduled_and_retryable_jobs(backend: Backend) -> None:
    due = await insert_one(backend, state=S.SCHEDULED, scheduled_at=at(60))
    on_time = await insert_one(backend, state=S.SCHEDULED, scheduled_at=at(100))
    later = await insert_one(backend, state=S.SCHEDULED, scheduled_at=at(101))
    failing = await claim(backend, queue="retry", max_attempts=3)
    assert await finish_with(backend, failing, Failed("E", "x"), now=at(10))  # due at(40)
    pending = await insert_one(backend, queue="p")

    assert await backend.promote_due(now=at(100)) == 3
    for job in (due, on_time, failing):
        assert (await backend.get(job.id)).state is S.PENDING
    assert (await backend.get(later.id)).state is S.SCHEDULED
    assert (await backend.get(pending.id)).state is S.PENDING
    assert await backend.promote_due(now=at(100)) == 0
    assert await backend.promote_due(now=at(101)) == 1


async def test_promoted_jobs_keep_their_fields_and_are_fetchable(backend: Backend) -> None:
    job = await insert_one(backend, state=S.SCHEDULED, scheduled_at=at(60), args=[1], priority=2)
    assert await backend.promote_due(now=at(60)) == 1
    promoted = await backend.get(job.id)
    assert promoted.state is S.PENDING
    assert (promoted.args, promoted.priority, promoted.scheduled_at) == ([1], 2, at(60))
    fetched = await backend.fetch(
        queue="default", limit=1, worker_id="w", now=at(61), lease_until=at(120)
    )
    assert [j.id for j in fetched] == [job.id]


@pytest.mark.any_store
async def test_promote_due_of_nothing(backend: Backend) -> None:
    assert await backend.promote_due(now=NOW) == 0


async def finished(backend: Backend, queue: str, outcome: object, when: int) -> Job:
    job = await claim(backend, queue=queue, max_attempts=1)
    assert await finish_with(backend, job, outcome, now=at(when))  # type: ignore[arg-type]
    return await backend.get(job.id)


async def test_prune_deletes_finished_jobs_by_state_cutoff(backend: Backend) -> None:
    old_done = await finished(backend, "a", Completed(), 100)
    new_done = await finished(backend, "b", Completed(), 300)
    old_failed = await finished(backend, "c", Failed("E", "x"), 100)
    old_discarded = await finished(backend, "d", Discarded("x"), 100)
    old_cancelled = await finished(backend, "e", Cancelled("x"), 100)
    waiting = await insert_one(backend, queue="f")

    deleted = await backend.prune(before={S.COMPLETED: at(200), S.DISCARDED: at(200)})
    assert deleted == 2
    for gone in (old_done, old_discarded):
        with pytest.raises(JobNotFound):
            await backend.get(gone.id)
    for kept in (new_done, old_failed, old_cancelled, waiting):
        assert await backend.get(kept.id) == kept

    assert await backend.prune(before={S.FAILED: at(200), S.CANCELLED: at(200)}) == 2
    assert await backend.prune(before={S.COMPLETED: at(300)}) == 0  # strictly before
    assert await backend.prune(before={S.COMPLETED: at(301)}) == 1
    page = await list_all(backend)
    assert [j.id for j in page.items] == [waiting.id]


async def test_prune_uses_cancelled_at_for_jobs_cancelled_while_waiting(backend: Backend) -> None:
    job = await insert_one(backend, now=NOW)
    await backend.cancel(job.id, reason="x", now=at(500))
    assert await backend.prune(before={S.CANCELLED: at(400)}) == 0
    assert await backend.prune(before={S.CANCELLED: at(600)}) == 1


async def test_prune_with_no_cutoffs_deletes_nothing(backend: Backend) -> None:
    await finished(backend, "a", Completed(), 100)
    assert await backend.prune(before={}) == 0
    assert (await list_all(backend)).total_entries == 1


@pytest.mark.parametrize("state", [S.SCHEDULED, S.PENDING, S.RUNNING, S.RETRYABLE])
async def test_prune_never_deletes_unfinished_jobs(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state)
    assert await backend.prune(before={state: at(10**8)}) == 0
    assert await backend.get(job.id) == job


async def test_finished_per_minute_counts_each_state_by_the_minute_it_finished(
    backend: Backend,
) -> None:
    await finished(backend, "a", Completed(), 10)  # minute 0
    await finished(backend, "b", Completed(), 59.5)  # minute 0
    await finished(backend, "c", Completed(), 60)  # minute 1: the boundary belongs to it
    await finished(backend, "d", Failed("E", "x"), 61)  # minute 1
    await finished(backend, "e", Discarded("x"), 130)  # minute 2
    await finished(backend, "f", Completed(), -5)  # before `since`: not counted
    cancelled = await insert_one(backend, queue="g", now=NOW)
    await backend.cancel(cancelled.id, reason="x", now=at(125))  # minute 2, by cancelled_at
    await insert_one(backend, queue="h")  # still waiting: never counted
    await claim(backend, queue="i")  # running: never counted

    rows = await backend.finished_per_minute(since=NOW)

    assert rows == [
        (at(0), S.COMPLETED, 2),
        (at(60), S.COMPLETED, 1),
        (at(60), S.FAILED, 1),
        (at(120), S.CANCELLED, 1),
        (at(120), S.DISCARDED, 1),
    ]
    assert_utc(*(minute for minute, _, _ in rows))
    assert await backend.finished_per_minute(since=at(121)) == [
        (at(120), S.CANCELLED, 1),
        (at(120), S.DISCARDED, 1),
    ]
