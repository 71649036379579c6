"""Issue 22: a 1,000-member group with a callback, its worker group SIGKILLed five times.

Every member completes, the callback is released once and runs once (with every result, in
order), and no step is left blocked. The run log is the witness outside the store.
"""

from __future__ import annotations

import random
import time

import pytest

from reliability.harness import LONG, TASK, Workers, report, run, sized, wait_until
from taskward import JobState, Step, TaskManager, WorkflowState, group

KILLS = 5
COLLECT = "tests_support.reliability_app:collect"


async def enqueue_chord(url: str, n: int) -> int:
    async with TaskManager(url) as tw:
        members = group(Step(TASK, (i,)).set(max_attempts=25) for i in range(n))
        flow = members.then(Step(COLLECT).set(pass_result=True, max_attempts=25))
        return (await tw.enqueue_workflow(flow)).id


async def workflow_state(url: str, workflow_id: int) -> tuple[WorkflowState, dict[str, int]]:
    async with TaskManager(url) as tw:
        record = await tw.get_workflow(workflow_id)
        states: dict[str, int] = {}
        for step in record.steps:
            states[step.job.state.value] = states.get(step.job.state.value, 0) + 1
        return record.state, states


@pytest.mark.timeout(1800 if LONG else 300)
def test_a_chord_survives_five_kills_and_its_callback_runs_once(
    workers: Workers, store_url: str
) -> None:
    n = sized(1_000, 1_000)
    rng = random.Random(22)
    began = time.monotonic()
    workflow_id = run(enqueue_chord(store_url, n))
    workers.base_env = {"REL_SLEEP": "0.002", "REL_CONCURRENCY": "8", "REL_LEASE": "1"}
    for kill in range(KILLS):
        target = (kill + 1) * n // 7 + rng.randint(-n // 30, n // 30)
        workers.start(4)
        wait_until(lambda t=target: len(workers.log().dones) >= t, 120, "progress before a kill")
        time.sleep(rng.uniform(0, 0.2))
        workers.kill_group()
    workers.start(4)
    wait_until(
        lambda: run(workflow_state(store_url, workflow_id))[0] is WorkflowState.COMPLETED,
        300,
        "the workflow completed",
    )
    assert workers.stop_all() == [0, 0, 0, 0]

    log = workers.log()
    state, states = run(workflow_state(store_url, workflow_id))
    assert state is WorkflowState.COMPLETED
    assert states == {JobState.COMPLETED.value: n + 1}  # nothing blocked, nothing lost
    assert set(range(n)) <= set(log.dones), "a member's body never finished"
    callbacks = log.of("callback")
    assert len(callbacks) == 1, callbacks  # released once, after the last kill
    [[_, generation, _, count, total, in_order]] = callbacks
    assert int(generation) == KILLS  # the restart after the last kill ran it
    assert (int(count), int(total), in_order) == (n, n * (n - 1) // 2, "1")  # all, in order
    report(
        "workflow_kill9",
        backend=store_url.split(":")[0],
        members=n,
        kills=KILLS,
        callbacks=len(callbacks),
        seconds=round(time.monotonic() - began, 1),
    )
