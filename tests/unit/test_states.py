"""Unit tests for taskward.states: next_update per outcome, and the legal-move table walked.

The walk drives a real ``MemoryBackend`` (the reference store) through its public operations, so
every edge of ``LEGAL_MOVES`` is shown reachable and no operation makes a move outside it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskward.backends.memory import MemoryBackend
from taskward.backoff import ConstantBackoff, ExponentialBackoff
from taskward.graph import NewStep, NewWorkflow, step_meta
from taskward.jobs import MAX_DELAY_SECONDS, ErrorRecord, Job, JobState, JobUpdate, NewJob
from taskward.states import (
    LEGAL_MOVES,
    Cancelled,
    Completed,
    Discarded,
    Failed,
    Orphaned,
    Outcome,
    Snoozed,
    is_legal,
    next_update,
    storable_text,
)

S = JobState
NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = ConstantBackoff(30)
WORKER = "worker-1"


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def running(attempt: int = 1, max_attempts: int = 3) -> Job:
    return Job(
        id=7,
        task="tests:noop",
        queue="default",
        args=[],
        kwargs={},
        state=S.RUNNING,
        priority=5,
        attempt=attempt,
        max_attempts=max_attempts,
        scheduled_at=NOW,
        inserted_at=NOW,
        attempted_at=NOW,
        attempted_by=WORKER,
        lease_until=at(60),
    )


ALL_OUTCOMES: list[Outcome] = [
    Completed("r"),
    Failed("ValueError", "boom"),
    Snoozed(10),
    Cancelled("stop"),
    Discarded("bad"),
    Orphaned(),
]

# -- next_update -------------------------------------------------------------------------------


def test_completed_stores_the_result() -> None:
    update = next_update(running(), Completed({"ok": 1}), at(5), POLICY)
    assert update == JobUpdate(job_id=7, attempt=1, state=S.COMPLETED, at=at(5), result={"ok": 1})


def test_failed_with_attempts_left_is_retryable_after_the_backoff() -> None:
    update = next_update(running(attempt=2), Failed("KeyError", "k", "tb"), at(5), POLICY)
    assert update.state is S.RETRYABLE
    assert update.scheduled_at == at(35)
    assert update.error == ErrorRecord(
        attempt=2, at=at(5), kind="KeyError", message="k", traceback="tb"
    )
    assert (update.job_id, update.attempt, update.at) == (7, 2, at(5))
    assert update.refund_attempt is False
    assert update.lease_expired_before is None


def test_failed_backoff_grows_with_the_attempt() -> None:
    policy = ExponentialBackoff(base=1, jitter=0)
    delays = [
        next_update(running(attempt=n, max_attempts=10), Failed("E", "x"), NOW, policy).scheduled_at
        for n in (1, 2, 3)
    ]
    assert delays == [at(1), at(2), at(4)]


def test_failed_on_the_last_attempt_fails_the_job() -> None:
    update = next_update(running(attempt=3, max_attempts=3), Failed("E", "x"), at(5), POLICY)
    assert update.state is S.FAILED
    assert update.scheduled_at is None
    assert update.error is not None
    assert update.error.attempt == 3


def test_failed_beyond_max_attempts_still_fails() -> None:
    update = next_update(running(attempt=5, max_attempts=3), Failed("E", "x"), NOW, POLICY)
    assert update.state is S.FAILED


def test_snoozed_schedules_and_refunds_the_attempt() -> None:
    update = next_update(running(attempt=3, max_attempts=3), Snoozed(90), at(5), POLICY)
    assert update.state is S.SCHEDULED
    assert update.scheduled_at == at(95)
    assert update.refund_attempt is True
    assert update.error is None


def test_cancelled_records_the_reason() -> None:
    update = next_update(running(), Cancelled("operator"), at(5), POLICY)
    assert update.state is S.CANCELLED
    assert update.error is not None
    assert (update.error.kind, update.error.message, update.error.at) == (
        "Cancelled",
        "operator",
        at(5),
    )


def test_discarded_records_the_reason() -> None:
    update = next_update(running(attempt=1, max_attempts=10), Discarded("bad"), at(5), POLICY)
    assert update.state is S.DISCARDED
    assert update.error is not None
    assert (update.error.kind, update.error.message) == ("Discarded", "bad")


def test_orphaned_counts_the_attempt_and_is_fenced_on_the_expired_lease() -> None:
    update = next_update(running(attempt=1), Orphaned(), at(100), POLICY)
    assert update.state is S.RETRYABLE
    assert update.scheduled_at == at(130)
    assert update.lease_expired_before == at(100)
    assert update.error is not None
    assert update.error.kind == "Orphaned"
    assert update.refund_attempt is False


def test_orphaned_on_the_last_attempt_fails_the_job() -> None:
    update = next_update(running(attempt=3, max_attempts=3), Orphaned(), at(100), POLICY)
    assert update.state is S.FAILED
    assert update.lease_expired_before == at(100)


def test_orphaned_after_a_cancel_request_is_cancelled_not_retried() -> None:
    job = replace(running(attempt=1), cancel_requested=True)
    update = next_update(job, Orphaned(), at(100), POLICY)
    assert update.state is S.CANCELLED
    assert update.lease_expired_before == at(100)
    assert update.error is not None
    assert update.error.kind == "Cancelled"


class _Unchecked:
    """A retry policy that answers (or raises) whatever it was given, unchecked."""

    def __init__(self, delay: Any) -> None:
        self._delay = delay

    def delay(self, attempt: int) -> float:
        if isinstance(self._delay, Exception):
            raise self._delay
        return self._delay  # type: ignore[no-any-return]


@pytest.mark.parametrize("seconds", [1e12, math.inf])
def test_a_delay_beyond_the_maximum_is_capped(seconds: float) -> None:
    snoozed = next_update(running(), Snoozed(seconds), NOW, POLICY)
    retried = next_update(running(), Failed("E", "x"), NOW, _Unchecked(seconds))
    cap = NOW + timedelta(seconds=MAX_DELAY_SECONDS)
    assert snoozed.scheduled_at == retried.scheduled_at == cap


def test_a_snooze_of_nan_seconds_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="NaN"):
        Snoozed(math.nan)


@pytest.mark.parametrize("delay", [ZeroDivisionError("oops"), math.nan, "soon"])
def test_a_retry_policy_that_raises_or_answers_nonsense_fails_the_job(delay: Any) -> None:
    failed = Failed("KeyError", "k", "tb")
    update = next_update(running(attempt=1), failed, at(5), _Unchecked(delay))
    assert update.state is S.FAILED
    assert update.scheduled_at is None
    assert update.error is not None
    assert update.error.kind == "KeyError"
    assert update.error.message.startswith("k [not retried: the retry policy raised ")
    assert update.error.traceback == "tb"


def test_error_text_is_made_storable_as_utf8() -> None:
    failed = Failed("Bad\udcffKind", "no such file: '\udcff.csv'", "tb \udcff")
    update = next_update(running(attempt=3, max_attempts=3), failed, NOW, POLICY)
    assert update.error is not None
    assert update.error.kind == "Bad\\udcffKind"
    assert update.error.message == "no such file: '\\udcff.csv'"
    assert update.error.traceback == "tb \\udcff"
    assert storable_text("plain é ✓") == "plain é ✓"


@pytest.mark.parametrize("state", [s for s in JobState if s is not S.RUNNING])
def test_only_a_running_job_has_an_outcome(state: JobState) -> None:
    with pytest.raises(ValueError, match="only a running job"):
        next_update(replace(running(), state=state), Completed(), NOW, POLICY)


@pytest.mark.parametrize("attempt", [1, 2, 3])
@pytest.mark.parametrize("outcome", ALL_OUTCOMES, ids=lambda o: type(o).__name__)
def test_every_update_is_a_legal_move_fenced_on_the_attempt(outcome: Outcome, attempt: int) -> None:
    update = next_update(running(attempt=attempt, max_attempts=3), outcome, NOW, POLICY)
    assert (S.RUNNING, update.state) in LEGAL_MOVES
    assert update.attempt == attempt
    assert update.job_id == 7


def test_outcomes_cover_every_move_out_of_running() -> None:
    reached = {
        next_update(running(attempt=a, max_attempts=2), o, NOW, POLICY).state
        for o in ALL_OUTCOMES
        for a in (1, 2)
    }
    assert {(S.RUNNING, s) for s in reached} == {m for m in LEGAL_MOVES if m[0] is S.RUNNING}


def test_is_legal_matches_the_table() -> None:
    for source in JobState:
        for target in JobState:
            assert is_legal(source, target) == ((source, target) in LEGAL_MOVES)
    assert not is_legal(S.COMPLETED, S.PENDING)
    assert not is_legal(S.PENDING, S.COMPLETED)


def test_finished_states_have_no_way_out_but_operator_retry() -> None:
    # A retried workflow step waits (blocked) while a dependency holds it back.
    for source in (S.COMPLETED, S.FAILED, S.DISCARDED, S.CANCELLED):
        targets = {t for s, t in LEGAL_MOVES if s is source}
        assert targets == (set() if source is S.COMPLETED else {S.PENDING, S.BLOCKED})


def test_a_blocked_step_leaves_only_by_release_or_cancel() -> None:
    targets = {t for s, t in LEGAL_MOVES if s is S.BLOCKED}
    assert targets == {S.PENDING, S.SCHEDULED, S.CANCELLED}


# -- walking the table through the memory backend --------------------------------------------

Step = Callable[[MemoryBackend, Job], Awaitable[None]]


def new_job(**overrides: Any) -> NewJob:
    fields: dict[str, Any] = {
        "task": "tests:noop",
        "queue": "default",
        "args": [],
        "kwargs": {},
        "priority": 5,
        "max_attempts": 3,
        "scheduled_at": NOW,
        "state": S.PENDING,
    }
    return NewJob(**{**fields, **overrides})


async def insert(store: MemoryBackend, **overrides: Any) -> Job:
    [inserted] = await store.insert([new_job(**overrides)], now=NOW)
    return inserted.job


async def fetch(store: MemoryBackend, job: Job) -> None:
    claimed = await store.fetch(
        queue=job.queue, limit=1, worker_id=WORKER, now=NOW, lease_until=at(60)
    )
    assert [j.id for j in claimed] == [job.id]


async def promote(store: MemoryBackend, job: Job) -> None:
    await store.promote_due(now=at(10_000))


async def cancel(store: MemoryBackend, job: Job) -> None:
    await store.cancel(job.id, reason="operator", now=at(1))


async def retry(store: MemoryBackend, job: Job) -> None:
    await store.retry(job.id, now=at(1))


def finish(outcome: Outcome) -> Step:
    async def step(store: MemoryBackend, job: Job) -> None:
        current = await store.get(job.id)
        update = next_update(current, outcome, at(1), POLICY)
        assert await store.finish([update], worker_id=WORKER) == [True]

    return step


async def in_flow(
    store: MemoryBackend, *, first: dict[str, Any], then: dict[str, Any], continues: bool = False
) -> tuple[Job, Job]:
    """Store a workflow of two steps, ``then`` waiting for ``first``; return both jobs."""
    steps = []
    for i, (name, fields) in enumerate((("first", first), ("then", then))):
        meta = step_meta({}, workflow=0, name=name, passes="none", dependents=i == 0)
        state = S.BLOCKED if i else S.PENDING
        steps.append(
            NewStep(
                name=name,
                job=new_job(queue=name, meta=meta, **{"state": state, **fields}),
                depends_on=(0,) if i else (),
                on_failure="continue" if continues else "cancel",
            )
        )
    record = await store.insert_workflow(NewWorkflow(name=None, steps=tuple(steps)), now=NOW)
    return record.steps[0].job, record.steps[1].job


async def release(store: MemoryBackend, job: Job) -> None:
    """Complete the one dependency of blocked ``job``."""
    await finish(Completed())(store, await run_first(store, job))


async def run_first(store: MemoryBackend, job: Job) -> Job:
    first = await store.get(job.depends_on[0])
    await fetch(store, first)
    return await store.get(first.id)


async def retry_after_dependency(store: MemoryBackend, job: Job) -> None:
    """Retry ``job``'s failed dependency, then ``job``: it waits for the dependency again."""
    await retry(store, await store.get(job.depends_on[0]))
    await retry(store, job)


async def reach_in_flow(store: MemoryBackend, state: JobState, **overrides: Any) -> Job:
    """Drive the second step of a two-step workflow to ``state`` (its first one failed)."""
    if state is S.BLOCKED:
        return (await in_flow(store, first={}, then=overrides))[1]
    continues = state is not S.CANCELLED
    first, then = await in_flow(
        store, first={"max_attempts": 1}, then={"max_attempts": 1}, continues=continues
    )
    await fetch(store, first)
    await finish(Failed("E", "x"))(store, first)  # cancels ``then``, or releases it
    if state is not S.CANCELLED:
        await fetch(store, then)
        outcome = Discarded("x") if state is S.DISCARDED else Failed("E", "x")
        await finish(outcome)(store, then)
    job = await store.get(then.id)
    assert job.state is state
    return job


async def reach(store: MemoryBackend, state: JobState, **overrides: Any) -> Job:
    """Drive a fresh job to ``state`` by legal public operations only."""
    if state is S.BLOCKED or overrides.pop("in_flow", False):
        return await reach_in_flow(store, state, **overrides)
    routes: dict[JobState, list[Step]] = {
        S.SCHEDULED: [],
        S.PENDING: [],
        S.RUNNING: [fetch],
        S.COMPLETED: [fetch, finish(Completed())],
        S.RETRYABLE: [fetch, finish(Failed("E", "x"))],
        S.FAILED: [fetch, finish(Failed("E", "x"))],
        S.DISCARDED: [fetch, finish(Discarded("x"))],
        S.CANCELLED: [cancel],
    }
    if state is S.SCHEDULED:
        overrides = {"state": S.SCHEDULED, "scheduled_at": at(3600), **overrides}
    if state is S.FAILED:
        overrides = {"max_attempts": 1, **overrides}
    job = await insert(store, **overrides)
    for step in routes[state]:
        await step(store, job)
    job = await store.get(job.id)
    assert job.state is state
    return job


# Each legal edge: extra insert options for its source job, and the public step that takes it.
EDGES: dict[tuple[JobState, JobState], tuple[dict[str, Any], Step]] = {
    (S.SCHEDULED, S.PENDING): ({}, promote),
    (S.RETRYABLE, S.PENDING): ({}, promote),
    (S.PENDING, S.RUNNING): ({}, fetch),
    (S.RUNNING, S.COMPLETED): ({}, finish(Completed("ok"))),
    (S.RUNNING, S.RETRYABLE): ({}, finish(Failed("E", "x"))),
    (S.RUNNING, S.FAILED): ({"max_attempts": 1}, finish(Failed("E", "x"))),
    (S.RUNNING, S.DISCARDED): ({}, finish(Discarded("x"))),
    (S.RUNNING, S.SCHEDULED): ({}, finish(Snoozed(60))),
    (S.RUNNING, S.CANCELLED): ({}, finish(Cancelled("x"))),
    (S.SCHEDULED, S.CANCELLED): ({}, cancel),
    (S.PENDING, S.CANCELLED): ({}, cancel),
    (S.RETRYABLE, S.CANCELLED): ({}, cancel),
    (S.FAILED, S.PENDING): ({}, retry),
    (S.DISCARDED, S.PENDING): ({}, retry),
    (S.CANCELLED, S.PENDING): ({}, retry),
    (S.BLOCKED, S.PENDING): ({}, release),
    (S.BLOCKED, S.SCHEDULED): ({"scheduled_at": at(3600)}, release),
    (S.BLOCKED, S.CANCELLED): ({}, cancel),
    (S.FAILED, S.BLOCKED): ({"in_flow": True}, retry_after_dependency),
    (S.DISCARDED, S.BLOCKED): ({"in_flow": True}, retry_after_dependency),
    (S.CANCELLED, S.BLOCKED): ({"in_flow": True}, retry),
}


def test_every_legal_move_has_a_route() -> None:
    assert set(EDGES) == LEGAL_MOVES


@pytest.mark.parametrize("edge", sorted(EDGES), ids=lambda e: f"{e[0]}->{e[1]}")
async def test_walk_legal_move_through_the_backend(edge: tuple[JobState, JobState]) -> None:
    source, target = edge
    overrides, step = EDGES[edge]
    store = MemoryBackend()
    job = await reach(store, source, **overrides)
    await step(store, job)
    assert (await store.get(job.id)).state is target


async def test_orphan_rescue_walks_running_to_retryable() -> None:
    store = MemoryBackend()
    job = await reach(store, S.RUNNING)
    [expired] = await store.expired_leases(now=at(61), limit=10)
    update = next_update(expired, Orphaned(), at(61), POLICY)
    assert await store.finish([update], worker_id=expired.attempted_by or "") == [True]
    assert (S.RUNNING, (await store.get(job.id)).state) in LEGAL_MOVES


async def fetch_any(store: MemoryBackend, job: Job) -> None:
    await store.fetch(queue=job.queue, limit=10, worker_id=WORKER, now=at(1), lease_until=at(60))


# Every public operation that may change a job's state, applied to a job in any state.
ANY_OP: dict[str, Step] = {
    "promote": promote,
    "cancel": cancel,
    "retry": retry,
    "fetch": fetch_any,
}
ANY_OUTCOME = {type(o).__name__: o for o in ALL_OUTCOMES}


@pytest.mark.parametrize("source", list(JobState))
@pytest.mark.parametrize("op", [*ANY_OP, *ANY_OUTCOME])
async def test_no_operation_makes_an_illegal_move(source: JobState, op: str) -> None:
    store = MemoryBackend()
    job = await reach(store, source)
    if op in ANY_OP:
        await ANY_OP[op](store, job)
    else:
        # A (possibly confused) worker writes an outcome as if the job were still its own.
        believed = replace(job, state=S.RUNNING, attempt=max(job.attempt, 1))
        update = next_update(believed, ANY_OUTCOME[op], at(10_000), POLICY)
        [ok] = await store.finish([update], worker_id=WORKER)
        assert ok == (source is S.RUNNING)
    after = (await store.get(job.id)).state
    assert after is source or (source, after) in LEGAL_MOVES
