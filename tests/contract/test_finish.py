"""Contract: finish writes the outcome ``states.next_update`` chose, fenced on lease and attempt."""

from __future__ import annotations

from dataclasses import replace

import pytest

from taskward.backends import Backend
from taskward.jobs import ErrorRecord, JobState, JobUpdate
from taskward.states import Cancelled, Completed, Discarded, Failed, Snoozed, next_update

from .helpers import (
    NOW,
    OTHER_WORKER,
    POLICY,
    RETRY_DELAY,
    WORKER,
    assert_utc,
    at,
    claim,
    fetch_one,
    finish_with,
    insert_one,
    pretend_running,
    reach,
)

S = JobState


async def test_completed_stores_result(backend: Backend) -> None:
    job = await claim(backend)
    assert await finish_with(backend, job, Completed({"sent": [1, 2], "ok": True}), now=at(5))
    done = await backend.get(job.id)
    assert done.state is S.COMPLETED
    assert done.result == {"sent": [1, 2], "ok": True}
    assert done.completed_at == at(5)
    assert done.attempt == 1
    assert done.lease_until is None
    assert done.errors == ()
    assert_utc(done.completed_at)


async def test_completed_with_no_result_stores_none(backend: Backend) -> None:
    job = await claim(backend)
    assert await finish_with(backend, job, Completed())
    done = await backend.get(job.id)
    assert done.state is S.COMPLETED
    assert done.result is None


async def test_failed_with_attempts_left_becomes_retryable(backend: Backend) -> None:
    job = await claim(backend, max_attempts=3)
    outcome = Failed("ValueError", "bad value", "Traceback (most recent call last): ...")
    assert await finish_with(backend, job, outcome, now=at(5))
    retry = await backend.get(job.id)
    assert retry.state is S.RETRYABLE
    assert retry.scheduled_at == at(5 + RETRY_DELAY)
    assert retry.attempt == 1
    assert retry.completed_at is None
    assert retry.lease_until is None
    assert retry.errors == (
        ErrorRecord(
            attempt=1,
            at=at(5),
            kind="ValueError",
            message="bad value",
            traceback="Traceback (most recent call last): ...",
        ),
    )
    assert_utc(retry.scheduled_at, retry.errors[0].at)


async def test_errors_accumulate_across_attempts(backend: Backend) -> None:
    job = await claim(backend, max_attempts=3)
    assert await finish_with(backend, job, Failed("KeyError", "first"), now=at(1))
    await backend.promote_due(now=at(100))
    job = await fetch_one(backend, job, now=at(100))
    assert job.attempt == 2
    assert await finish_with(backend, job, Failed("OSError", "second"), now=at(101))
    stored = await backend.get(job.id)
    assert [(e.attempt, e.kind, e.message, e.at) for e in stored.errors] == [
        (1, "KeyError", "first", at(1)),
        (2, "OSError", "second", at(101)),
    ]
    assert stored.last_error == stored.errors[-1]


async def test_failed_on_last_attempt_becomes_failed(backend: Backend) -> None:
    job = await claim(backend, max_attempts=1)
    assert await finish_with(backend, job, Failed("RuntimeError", "gave up"), now=at(9))
    dead = await backend.get(job.id)
    assert dead.state is S.FAILED
    assert dead.completed_at == at(9)
    assert dead.attempt == 1
    assert dead.lease_until is None
    assert [(e.kind, e.message) for e in dead.errors] == [("RuntimeError", "gave up")]


async def test_discarded(backend: Backend) -> None:
    job = await claim(backend, max_attempts=5)
    assert await finish_with(backend, job, Discarded("invalid email"), now=at(2))
    dead = await backend.get(job.id)
    assert dead.state is S.DISCARDED
    assert dead.discarded_at == at(2)
    assert dead.completed_at is None
    assert dead.lease_until is None
    assert [(e.kind, e.message, e.attempt) for e in dead.errors] == [
        ("Discarded", "invalid email", 1)
    ]


async def test_cancelled_by_the_job(backend: Backend) -> None:
    job = await claim(backend)
    assert await finish_with(backend, job, Cancelled("not needed"), now=at(2))
    gone = await backend.get(job.id)
    assert gone.state is S.CANCELLED
    assert gone.cancelled_at == at(2)
    assert gone.lease_until is None
    assert [(e.kind, e.message) for e in gone.errors] == [("Cancelled", "not needed")]


async def test_cancel_requested_then_cancelled_clears_the_flag(backend: Backend) -> None:
    job = await claim(backend)
    await backend.cancel(job.id, reason="operator", now=at(1))
    job = await backend.get(job.id)
    assert job.cancel_requested is True
    assert await finish_with(backend, job, Cancelled("operator"), now=at(2))
    gone = await backend.get(job.id)
    assert gone.state is S.CANCELLED
    assert gone.cancel_requested is False


async def test_snoozed_refunds_the_attempt_and_schedules(backend: Backend) -> None:
    job = await claim(backend, max_attempts=1)
    assert await finish_with(backend, job, Snoozed(120), now=at(10))
    snoozed = await backend.get(job.id)
    assert snoozed.state is S.SCHEDULED
    assert snoozed.attempt == 0
    assert snoozed.scheduled_at == at(130)
    assert snoozed.lease_until is None
    assert snoozed.errors == ()

    assert await backend.promote_due(now=at(129)) == 0
    assert await backend.promote_due(now=at(130)) == 1
    again = await fetch_one(backend, job, now=at(130))
    assert again.attempt == 1  # the snooze did not spend the only attempt


async def test_fence_refuses_wrong_worker(backend: Backend) -> None:
    job = await claim(backend, worker=WORKER)
    assert not await finish_with(backend, job, Completed("x"), worker=OTHER_WORKER)
    assert await backend.get(job.id) == job


async def test_fence_refuses_wrong_attempt(backend: Backend) -> None:
    job = await claim(backend)
    for attempt in (job.attempt - 1, job.attempt + 1):
        update = replace(next_update(job, Completed("x"), at(1), POLICY), attempt=attempt)
        assert await backend.finish([update], worker_id=WORKER) == [False]
    assert await backend.get(job.id) == job


async def test_fence_refuses_stale_attempt_after_refetch(backend: Backend) -> None:
    first = await claim(backend)
    stale = next_update(first, Completed("late"), at(1), POLICY)
    assert await finish_with(backend, first, Failed("E", "x"))
    await backend.promote_due(now=at(100))
    second = await fetch_one(backend, first, now=at(100))  # same worker, attempt 2
    assert await backend.finish([stale], worker_id=WORKER) == [False]
    assert await backend.get(first.id) == second


@pytest.mark.parametrize(
    "state",
    [S.PENDING, S.SCHEDULED, S.RETRYABLE, S.COMPLETED, S.FAILED, S.DISCARDED, S.CANCELLED],
)
async def test_fence_refuses_job_that_is_not_running(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state)
    update = next_update(pretend_running(job), Completed("x"), at(1), POLICY)
    assert await backend.finish([update], worker_id=job.attempted_by or WORKER) == [False]
    assert await backend.get(job.id) == job


async def test_finish_twice_is_refused_the_second_time(backend: Backend) -> None:
    job = await claim(backend)
    assert await finish_with(backend, job, Completed(1), now=at(1))
    done = await backend.get(job.id)
    assert not await finish_with(backend, job, Failed("E", "late"), now=at(2))
    assert await backend.get(job.id) == done


@pytest.mark.any_store
async def test_finish_unknown_job_is_refused(backend: Backend) -> None:
    update = JobUpdate(job_id=987654, attempt=1, state=S.COMPLETED, at=NOW)
    assert await backend.finish([update], worker_id=WORKER) == [False]


async def test_batch_finish_returns_aligned_flags(backend: Backend) -> None:
    jobs = [await claim(backend, queue=f"q{n}", max_attempts=2) for n in range(4)]
    updates = [
        next_update(jobs[0], Completed("a"), at(1), POLICY),
        replace(next_update(jobs[1], Completed("b"), at(1), POLICY), attempt=5),  # refused
        next_update(jobs[2], Failed("E", "c"), at(1), POLICY),
        JobUpdate(job_id=987654, attempt=1, state=S.COMPLETED, at=at(1)),  # refused
        next_update(jobs[3], Discarded("d"), at(1), POLICY),
    ]
    assert await backend.finish(updates, worker_id=WORKER) == [True, False, True, False, True]
    states = [(await backend.get(j.id)).state for j in jobs]
    assert states == [S.COMPLETED, S.RUNNING, S.RETRYABLE, S.DISCARDED]
    assert (await backend.get(jobs[0].id)).result == "a"


@pytest.mark.any_store
async def test_batch_finish_of_nothing(backend: Backend) -> None:
    await insert_one(backend)
    assert await backend.finish([], worker_id=WORKER) == []


TRICKY = 'q"uote \\ back\\slash {brace}, comma\nline\ttab NULL "NULL" \u00e9\u4e2d\U0001f600'


async def test_outcomes_with_every_special_character_round_trip(backend: Backend) -> None:
    """Quotes, backslashes, braces, commas, line breaks and the word NULL survive a batch."""
    done, failed = await claim(backend), await claim(backend, queue="other", max_attempts=1)
    result = {TRICKY: [TRICKY, "NULL", None, "", "\\"]}
    error = Failed("Value\\Error", TRICKY, f"Traceback:\n  {TRICKY}")
    updates = [
        next_update(done, Completed(result), at(5), POLICY),
        next_update(failed, error, at(6), POLICY),
    ]
    assert await backend.finish(updates, worker_id=WORKER) == [True, True]
    stored = await backend.get(done.id)
    assert stored.result == result
    assert stored.completed_at == at(5)
    [record] = (await backend.get(failed.id)).errors
    assert (record.kind, record.message) == ("Value\\Error", TRICKY)
    assert record.traceback == f"Traceback:\n  {TRICKY}"
