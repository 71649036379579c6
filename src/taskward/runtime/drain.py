"""drain: run jobs in-process until none is due (for tests, scripts and the demo)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from taskward.jobs import JobFilter, JobState
from taskward.runtime.settings import DrainResult
from taskward.runtime.worker import HeartbeatService, Worker

_LATER = frozenset({JobState.SCHEDULED, JobState.RETRYABLE})


logger = logging.getLogger(__name__)


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
        await _wind_down_fully(worker, heartbeat)


async def _wind_down_fully(worker: Worker, heartbeat: HeartbeatService) -> None:
    """Wind down even when cancelled meanwhile, within ``shutdown_timeout``; then re-raise.

    Shielded: a drain cut short (its timeout, a cancel) still writes the outcomes of the jobs
    it interrupted (released by the worker's done-callback) instead of leaving them running,
    and a further cancel waits for it, or its calls would reopen a store being closed. That
    wait is bounded: a store that hangs must not make the drain impossible to cancel.
    """
    loop = asyncio.get_running_loop()
    wind_down = asyncio.ensure_future(_wind_down(worker, heartbeat))
    deadline: float | None = None  # set by the first cancel that arrives during the wind-down
    while not wind_down.done():
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            logger.warning(
                "worker %s: the drain's wind-down did not end within %gs of its cancel",
                worker.id,
                worker.config.shutdown_timeout,
            )
            raise asyncio.CancelledError
        try:
            await asyncio.wait([wind_down], timeout=left)
        except asyncio.CancelledError:
            if deadline is None:
                deadline = loop.time() + worker.config.shutdown_timeout
    wind_down.result()
    if deadline is not None:
        raise asyncio.CancelledError


async def _wind_down(worker: Worker, heartbeat: HeartbeatService) -> None:
    try:
        await heartbeat.stop()
        await worker.acker.flush()
        await worker.backend.remove_worker(worker.id)
    finally:
        worker.close()


async def _run_batch(worker: Worker, queue: str, batch: int) -> int:
    jobs = await worker.fetch(queue, batch)
    if not jobs:
        return 0
    # The worker's done-callbacks give every job its outcome, also one cancelled by an operator
    # (never raised here) or one interrupted by this drain being cancelled.
    await asyncio.gather(*(worker.start_job(job) for job in jobs), return_exceptions=True)
    await worker.acker.flush()
    return len(jobs)


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
