"""What holds a waiting job's queue back: the queue-level checks of an explanation.

Each :data:`Check` answers for one job, so an explanation lists every block at once, in the
order of :data:`QUEUE_CHECKS`: ``paused``, ``held`` (or a key's ``partition_held``),
``global_limit`` (or ``partition_limit``), ``rate_limit`` (or ``partition_rate``),
``no_worker``. A new kind of block is one more check here, reading the store through
:class:`~taskward.reasons.Inquiry` (add a cached read there when it needs one).
"""

from __future__ import annotations

from taskward.jobs import Job, JobState
from taskward.limits import QueueFlow
from taskward.reasons import Check, Inquiry, Reason, iso, span, time_text
from taskward.tasks import shown_partition_key

__all__ = ["HOLDERS_SHOWN", "QUEUE_CHECKS"]

HOLDERS_SHOWN = 100
"""At most this many ids of the jobs holding a full global limit are listed."""


async def _paused(job: Job, inquiry: Inquiry) -> Reason | None:
    if job.queue not in await inquiry.paused():
        return None
    return Reason(
        code="paused",
        text=f"its queue {job.queue} is paused: no worker fetches from it until it is resumed",
        data={"queue": job.queue},
    )


async def _global_limit(job: Job, inquiry: Inquiry) -> Reason | None:
    limit = (await inquiry.limits(job.queue)).global_limit
    if limit is None:
        return None
    key_flow = await inquiry.key_flow(job)
    if key_flow is not None:
        return _key_limit(job, limit, key_flow)
    running = await inquiry.jobs(job.queue, JobState.RUNNING, first=min(limit, HOLDERS_SHOWN))
    if running.total_entries < limit:
        return None
    holders = [j.id for j in running.items]
    listed = ", ".join(str(i) for i in holders)
    more = running.total_entries - len(holders)
    if more > 0:
        listed += f" and {more} more"
    return Reason(
        code="global_limit",
        text=(
            f"the global limit of queue {job.queue} is full: {running.total_entries} of "
            f"{limit} job(s) run (held by job(s) {listed})"
        ),
        data={
            "queue": job.queue,
            "limit": limit,
            "running": running.total_entries,
            "held_by": holders,
        },
    )


def _key_limit(job: Job, limit: int, flow: QueueFlow) -> Reason | None:
    holders = list(flow.running or ())
    if len(holders) < limit:
        return None
    key = shown_partition_key(job) or ""
    return Reason(
        code="partition_limit",
        text=(
            f"its partition key {key!r} of queue {job.queue} is at its limit: {len(holders)} of "
            f"{limit} job(s) of the key run (held by job(s) {', '.join(map(str, holders))})"
        ),
        data={
            "queue": job.queue,
            "key": key,
            "limit": limit,
            "running": len(holders),
            "held_by": holders,
        },
    )


async def _no_worker(job: Job, inquiry: Inquiry) -> Reason | None:
    workers = await inquiry.workers()
    if any(job.queue in w.queues for w in workers):
        return None
    served = sorted({q for w in workers for q in w.queues})
    if workers:
        text = (
            f"no live worker listens on queue {job.queue}; the {len(workers)} live worker(s) "
            f"serve: {', '.join(served)}"
        )
    else:
        text = f"no live worker listens on queue {job.queue}: no worker is alive"
    return Reason(
        code="no_worker",
        text=text,
        data={
            "queue": job.queue,
            "live_workers": [w.id for w in workers],
            "served_queues": served,
            "alive_since": iso(inquiry.alive_since),
        },
    )


async def _held(job: Job, inquiry: Inquiry) -> Reason | None:
    until = (await inquiry.flow(job.queue)).held_until
    if until is None or until <= inquiry.now:
        return await _key_held(job, inquiry)
    seconds = (until - inquiry.now).total_seconds()
    return Reason(
        code="held",
        text=(
            f"its queue {job.queue} is held back until {time_text(until)} (in {span(seconds)}): "
            "a job of the queue raised RateLimited (an upstream asked to wait)"
        ),
        data={"queue": job.queue, "until": iso(until), "in_seconds": round(seconds, 3)},
    )


async def _key_held(job: Job, inquiry: Inquiry) -> Reason | None:
    flow = await inquiry.key_flow(job)
    until = None if flow is None else flow.held_until
    if until is None or until <= inquiry.now:
        return None
    key = shown_partition_key(job) or ""
    seconds = (until - inquiry.now).total_seconds()
    return Reason(
        code="partition_held",
        text=(
            f"its partition key {key!r} of queue {job.queue} is held back until {time_text(until)} "
            f"(in {span(seconds)}): a job of the key raised RateLimited"
        ),
        data={
            "queue": job.queue,
            "key": key,
            "until": iso(until),
            "in_seconds": round(seconds, 3),
        },
    )


async def _rate_limit(job: Job, inquiry: Inquiry) -> Reason | None:
    flow = await inquiry.key_flow(job) or await inquiry.flow(job.queue)
    rate = flow.limits.rate_limit
    if rate is None:
        return None
    window = rate.window_of(inquiry.now)
    used = flow.used_in(window)
    if used < rate.count:
        return None
    opens = rate.window_start(window + 1)
    partitioned = flow.limits.partition_by is not None
    whose = f"partition key {shown_partition_key(job) or ''!r} of queue" if partitioned else "queue"
    return Reason(
        code="partition_rate" if partitioned else "rate_limit",
        text=(
            f"the rate window of {whose} {job.queue} is full: {used} of {rate.count} start(s) "
            f"allowed by its rate limit {rate} were used; the next window opens at "
            f"{time_text(opens)}"
        ),
        data={
            "queue": job.queue,
            **({"key": shown_partition_key(job) or ""} if partitioned else {}),
            "rate": str(rate),
            "count": rate.count,
            "seconds": rate.seconds,
            "used": used,
            "window_started_at": iso(rate.window_start(window)),
            "next_window_at": iso(opens),
        },
    )


QUEUE_CHECKS: tuple[Check, ...] = (_paused, _held, _global_limit, _rate_limit, _no_worker)
"""What can hold a waiting job's queue back, checked in this order (see the module doc)."""
