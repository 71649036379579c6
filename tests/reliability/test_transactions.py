"""Item 6: races on one job end in one final state; retrying a dead letter twice makes one live
job. (Rolled-back transactional enqueues and 64 concurrent unique enqueues, some in rolled-back
transactions, are proven in tests/integration/test_postgres.py.)
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from reliability.harness import report
from taskward import FrozenClock, JobState, TaskManager
from taskward.runtime.maintenance import Rescuer
from taskward.states import Completed, next_update

RUNS: Counter[int] = Counter()
FINAL = {JobState.COMPLETED, JobState.CANCELLED}


async def short(n: int, seconds: float) -> int:
    """A job that takes ``seconds``; counts its runs."""
    RUNS[n] += 1
    await asyncio.sleep(seconds)
    return n


def boom(n: int) -> None:
    """A job that always fails; counts its runs."""
    RUNS[n] += 1
    raise RuntimeError("boom")


async def test_cancel_racing_completion_ends_in_one_final_state(manager_url: str) -> None:
    RUNS.clear()
    rng = random.Random(3)
    tw = TaskManager(manager_url, lease_seconds=0.3, poll_interval=0.02, shutdown_timeout=2)
    async with tw:
        n = 60
        jobs = await tw.enqueue_many(
            "reliability.test_transactions:short",
            [[i, rng.uniform(0, 0.3)] for i in range(n)],
        )
        worker = tw.make_worker({"default": 8})
        running = asyncio.create_task(worker.run())

        async def cancel_later(job_id: int) -> JobState:
            await asyncio.sleep(rng.uniform(0, 0.5))
            return (await tw.cancel_task(job_id)).state

        seen = await asyncio.gather(*(cancel_later(j.id) for j in jobs))
        for _ in range(400):
            page = await tw.list_tasks(per_page=n, sort_by="id")
            if all(j.state in FINAL for j in page.items):
                break
            await asyncio.sleep(0.025)
        worker.stop()
        await running
        settled = (await tw.list_tasks(per_page=n, sort_by="id")).items
        assert {j.state for j in settled} <= FINAL
        for job in settled:
            assert not job.cancel_requested
            kinds = [e.kind for e in job.errors]
            assert kinds == (["Cancelled"] if job.state is JobState.CANCELLED else [])
            assert RUNS[job.args[0]] <= 1  # a job cancelled is never run again
        assert JobState.RUNNING in seen, "some cancels should land on running jobs"

        # Final means final: a late cancel, a retried completion, a rescue far in the future.
        for job in settled:
            await tw.cancel_task(job.id)
        late = [  # what a zombie run of each would write: its attempt, this worker
            next_update(
                replace(j, state=JobState.RUNNING, attempt=max(1, j.attempt)),
                Completed(),
                tw.clock.now(),
                tw.default_policy,
            )
            for j in settled
        ]
        assert await tw.backend.finish(late, worker_id=worker.id) == [False] * n
        future = FrozenClock(tw.clock.now() + timedelta(days=1))
        rescuer = Rescuer(
            tw.backend,
            future,
            1,
            leadership=None,
            resolve=lambda _: None,
            default_policy=tw.default_policy,
        )
        await rescuer.run_once()
        assert (await tw.list_tasks(per_page=n, sort_by="id")).items == settled
        states = Counter(j.state.value for j in settled)
        report(
            "cancel_race",
            backend=manager_url.split(":")[0],
            jobs=n,
            cancels_on_running=seen.count(JobState.RUNNING),
            **states,
        )


async def test_retrying_a_dead_letter_twice_makes_one_live_job(manager_url: str) -> None:
    RUNS.clear()
    async with TaskManager(manager_url, poll_interval=0.02) as tw:
        job = await tw.enqueue_task("reliability.test_transactions:boom", args=[7], max_attempts=1)
        await tw.drain()
        assert (await tw.get_task_status(job.id)).state is JobState.FAILED
        retried = await asyncio.gather(*(tw.retry_task(job.id) for _ in range(8)))
        assert {r.state for r in retried} == {JobState.PENDING}
        page = await tw.list_tasks()
        assert page.total_entries == 1
        (live,) = page.items
        assert live.state is JobState.PENDING
        assert live.max_attempts == 2  # one more attempt, not eight
        result = await tw.drain()
        assert result.total == 1
        assert RUNS[7] == 2  # the first attempt and exactly one retry
        final = await tw.get_task_status(job.id)
        assert final.state is JobState.FAILED
        assert final.attempt == 2
