"""What a worker does when a job raises ``RateLimited``: hold back its queue on every node.

The job is snoozed as for ``Snooze``; before its outcome is written, its queue (or only its
key, in a partitioned queue) is held until the job's new time, so no other worker starts a job
of it in between, and the ``queue.held`` event says so.
"""

from __future__ import annotations

import logging
from datetime import datetime

from taskward.backends.base import Backend
from taskward.clock import Clock
from taskward.jobs import Job
from taskward.observe.events import Event, EventBus
from taskward.tasks import shown_partition_key

__all__ = ["held_key", "hold_queue"]

logger = logging.getLogger("taskward.runtime.worker")  # the worker's: where operators look for it


async def held_key(backend: Backend, job: Job, *, whole_queue: bool) -> str | None:
    """The key to hold for a RateLimited job: its own in a partitioned queue, else None.

    A job may carry a key (its task computes one) in a queue that is not partitioned: there a
    key's hold would hold nothing, so the whole queue is held.
    """
    if whole_queue or job.partition_key is None:
        return None
    try:
        limits = (await backend.queue_limits()).get(job.queue)
    except Exception:
        return None  # cannot tell: holding the whole queue is the safe side
    return job.partition_key if limits is not None and limits.partition_by else None


async def hold_queue(
    backend: Backend, events: EventBus, clock: Clock, job: Job, until: datetime, key: str | None
) -> None:
    """Hold back ``job``'s queue (or its ``key``) on every node until ``until``.

    A hold that cannot be written is logged: the job is still snoozed.
    """
    shown = shown_partition_key(job)
    held = f"queue {job.queue!r}" if key is None else f"key {shown!r} of queue {job.queue!r}"
    try:
        await backend.hold_queue(job.queue, until=until, key=key)
    except Exception:
        logger.warning(
            "job %s: rate limited, but holding back %s failed; only the job waits",
            job.id,
            held,
            exc_info=True,
            extra={"job_id": job.id},
        )
        return
    logger.warning(
        "job %s: rate limited upstream; %s held back on every node until %s",
        job.id,
        held,
        until.isoformat(),
        extra={"job_id": job.id},
    )
    events.emit(
        Event(
            name="queue.held",
            at=clock.now(),
            queue=job.queue,
            data={"job_id": job.id, "until": until, "key": None if key is None else shown},
        )
    )
