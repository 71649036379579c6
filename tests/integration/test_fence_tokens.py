"""``JobContext.fence_token`` on every backend: what each kind of new claim hands the job.

A later claim holds a greater token than any run that may still be executing (a failed attempt's
retry, a rescued lease), and a snooze, written by the run itself once it has ended, gives its
token back. The SIGSTOP zombie with the example's own table is in
``tests/reliability/test_fence_token.py``.
"""

from __future__ import annotations

from datetime import timedelta

from taskward import JobContext, JobState, Snooze, TaskManager
from taskward.backoff import ConstantBackoff
from taskward.states import Orphaned, next_update


async def test_tokens_grow_with_retries_and_a_snooze_gives_its_token_back(
    tw: TaskManager,
) -> None:
    seen: list[tuple[int, int]] = []

    @tw.task(max_attempts=3, backoff=ConstantBackoff(0))
    async def flaky(ctx: JobContext) -> int:
        seen.append((ctx.fence_token, ctx.attempt))
        if len(seen) == 1:
            raise Snooze(0)  # this run ends; its claim is given back
        if len(seen) == 2:
            raise RuntimeError("first real failure")
        return ctx.fence_token

    job = await flaky.enqueue()
    await tw.drain(with_scheduled=True, timeout=30)
    done = await tw.get_task_status(job.id)
    assert done.state is JobState.COMPLETED
    assert seen == [(1, 1), (1, 1), (2, 2)]
    assert done.result == 2


async def test_a_rescued_claim_holds_a_greater_token_than_the_lost_run(manager_url: str) -> None:
    async with TaskManager(manager_url, poll_interval=0.05, lease_seconds=0.5) as tw:
        await _rescue_then_run(tw)


async def _rescue_then_run(tw: TaskManager) -> None:
    tokens: list[int] = []

    @tw.task
    async def write(ctx: JobContext) -> None:
        tokens.append(ctx.fence_token)

    job = await write.enqueue()
    worker = tw.make_worker({"default": 1})
    (lost,) = await worker.fetch("default", 1)  # claimed, then its worker goes silent
    worker.close()
    assert lost.attempt == 1
    # What the Rescuer writes once the lease has expired (fenced to the lost claim).
    assert lost.lease_until is not None
    expired = lost.lease_until + timedelta(milliseconds=1)
    rescue = next_update(lost, Orphaned(), expired, ConstantBackoff(0))
    assert await tw.backend.finish([rescue], worker_id=lost.attempted_by or "") == [True]
    await tw.drain(with_scheduled=True, timeout=30)
    assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED
    assert tokens == [2]  # greater than the lost run's 1: its late writes are refused
