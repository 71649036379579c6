"""Item 6: races on one job end in one final state; retrying a dead letter twice makes one live
job; 64 unique enqueues racing from 8 processes make one job (SQLite and PostgreSQL).
(Rolled-back transactional enqueues and 64 concurrent unique enqueues from many connections,
some in rolled-back transactions, are proven in tests/integration/test_postgres.py.)
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from reliability.harness import TESTS, all_jobs, report, run
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


UNIQUE_PRODUCER = """
import asyncio, os, sys, time
from taskward import TaskManager
async def main():
    async with TaskManager(sys.argv[1]) as tw:
        await tw.get_statistics()  # connected and migrated before the race
        print("ready", flush=True)
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.001)
        jobs = await asyncio.gather(*(
            tw.enqueue_task("tests_support.jobs:add", args=[7], unique_for=60) for _ in range(8)
        ))
        print(" ".join(str(j.id) for j in jobs), flush=True)
asyncio.run(main())
"""


def test_unique_enqueues_from_eight_processes_make_one_job(store_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UNIQUE_PRODUCER, store_url, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        go.touch()  # 8 processes x 8 concurrent enqueues of one unique job, all at once
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    assert [proc.returncode for proc in procs] == [0] * 8
    ids = {int(i) for out in outputs for i in out.split()}
    assert len(ids) == 1
    assert len(run(all_jobs(store_url))) == 1
    report("unique_race", backend=store_url.split(":")[0], enqueues=64, processes=8, jobs=1)
