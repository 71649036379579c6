"""Contract: a retry with an operator's edit (``Backend.retry(..., edit=)``, taskward.edits).

The new arguments, queue and priority and the history record are written with the retry in
one step; a job in another state keeps every field; a queue change moves the job, so only the
new queue's claim gets it; a partition key follows the new arguments and queue; a workflow step
is replayed with new arguments and recounted as a plain retry is.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from taskward.backends import Backend, Capability
from taskward.edits import MAX_REPLAYS_KEPT, REPLAYS_META_KEY
from taskward.errors import JobNotFound
from taskward.graph import NewStep, NewWorkflow, step_meta
from taskward.jobs import JobEdit, JobState
from taskward.limits import PartitionBy, QueueLimits
from taskward.states import Completed, Failed
from taskward.tasks import SENSITIVE_META_KEY

from .helpers import NOW, at, fetch, fetch_one, finish_with, new_job, reach

S = JobState


def edit(
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    note: str = "fixed",
    **fields: Any,
) -> JobEdit:
    """An edit as the manager builds it (arguments encoded once)."""
    return JobEdit(
        replay={"id": note, "at": at(500).isoformat(), "by": "ops", "note": note},
        args=args,
        kwargs=kwargs,
        args_json=None if args is None else json.dumps(args, separators=(",", ":")),
        kwargs_json=None if kwargs is None else json.dumps(kwargs, separators=(",", ":")),
        **fields,
    )


@pytest.mark.parametrize("state", [S.FAILED, S.DISCARDED, S.CANCELLED])
async def test_an_edit_is_written_with_the_retry(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state, args=[1, "old"], kwargs={"to": "a@x"}, priority=5)
    change = edit(args=[2, "new"], kwargs={"to": "b@x"}, priority=1, note="typo in address")
    retried = await backend.retry(job.id, now=at(500), edit=change)
    assert retried.state is S.PENDING
    assert (retried.args, retried.kwargs, retried.priority) == ([2, "new"], {"to": "b@x"}, 1)
    assert retried.attempt == job.attempt
    assert retried.errors == job.errors
    assert retried.unique_key == job.unique_key
    [record] = retried.meta[REPLAYS_META_KEY]
    assert record == {
        "id": "typo in address",
        "at": at(500).isoformat(),
        "by": "ops",
        "note": "typo in address",
        "state": state.value,
        "attempt": job.attempt,
        "args": [1, "old"],
        "kwargs": {"to": "a@x"},
        "priority": 5,
    }
    assert await backend.get(job.id) == retried
    running = await fetch_one(backend, retried, now=at(501))
    assert (running.args, running.kwargs) == ([2, "new"], {"to": "b@x"})


async def test_a_note_alone_keeps_the_arguments(backend: Backend) -> None:
    job = await reach(backend, S.FAILED, args=[1], kwargs={"k": [1.5, None]}, meta={"m": 1})
    retried = await backend.retry(job.id, now=at(500), edit=edit(note="just again"))
    assert (retried.args, retried.kwargs, retried.queue) == ([1], {"k": [1.5, None]}, "default")
    assert retried.meta["m"] == 1
    [record] = retried.meta[REPLAYS_META_KEY]
    assert record["note"] == "just again"
    assert "args" not in record
    assert "queue" not in record


async def test_records_pile_up_oldest_first_and_stay_bounded(backend: Backend) -> None:
    job = await reach(backend, S.CANCELLED)
    for n in range(MAX_REPLAYS_KEPT + 2):
        retried = await backend.retry(job.id, now=at(500), edit=edit(note=f"n{n}"))
        assert retried.state is S.PENDING
        await backend.cancel(job.id, reason="again", now=at(500))
    records = (await backend.get(job.id)).meta[REPLAYS_META_KEY]
    assert [r["note"] for r in records] == [f"n{n}" for n in range(2, MAX_REPLAYS_KEPT + 2)]


@pytest.mark.parametrize("state", [S.SCHEDULED, S.PENDING, S.RUNNING, S.RETRYABLE, S.COMPLETED])
async def test_an_edit_of_another_state_changes_nothing(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state, args=[1])
    change = edit(args=[2], queue="elsewhere", priority=0)
    assert await backend.retry(job.id, now=at(500), edit=change) == job
    assert await backend.get(job.id) == job


@pytest.mark.any_store
async def test_an_edit_of_an_unknown_job_raises(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.retry(424242, now=NOW, edit=edit(args=[1]))


@pytest.mark.parametrize("state", [S.FAILED, S.CANCELLED])
async def test_a_queue_change_is_claimable_from_the_new_queue_only(
    backend: Backend, state: JobState
) -> None:
    job = await reach(backend, state, queue="old")
    retried = await backend.retry(job.id, now=NOW, edit=edit(queue="new"))
    assert retried.queue == "new"
    assert retried.meta[REPLAYS_META_KEY][-1]["queue"] == "old"
    assert await fetch(backend, queue="old", now=at(1)) == []
    [claimed] = await fetch(backend, queue="new", now=at(1))
    assert claimed.id == job.id
    stats = await backend.stats()
    assert stats.counts["new"].get(S.RUNNING) == 1
    assert not stats.counts.get("old", {}).get(S.RUNNING)
    assert not stats.counts.get("old", {}).get(state)


async def test_a_partition_key_follows_the_new_arguments(backend: Backend) -> None:
    await backend.set_queue_limits("parts", QueueLimits(partition_by=PartitionBy(kwarg="tenant")))
    job = await reach(backend, S.FAILED, queue="parts", kwargs={"tenant": "acme"})
    assert job.partition_key == "acme"
    retried = await backend.retry(job.id, now=NOW, edit=edit(kwargs={"tenant": "globex"}))
    assert retried.partition_key == "globex"
    [claimed] = await fetch(backend, queue="parts", now=at(1))
    assert claimed.id == job.id
    assert claimed.partition_key == "globex"


async def test_a_partition_key_follows_the_new_queue(backend: Backend) -> None:
    await backend.set_queue_limits("parts", QueueLimits(partition_by=PartitionBy(arg=0)))
    job = await reach(backend, S.FAILED, queue="plain", args=["k1"])
    assert job.partition_key is None
    moved = await backend.retry(job.id, now=NOW, edit=edit(queue="parts"))
    assert moved.partition_key == "k1"
    [claimed] = await fetch(backend, queue="parts", now=at(1))
    assert claimed.id == job.id


async def test_a_producer_key_wins_and_no_change_keeps_the_key(backend: Backend) -> None:
    await backend.set_queue_limits("parts", QueueLimits(partition_by=PartitionBy(arg=0)))
    job = await reach(backend, S.FAILED, queue="parts", args=["k1"])
    keyed = await backend.retry(job.id, now=NOW, edit=edit(args=["k2"], partition_key="mine"))
    assert keyed.partition_key == "mine"
    await backend.cancel(job.id, reason="again", now=NOW)
    kept = await backend.retry(job.id, now=NOW, edit=edit(priority=0, note="n2"))
    assert kept.partition_key == "mine"


async def test_sensitive_marks_and_other_meta_are_kept(backend: Backend) -> None:
    marker = {"names": ["password"], "positions": [], "rest": None, "params": None}
    job = await reach(backend, S.FAILED, meta={SENSITIVE_META_KEY: marker, "big": 2**60})
    retried = await backend.retry(job.id, now=NOW, edit=edit(kwargs={"password": "s3"}))
    assert retried.meta[SENSITIVE_META_KEY] == marker
    assert retried.meta["big"] == 2**60  # exact: the store never re-encodes numbers


async def test_a_workflow_step_is_replayed_with_new_arguments(backend: Backend) -> None:
    if Capability.WORKFLOWS not in backend.capabilities:
        pytest.skip(f"{backend.url}: no Capability.WORKFLOWS")

    def step(name: str, deps: tuple[int, ...] = ()) -> NewStep:
        meta = step_meta({}, workflow=0, name=name, passes="none", dependents=not deps)
        state = S.BLOCKED if deps else S.PENDING
        job = new_job(queue="wf", state=state, meta=meta, args=[name], max_attempts=1)
        return NewStep(name=name, job=job, depends_on=deps)

    record = await backend.insert_workflow(
        NewWorkflow(name="wf", steps=[step("a"), step("b", (0,))]), now=NOW
    )
    [a] = await fetch(backend, queue="wf", now=NOW)
    assert await finish_with(backend, a, Failed("ValueError", "bad input"))
    b_id = record.step("b").job.id
    assert (await backend.get(b_id)).state is S.CANCELLED
    retried = await backend.retry(a.id, now=NOW, edit=edit(args=["a-fixed"]))
    assert retried.state is S.PENDING
    assert retried.args == ["a-fixed"]
    assert (await backend.get(b_id)).state is S.BLOCKED
    [again] = await fetch(backend, queue="wf", now=at(1))
    assert again.args == ["a-fixed"]
    assert await finish_with(backend, again, Completed("ok"), now=at(1))
    assert (await backend.get(b_id)).state is S.PENDING


async def test_racing_edits_apply_once(backend: Backend, second_backend: Backend) -> None:
    job = await reach(backend, S.FAILED, args=[0])
    answers = await asyncio.gather(
        *(
            store.retry(job.id, now=NOW, edit=edit(args=[n], note=f"n{n}"))
            for n, store in enumerate([backend, second_backend] * 4, 1)
        )
    )
    stored = await backend.get(job.id)
    [record] = stored.meta[REPLAYS_META_KEY]  # one replay won; the others found it pending
    assert record["args"] == [0]
    assert stored.args == [int(record["note"][1:])]
    assert all(a.state is S.PENDING for a in answers)


async def test_an_edit_without_encoded_text_stores_the_values(backend: Backend) -> None:
    job = await reach(backend, S.FAILED, args=[1])
    bare = JobEdit(replay={"id": "bare"}, args=[2, {"k": None}], kwargs={"x": [1.5]})
    retried = await backend.retry(job.id, now=NOW, edit=bare)
    assert (retried.args, retried.kwargs) == ([2, {"k": None}], {"x": [1.5]})
    assert await backend.get(job.id) == retried
