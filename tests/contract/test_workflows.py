"""Contract: workflows. Steps wait ``blocked`` and are released by their last dependency's end.

The rules are ``taskward.graph``'s: the transaction that ends a step's last dependency
releases it (once, whichever instance writes it); a dependency that ends other than completed
cancels a step with ``on_failure="cancel"`` and everything waiting on it; ``continue`` steps
and finalizers run anyway; an operator's retry of a failed step makes what its end cancelled
wait again; ``release_blocked`` is the safety net.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from taskward.backends import Backend, Capability
from taskward.backends.base import RELEASE_LOOKUPS
from taskward.errors import InvalidOptions, WorkflowNotFound
from taskward.graph import (
    WORKFLOW_META_KEY,
    NewStep,
    NewWorkflow,
    OnFailure,
    WorkflowRecord,
    WorkflowState,
    step_meta,
)
from taskward.jobs import Job, JobFilter, JobState
from taskward.states import Cancelled, Completed, Failed, Orphaned, next_update

from .helpers import LEASE_SECONDS, NOW, POLICY, WORKER, at, finish_with, list_all, new_job

S = JobState


@pytest.fixture
async def store(backend: Backend) -> Backend:
    """The backend under contract, if it keeps workflows."""
    if Capability.WORKFLOWS not in backend.capabilities:
        pytest.skip(f"{backend.url}: no Capability.WORKFLOWS")
    return backend


def step(
    name: str,
    depends_on: Sequence[int] = (),
    *,
    on_failure: OnFailure = "cancel",
    finalizer: bool = False,
    dependents: bool = True,
    queue: str = "wf",
    **job: Any,
) -> NewStep:
    """A step of task tests:noop in queue ``queue``; blocked when it has dependencies."""
    meta = step_meta({}, workflow=0, name=name, passes="none", dependents=dependents)
    state = S.BLOCKED if depends_on else S.PENDING
    fields: dict[str, Any] = {"queue": queue, "state": state, "meta": meta, "args": [name], **job}
    return NewStep(
        name=name,
        job=new_job(**fields),
        depends_on=tuple(depends_on),
        on_failure=on_failure,
        finalizer=finalizer,
    )


async def store_flow(backend: Backend, *steps: NewStep, name: str | None = "wf") -> WorkflowRecord:
    return await backend.insert_workflow(NewWorkflow(name=name, steps=steps), now=NOW)


async def claim_all(backend: Backend, queue: str = "wf", worker: str = WORKER) -> list[Job]:
    return await backend.fetch(
        queue=queue,
        limit=1000,
        worker_id=worker,
        now=NOW,
        lease_until=NOW + timedelta(seconds=LEASE_SECONDS),
    )


async def run_step(backend: Backend, record: WorkflowRecord, name: str, outcome: Any) -> None:
    """Claim the pending step ``name`` (the only pending job of its queue) and write ``outcome``."""
    job = record.step(name).job
    claimed = await backend.fetch(
        queue=job.queue,
        limit=1,
        worker_id=WORKER,
        now=NOW,
        lease_until=NOW + timedelta(seconds=LEASE_SECONDS),
    )
    assert [j.id for j in claimed] == [job.id], f"{name} is not the one pending job"
    assert await finish_with(backend, claimed[0], outcome)


async def states(backend: Backend, record: WorkflowRecord) -> dict[str, JobState]:
    again = await backend.get_workflow(record.id)
    return {s.name: s.job.state for s in again.steps}


async def test_a_workflow_is_stored_with_its_steps_blocked_on_their_dependencies(
    store: Backend,
) -> None:
    record = await store_flow(store, step("a"), step("b"), step("c", [0, 1], dependents=False))
    assert record.name == "wf"
    assert record.state is WorkflowState.RUNNING
    assert [s.name for s in record.steps] == ["a", "b", "c"]
    a, b, c = (s.job for s in record.steps)
    assert (a.state, b.state, c.state) == (S.PENDING, S.PENDING, S.BLOCKED)
    assert c.depends_on == (a.id, b.id)
    assert record.step("c").depends_on == ("a", "b")
    for s in record.steps:
        assert s.job.meta[WORKFLOW_META_KEY]["id"] == record.id
        assert s.job.meta[WORKFLOW_META_KEY]["step"] == s.name
    again = await store.get_workflow(record.id)
    assert again == record
    listed = await list_all(store, workflow=record.id)
    assert [j.id for j in listed.items] == [a.id, b.id, c.id]
    other = await store_flow(store, step("x"))
    assert other.id != record.id
    assert [j.id for j in (await list_all(store, workflow=other.id)).items] == [
        other.steps[0].job.id
    ]
    counts = (await store.stats()).counts["wf"]
    assert counts[S.BLOCKED] == 1
    assert counts[S.PENDING] == 3


async def test_a_blocked_step_is_never_claimed(store: Backend) -> None:
    record = await store_flow(store, step("a", queue="first"), step("b", [0], queue="then"))
    assert await claim_all(store, "then") == []
    await store.promote_due(now=at(10_000))
    assert await claim_all(store, "then") == []
    assert (await store.get(record.step("b").job.id)).state is S.BLOCKED


async def test_the_last_dependency_releases_a_step_and_only_the_last(store: Backend) -> None:
    record = await store_flow(
        store, step("a", queue="a"), step("b", queue="b"), step("c", [0, 1], queue="c")
    )
    await run_step(store, record, "a", Completed(1))
    assert (await states(store, record))["c"] is S.BLOCKED
    await run_step(store, record, "b", Completed(2))
    assert (await states(store, record))["c"] is S.PENDING
    assert [j.id for j in await claim_all(store, "c")] == [record.step("c").job.id]


async def test_a_chain_runs_in_order(store: Backend) -> None:
    steps = [step("s0")] + [step(f"s{i}", [i - 1]) for i in range(1, 20)]
    record = await store_flow(store, *steps)
    for i in range(20):
        claimed = await claim_all(store)
        assert [j.args for j in claimed] == [[f"s{i}"]]
        assert await finish_with(store, claimed[0], Completed(i))
    assert (await store.get_workflow(record.id)).state is WorkflowState.COMPLETED


async def test_a_fan_in_is_released_exactly_once_under_concurrent_ends(
    store: Backend, open_store: Any
) -> None:
    members = [step(f"m{i}") for i in range(40)]
    record = await store_flow(store, *members, step("callback", range(40), queue="cb"))
    others = [store]
    if Capability.MULTI_PROCESS in store.capabilities:
        others += [await open_store(), await open_store()]
    claimed = await claim_all(store)
    assert len(claimed) == 40

    async def end(i: int, job: Job) -> bool:
        update = next_update(job, Completed(i), NOW, POLICY)
        [ok] = await others[i % len(others)].finish([update], worker_id=WORKER)
        return ok

    assert all(await asyncio.gather(*(end(i, j) for i, j in enumerate(claimed))))
    assert (await states(store, record))["callback"] is S.PENDING
    assert len(await claim_all(store, "cb")) == 1
    assert await claim_all(store, "cb") == []


async def test_a_failed_dependency_cancels_its_dependents_down_the_graph(store: Backend) -> None:
    record = await store_flow(
        store,
        step("a", max_attempts=1),
        step("b", [0]),
        step("c", [1], dependents=False),
        step("d", [0], on_failure="continue", queue="d", dependents=False),
    )
    await run_step(store, record, "a", Failed("ValueError", "boom"))
    now = await store.get_workflow(record.id)
    assert {s.name: s.job.state for s in now.steps} == {
        "a": S.FAILED,
        "b": S.CANCELLED,
        "c": S.CANCELLED,
        "d": S.PENDING,
    }
    b = now.step("b").job
    assert b.cancelled_at is not None
    assert b.last_error is not None
    assert b.last_error.kind == "DependencyFailed"
    assert "'a'" in b.last_error.message
    assert "failed" in b.last_error.message
    assert "'b'" in (now.step("c").job.last_error or b.last_error).message


async def test_a_retry_that_spends_no_attempt_ends_nothing(store: Backend) -> None:
    record = await store_flow(store, step("a"), step("b", [0]))
    await run_step(store, record, "a", Failed("ValueError", "try again"))
    assert await states(store, record) == {"a": S.RETRYABLE, "b": S.BLOCKED}


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        (Completed("ok"), S.COMPLETED),
        (Failed("ValueError", "boom"), S.FAILED),
        (Cancelled("stop"), S.CANCELLED),
    ],
)
async def test_a_finalizer_runs_once_everything_else_ended_whatever_the_outcome(
    store: Backend, outcome: Any, state: JobState
) -> None:
    record = await store_flow(
        store,
        step("a", max_attempts=1),
        step("b", [0]),
        step("done", [0, 1], on_failure="continue", finalizer=True, queue="fin"),
    )
    await run_step(store, record, "a", outcome)
    if state is S.COMPLETED:
        assert (await states(store, record))["done"] is S.BLOCKED
        await run_step(store, record, "b", Completed("ok"))
    now = await store.get_workflow(record.id)
    assert now.step("a").job.state is state
    assert now.step("done").finalizer
    assert now.step("done").job.state is S.PENDING
    assert len(await claim_all(store, "fin")) == 1


async def test_cancelling_a_waiting_step_is_an_end_its_dependents_see(store: Backend) -> None:
    record = await store_flow(
        store, step("a"), step("b", [0]), step("c", [0], on_failure="continue", queue="c")
    )
    cancelled = await store.cancel(record.step("a").job.id, reason="no", now=NOW)
    assert cancelled.state is S.CANCELLED
    assert await states(store, record) == {"a": S.CANCELLED, "b": S.CANCELLED, "c": S.PENDING}
    blocked = await store_flow(store, step("x", queue="x"), step("y", [0], queue="y"))
    await store.cancel(blocked.step("y").job.id, reason="not needed", now=NOW)
    assert await states(store, blocked) == {"x": S.PENDING, "y": S.CANCELLED}


async def test_cancelling_a_workflow_spares_its_finalizer(store: Backend) -> None:
    record = await store_flow(
        store,
        step("a", queue="a"),
        step("b", queue="b"),
        step("c", [0, 1]),
        step("done", [0, 1, 2], on_failure="continue", finalizer=True, queue="fin"),
    )
    [running] = await claim_all(store, "a")
    after = await store.cancel_workflow(record.id, reason="operator", now=NOW)
    assert {s.name: s.job.state for s in after.steps} == {
        "a": S.RUNNING,
        "b": S.CANCELLED,
        "c": S.CANCELLED,
        "done": S.BLOCKED,
    }
    assert after.step("a").job.cancel_requested
    assert await finish_with(store, running, Cancelled("cancelled by an operator while running"))
    now = await store.get_workflow(record.id)
    assert now.step("done").job.state is S.PENDING
    await run_step(store, now, "done", Completed(None))
    assert (await store.get_workflow(record.id)).state is WorkflowState.CANCELLED


async def test_retrying_a_failed_step_resumes_the_workflow(store: Backend) -> None:
    record = await store_flow(
        store, step("a", max_attempts=1), step("b", [0]), step("c", [1], dependents=False)
    )
    await run_step(store, record, "a", Failed("ValueError", "boom"))
    assert (await store.get_workflow(record.id)).state is WorkflowState.FAILED
    retried = await store.retry(record.step("a").job.id, now=NOW)
    assert retried.state is S.PENDING
    assert await states(store, record) == {"a": S.PENDING, "b": S.BLOCKED, "c": S.BLOCKED}
    await run_step(store, record, "a", Completed("ok"))
    assert (await states(store, record))["b"] is S.PENDING
    await run_step(store, record, "b", Completed("ok"))
    await run_step(store, record, "c", Completed("ok"))
    assert (await store.get_workflow(record.id)).state is WorkflowState.COMPLETED


async def test_a_step_retried_before_its_dependency_waits_for_it(store: Backend) -> None:
    record = await store_flow(store, step("a", max_attempts=1), step("b", [0], queue="b"))
    await run_step(store, record, "a", Failed("ValueError", "boom"))
    b = await store.retry(record.step("b").job.id, now=NOW)
    assert b.state is S.BLOCKED
    assert await store.release_blocked(now=NOW, limit=100) == (0, 0)
    await store.retry(record.step("a").job.id, now=NOW)
    await run_step(store, record, "a", Completed("ok"))
    assert (await states(store, record))["b"] is S.PENDING


async def test_deleting_a_step_that_has_not_ended_cancels_what_waits_for_it(
    store: Backend,
) -> None:
    record = await store_flow(
        store, step("a"), step("b", [0]), step("c", [0], on_failure="continue", queue="c")
    )
    assert await store.delete(record.step("a").job.id)
    now = await store.get_workflow(record.id)
    assert {s.name: s.job.state for s in now.steps} == {"b": S.CANCELLED, "c": S.PENDING}
    assert "deleted" in (now.step("b").job.last_error or pytest.fail("no reason")).message


async def test_the_sweep_releases_a_step_whose_dependency_is_gone(store: Backend) -> None:
    record = await store_flow(store, step("a", max_attempts=1), step("b", [0], queue="b"))
    await run_step(store, record, "a", Failed("ValueError", "boom"))
    await store.retry(record.step("b").job.id, now=NOW)  # waits for a, which is failed
    assert await store.delete(record.step("a").job.id)  # ended already: nothing propagates
    assert (await store.get(record.step("b").job.id)).state is S.BLOCKED
    assert await store.release_blocked(now=NOW, limit=100) == (1, 0)
    assert (await store.get(record.step("b").job.id)).state is S.PENDING
    assert await store.release_blocked(now=NOW, limit=100) == (0, 0)


async def test_the_sweep_resumes_from_its_cursor_and_reaches_every_blocked_step(
    store: Backend,
) -> None:
    """With ``limit=1``, successive calls walk every blocked step by id, then start over: a
    stuck step behind many that wait legitimately is released all the same."""
    waiting = await store_flow(
        store, step("a", queue="a"), *(step(f"w{i}", [0], queue="w") for i in range(4))
    )
    stuck = await store_flow(store, step("x", max_attempts=1), step("y", [0], queue="y"))
    await run_step(store, stuck, "x", Failed("ValueError", "boom"))
    await store.retry(stuck.step("y").job.id, now=NOW)  # waits for x, which is failed
    assert await store.delete(stuck.step("x").job.id)  # ended already: nothing propagates
    y = stuck.step("y").job.id
    w = [s.job.id for s in waiting.steps[1:]]
    calls = []
    cursor = 0
    for _ in range(5):
        released, cursor = await store.release_blocked(now=NOW, limit=1, after=cursor)
        calls.append((released, cursor))
    assert calls == [(0, w[0]), (0, w[1]), (0, w[2]), (0, w[3]), (1, 0)]
    assert (await store.get(y)).state is S.PENDING
    assert (await states(store, waiting))["w3"] is S.BLOCKED
    assert await store.release_blocked(now=NOW, limit=2) == (0, w[1])
    assert await store.release_blocked(now=NOW, limit=2, after=w[1]) == (0, 0)
    assert await store.release_blocked(now=NOW, limit=100, after=w[3]) == (0, 0)


async def test_the_sweep_stops_after_its_budget_of_lookups(store: Backend) -> None:
    """A step with many dependencies is recounted alone; the next call resumes after it."""
    many = RELEASE_LOOKUPS
    record = await store_flow(
        store,
        *(step(f"m{i}", queue="m") for i in range(many)),
        step("fan", range(many), queue="fan"),
        step("one", [0], queue="one"),
    )
    fan, one = record.step("fan").job.id, record.step("one").job.id
    assert await store.release_blocked(now=NOW, limit=10) == (0, fan)
    assert await store.release_blocked(now=NOW, limit=10, after=fan) == (0, 0)
    assert (await store.get(one)).state is S.BLOCKED


async def test_a_released_step_due_later_is_scheduled(store: Backend) -> None:
    record = await store_flow(store, step("a"), step("b", [0], queue="b", scheduled_at=at(600)))
    await run_step(store, record, "a", Completed("ok"))
    assert (await states(store, record))["b"] is S.SCHEDULED
    assert await store.promote_due(now=at(600)) == 1
    assert (await states(store, record))["b"] is S.PENDING


async def test_a_rescued_step_that_fails_ends_for_its_dependents(store: Backend) -> None:
    record = await store_flow(store, step("a", max_attempts=1), step("b", [0]))
    [job] = await claim_all(store)
    expired = await store.expired_leases(now=at(LEASE_SECONDS + 1), limit=10)
    assert [j.id for j in expired] == [job.id]
    update = next_update(expired[0], Orphaned(), at(LEASE_SECONDS + 1), POLICY)
    assert update.state is S.FAILED
    assert update.dependents
    [ok] = await store.finish([update], worker_id=WORKER)
    assert ok
    assert await states(store, record) == {"a": S.FAILED, "b": S.CANCELLED}


async def test_a_fenced_out_end_releases_nothing(store: Backend) -> None:
    record = await store_flow(store, step("a"), step("b", [0]))
    [job] = await claim_all(store)
    assert not await finish_with(store, job, Completed("stale"), worker="somebody-else")
    assert await states(store, record) == {"a": S.RUNNING, "b": S.BLOCKED}


@pytest.mark.parametrize(
    "steps",
    [
        (),
        (step("a"), step("a")),
        (step("a", [1]), step("b")),
        (step("a", [0]),),
        (step("a"), step("b", [0], state=S.PENDING)),
        (step("a"), step("b", [0, 0])),
    ],
    ids=[
        "empty",
        "duplicate-name",
        "forward-edge",
        "self-edge",
        "released-too-early",
        "duplicate-edge",
    ],
)
async def test_a_bad_workflow_is_refused_and_nothing_is_stored(
    store: Backend, steps: tuple[NewStep, ...]
) -> None:
    with pytest.raises(InvalidOptions):
        await store.insert_workflow(NewWorkflow(name=None, steps=steps), now=NOW)
    assert (await store.list_jobs(JobFilter())).total_entries == 0


async def test_unknown_workflows_are_not_found(store: Backend) -> None:
    with pytest.raises(WorkflowNotFound):
        await store.get_workflow(987654)
    with pytest.raises(WorkflowNotFound):
        await store.cancel_workflow(987654, reason="x", now=NOW)
