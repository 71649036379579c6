"""drain: run jobs in-process until none is due (for tests, scripts and the demo)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from taskward.jobs import JobFilter, JobState
from taskward.runtime.context import JobContext
from taskward.runtime.worker import DrainResult, HeartbeatService, Worker

_LATER = frozenset({JobState.SCHEDULED, JobState.RETRYABLE})


async def drain(
    worker: Worker,
    *,
    queues: Sequence[str],
    batch: int,
    with_scheduled: bool,
) -> DrainResult:
    """Fetch and run batches of ``batch`` jobs per queue until no job is due.

    ``batch=1`` runs one job at a time, so jobs run strictly in priority order. With
    ``with_scheduled`` it also waits for scheduled and retryable jobs to come due.
    """
    backend, clock = worker.backend, worker.clock
    heartbeat = HeartbeatService(worker)
    heartbeat.start()
    try:
        while True:
            await backend.promote_due(now=clock.now())
            ran = 0
            for queue in queues:
                ran += await _run_batch(worker, queue, batch)
            if ran:
                continue
            if not with_scheduled or not await _wait_for_next_due(worker, queues):
                return worker.result
    finally:
        await heartbeat.stop()
        await worker.acker.flush()
        await backend.remove_worker(worker.id)
        worker.close()


async def _run_batch(worker: Worker, queue: str, batch: int) -> int:
    jobs = await worker.fetch(queue, batch)
    if not jobs:
        return 0

    async def run(job_ctx: JobContext) -> None:
        worker.running[job_ctx.job.id] = (current_task(), job_ctx)
        try:
            worker.acker.add(await worker.run_one(job_ctx.job, job_ctx))
        finally:
            worker.running.pop(job_ctx.job.id, None)

    await asyncio.gather(*(run(worker.context_for(job)) for job in jobs))
    await worker.acker.flush()
    return len(jobs)


def current_task() -> asyncio.Task[Any]:
    """The running asyncio task (so the heartbeat can cancel a job an operator cancelled)."""
    task = asyncio.current_task()
    assert task is not None
    return task


async def _wait_for_next_due(worker: Worker, queues: Sequence[str]) -> bool:
    """Sleep until the earliest scheduled/retryable job of ``queues`` is due; False if none."""
    earliest = None
    for queue in queues:
        page = await worker.backend.list_jobs(
            JobFilter(states=_LATER, queue=queue, per_page=1, sort_by="scheduled_at")
        )
        for job in page.items:
            if earliest is None or job.scheduled_at < earliest:
                earliest = job.scheduled_at
    if earliest is None:
        return False
    delay = (earliest - worker.clock.now()).total_seconds()
    await asyncio.sleep(min(max(delay, 0.0), 1.0) + 0.001)
    return True
