"""Workflows through the public API on every backend: chains, groups, chords, DAGs, finalizers.

The store's rules are pinned by tests/contract/test_workflows.py; here the canvas, the
results a step receives, validation before anything is stored, and the worker's side.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from taskward import (
    FrozenClock,
    InvalidOptions,
    JobState,
    NotSerializable,
    TaskManager,
    Workflow,
    WorkflowNotFound,
    WorkflowState,
    chain,
    group,
)
from taskward.graph import MAX_RESULTS_PASSED, MAX_STEPS

S = JobState


def tasks(tw: TaskManager, log: list[Any]) -> dict[str, Any]:
    @tw.task(queue="wf")
    async def add(x: int, y: int = 0) -> int:
        log.append(("add", x, y))
        return x + y

    @tw.task(queue="wf")
    async def total(values: list[int]) -> int:
        log.append(("total", values))
        return sum(values)

    @tw.task(queue="wf", max_attempts=1)
    async def boom(x: int) -> None:
        log.append(("boom", x))
        raise ValueError(f"boom {x}")

    @tw.task(queue="wf")
    async def cleanup(outcome: dict[str, Any]) -> None:
        log.append(("cleanup", outcome))

    return {"add": add, "total": total, "boom": boom, "cleanup": cleanup}


async def test_a_chain_passes_each_result_to_the_next_step(tw: TaskManager) -> None:
    log: list[Any] = []
    t = tasks(tw, log)
    flow = chain(t["add"].s(1, 2), t["add"].s(10), t["add"].s(100), pass_result=True)
    handle = await tw.enqueue_workflow(flow)
    assert [s.name for s in handle.steps] == ["add", "add.2", "add.3"]
    assert [s.job.state for s in handle.steps] == [S.PENDING, S.BLOCKED, S.BLOCKED]
    await tw.drain(["wf"])
    done = await tw.get_workflow(handle.id)
    assert done.state is WorkflowState.COMPLETED
    assert [s.job.result for s in done.steps] == [3, 13, 113]
    assert log == [("add", 1, 2), ("add", 3, 10), ("add", 13, 100)]


async def test_a_chain_of_200_steps_runs_in_order(tw: TaskManager) -> None:
    order: list[int] = []

    @tw.task(queue="wf")
    async def step(previous: int | None, n: int) -> int:
        assert previous == (None if n == 0 else n - 1)  # the previous step's result
        order.append(n)
        return n

    first = step.s(None, 0)
    flow = chain(first, *(step.s(n) for n in range(1, 200)), pass_result=True)
    handle = await tw.enqueue_workflow(flow)
    await tw.drain(["wf"])
    assert order == list(range(200))
    assert (await tw.get_workflow(handle.id)).state is WorkflowState.COMPLETED


async def test_a_group_past_the_step_limit_is_refused_before_anything_is_stored(
    tw: TaskManager,
) -> None:
    t = tasks(tw, [])
    members = group(t["add"].s(i) for i in range(MAX_STEPS))  # + the callback: one too many
    with pytest.raises(InvalidOptions, match="at most 100,000 steps"):
        await tw.enqueue_workflow(members.then(t["total"].s()))
    assert (await tw.list_tasks()).total_entries == 0


async def test_a_chord_runs_its_callback_once_with_every_result_in_order(tw: TaskManager) -> None:
    log: list[Any] = []
    t = tasks(tw, log)
    flow = group(t["add"].s(i) for i in range(10)).then(t["total"].s().set(pass_result=True))
    handle = await tw.enqueue_workflow(flow)
    await tw.drain(["wf"])
    done = await tw.get_workflow(handle.id)
    assert done.state is WorkflowState.COMPLETED
    assert done.step("total").job.result == 45
    assert [entry for entry in log if entry[0] == "total"] == [("total", list(range(10)))]


async def test_a_diamond_runs_its_join_once_after_both_branches(tw: TaskManager) -> None:
    log: list[Any] = []
    t = tasks(tw, log)
    flow = Workflow("diamond")
    a = flow.add(t["add"].s(1), name="a")
    b = flow.add(t["add"].s(2).set(pass_result=True), depends_on=[a], name="b")
    c = flow.add(t["add"].s(3).set(pass_result=True), depends_on=[a], name="c")
    flow.add(t["total"].s().set(pass_result=True), depends_on=[b, c], name="d")
    handle = await tw.enqueue_workflow(flow)
    assert handle.name == "diamond"
    await tw.drain(["wf"])
    done = await tw.get_workflow(handle.id)
    assert done.step("d").job.result == (1 + 2) + (1 + 3)
    assert sum(1 for entry in log if entry[0] == "total") == 1


async def test_a_failure_cancels_what_waits_and_the_finalizer_hears_of_it(tw: TaskManager) -> None:
    log: list[Any] = []
    t = tasks(tw, log)
    flow = chain(t["add"].s(1), t["boom"].s(2), t["add"].s(3))
    flow.finally_(t["cleanup"].s().set(pass_result=True), name="cleanup")
    handle = await tw.enqueue_workflow(flow)
    await tw.drain(["wf"])
    done = await tw.get_workflow(handle.id)
    assert {s.name: s.job.state for s in done.steps} == {
        "add": S.COMPLETED,
        "boom": S.FAILED,
        "add.2": S.CANCELLED,
        "cleanup": S.COMPLETED,
    }
    assert done.state is WorkflowState.FAILED
    [(_, outcome)] = [entry for entry in log if entry[0] == "cleanup"]
    assert outcome == {
        "workflow_id": handle.id,
        "completed": ["add"],
        "failed": ["boom"],
        "discarded": [],
        "cancelled": ["add.2"],
    }


async def test_retrying_the_failed_step_resumes_the_workflow(tw: TaskManager) -> None:
    attempts: list[int] = []

    @tw.task(queue="wf", max_attempts=1)
    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first time")
        return x

    @tw.task(queue="wf")
    async def after(value: int) -> int:
        return value * 10

    handle = await tw.enqueue_workflow(chain(flaky.s(4), after.s(), pass_result=True))
    await tw.drain(["wf"])
    assert (await tw.get_workflow(handle.id)).state is WorkflowState.FAILED
    retried = await tw.retry_task(handle.steps[0].job.id)
    assert retried.state is S.PENDING
    await tw.drain(["wf"])
    done = await tw.get_workflow(handle.id)
    assert done.state is WorkflowState.COMPLETED
    assert done.steps[1].job.result == 40


async def test_cancelling_a_workflow_cancels_what_has_not_run(tw: TaskManager) -> None:
    log: list[Any] = []
    t = tasks(tw, log)
    flow = chain(t["add"].s(1), t["add"].s(2))
    flow.finally_(t["cleanup"].s().set(pass_result=True))
    handle = await tw.enqueue_workflow(flow)
    after = await tw.cancel_workflow(handle.id)
    assert [s.job.state for s in after.steps] == [S.CANCELLED, S.CANCELLED, S.PENDING]
    assert await tw.get_workflow(handle.id) == after
    with pytest.raises(WorkflowNotFound):
        await tw.get_workflow(handle.id + 1000)


async def test_each_step_keeps_its_own_job_options(tw: TaskManager) -> None:
    log: list[Any] = []
    t = tasks(tw, log)
    flow = chain(t["add"].s(1).set(queue="first", priority=1), t["add"].s(2).set(max_attempts=7))
    handle = await tw.enqueue_workflow(flow)
    first, second = (s.job for s in handle.steps)
    assert (first.queue, first.priority) == ("first", 1)
    assert (second.queue, second.max_attempts) == ("wf", 7)


@pytest.mark.parametrize(
    "make",
    [
        lambda t: _cycle(t),
        lambda t: _unknown(t),
        lambda t: chain(t["add"].s(object())),
        lambda t: chain(t["add"].s(1), t["add"].s(2).set(unique_for=60)),
        lambda t: chain(t["add"].s(1), t["add"].s(2).set(priority="high")),
        lambda t: group(t["add"].s(i) for i in range(MAX_RESULTS_PASSED + 1)).then(
            t["total"].s().set(pass_result=True)
        ),
    ],
    ids=["cycle", "unknown-step", "unserializable", "unique", "bad-option", "too-many-results"],
)
async def test_bad_input_is_refused_before_anything_is_stored(tw: TaskManager, make: Any) -> None:
    t = tasks(tw, [])
    with pytest.raises((InvalidOptions, NotSerializable)) as caught:
        await tw.enqueue_workflow(make(t))
    assert str(caught.value)
    assert (await tw.list_tasks()).total_entries == 0


async def test_a_workflow_whose_steps_were_pruned_is_not_found(tw: TaskManager) -> None:
    t = tasks(tw, [])
    handle = await tw.enqueue_workflow(chain(t["add"].s(1), t["add"].s(2)))
    await tw.drain(["wf"])
    tw.clock = FrozenClock(tw.clock.now() + timedelta(days=2))
    await tw.cleanup_old_tasks(completed_days=1, failed_days=1)
    with pytest.raises(WorkflowNotFound):
        await tw.get_workflow(handle.id)


async def test_a_unique_task_cannot_be_a_step(tw: TaskManager) -> None:
    @tw.task(queue="wf", unique_for=60)
    async def once(x: int) -> int:
        return x

    with pytest.raises(InvalidOptions, match="unique"):
        await tw.enqueue_workflow(chain(once.s(1), once.s(2)))
    assert (await tw.list_tasks()).total_entries == 0


def test_the_sync_twins_store_and_read_a_workflow(tmp_path: Any) -> None:
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")
    t = tasks(tw, [])
    try:
        handle = tw.sync.enqueue_workflow(chain(t["add"].s(1), t["add"].s(2)))
        assert tw.sync.get_workflow(handle.id).state is WorkflowState.RUNNING
        cancelled = tw.sync.cancel_workflow(handle.id)
        assert cancelled.state is WorkflowState.CANCELLED
    finally:
        tw.sync.shutdown()


def _cycle(t: dict[str, Any]) -> Workflow:
    flow = Workflow()
    flow.add(t["add"].s(1), name="a", depends_on=["c"])
    flow.add(t["add"].s(2), name="b", depends_on=["a"])
    flow.add(t["add"].s(3), name="c", depends_on=["b"])
    return flow


def _unknown(t: dict[str, Any]) -> Workflow:
    flow = Workflow()
    flow.add(t["add"].s(1), name="a", depends_on=["nowhere"])
    return flow


async def test_a_cycle_is_named_in_the_error(tw: TaskManager) -> None:
    with pytest.raises(InvalidOptions, match=re.escape("the workflow has a cycle: a → b → c → a")):
        await tw.enqueue_workflow(_cycle(tasks(tw, [])))
