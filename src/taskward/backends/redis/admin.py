"""Queue controls, limits, holds, schedules and the worker registry of the Redis backend.

None of them changes a job's state, so each is a plain command or a MULTI/EXEC pipeline, except
setting limits and holds: those are scripts (``limits.lua``, ``hold.lua``), because a hold only
grows and a raised limit is published, so the stored value is compared with the new one in the
step that writes it, and a new partition rule re-keys the queue's waiting jobs in that step.
The keys are in docs/DESIGN.md ("Redis backend as built").
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

from taskward.backends.redis import codec, cron_history
from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import StoreError, translated
from taskward.errors import InvalidOptions
from taskward.jobs import Schedule, WorkerInfo
from taskward.limits import (
    RUNNING_SHOWN,
    WAIT_REASONS,
    PartitionBy,
    QueueFlow,
    QueueLimits,
    Rate,
)

__all__ = [
    "delete_schedule",
    "hold_queue",
    "list_schedules",
    "list_workers",
    "partition_flow",
    "pause_queue",
    "paused_queues",
    "queue_flow",
    "queue_limits",
    "record_worker",
    "remove_worker",
    "resume_queue",
    "save_schedule",
    "set_queue_limits",
]


async def pause_queue(connections: Connections, queue: str) -> None:
    """Stop ``fetch`` from handing out jobs of ``queue``, on every node."""
    client = await connections.ready()
    with translated(connections.config):
        await client.sadd(f"{connections.base}:paused", queue)


async def resume_queue(connections: Connections, queue: str) -> None:
    """Undo :func:`pause_queue`, and wake that queue's workers everywhere."""
    client = await connections.ready()
    with translated(connections.config):
        await client.srem(f"{connections.base}:paused", queue)
        await client.publish(f"{connections.base}:wake", queue)


async def paused_queues(connections: Connections) -> set[str]:
    """Return the names of paused queues."""
    client = await connections.ready()
    with translated(connections.config):
        return set(await client.smembers(f"{connections.base}:paused"))


async def set_queue_limits(connections: Connections, queue: str, limits: QueueLimits) -> bool:
    """Store ``queue``'s limits in ``B:limits``, or clear them; True if raised or cleared.

    The queue's hold is left alone. A raised or cleared limit, or a changed partition rule, is
    published on the wake channel (by ``limits.lua``): a worker held back by the old one may
    claim now. A new or changed rule re-keys the queue's waiting jobs in the same script.
    """
    rate, rule = limits.rate_limit, limits.partition_by
    raised = await connections.run(
        "limits",
        (
            queue,
            "" if limits.global_limit is None else str(int(limits.global_limit)),
            "" if rate is None else f"{rate.count}:{rate.period_ms}",
            "" if rule is None else str(rule),
        ),
    )
    return bool(raised == 1)


async def hold_queue(
    connections: Connections, queue: str, *, until: datetime | None, key: str | None = None
) -> None:
    """Hold back ``queue`` (or only its ``key``) until ``until``, the later hold winning.

    None releases it (published on the wake channel).
    """
    await connections.run(
        "hold",
        (queue, "" if until is None else codec.us(until), "" if key is None else "=" + key),
    )


async def partition_flow(connections: Connections, queue: str, key: str) -> QueueFlow:
    """The queue's limits with ``key``'s own hold, rate window and running jobs (by id)."""
    stored, state, running = await connections.run("partition_flow", (queue, key, RUNNING_SHOWN))
    flow = _flow_of(queue, stored) if stored else None
    held, _, window = state.partition("|")
    index, _, used = window.partition(":")
    return QueueFlow(
        limits=QueueLimits() if flow is None else flow.limits,
        held_until=codec.time_of(held) if held else None,
        window=int(index) if index else None,
        window_used=int(used) if used else 0,
        running=tuple(int(i) for i in running),
    )


async def queue_limits(connections: Connections) -> dict[str, QueueLimits]:
    """Return the limits of every queue that has one (a queue with only a hold has none)."""
    flows = await queue_flow(connections)
    return {queue: flow.limits for queue, flow in flows.items() if not flow.limits.is_empty}


async def queue_flow(connections: Connections) -> dict[str, QueueFlow]:
    """Limits, hold, rate window and waits of every queue with limits or a hold.

    ``B:limits`` keeps them in one field per queue, read by one HGET in the claim script:
    ``G`` (a global limit alone) or ``G|count:period_ms|held_until_us|window:used``, with
    ``|rule`` appended for a partitioned queue (``str(PartitionBy)``), a part left empty when
    unset. ``B:waits`` counts the claims a limit turned away, in fields ``<queue>|<reason>``
    (``fetch.lua`` writes them, and drops them with the queue's ``B:limits`` field).
    """
    client = await connections.ready()
    base = connections.base
    with translated(connections.config):
        # Not MULTI: a server at maxmemory refuses a transaction, and reads must go on.
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(f"{base}:limits")
        pipe.hgetall(f"{base}:waits")
        stored, counted = await pipe.execute()
    waits: dict[str, dict[str, int]] = {}
    for name, count in counted.items():
        queue, _, reason = name.rpartition("|")
        if reason in WAIT_REASONS and count.lstrip("-").isdigit():
            waits.setdefault(queue, {})[reason] = int(count)
    flows = {queue: _flow_of(queue, value) for queue, value in sorted(stored.items())}
    return {
        queue: replace(flow, waits=waits.get(queue, {}))
        for queue, flow in flows.items()
        if flow is not None
    }


_FLOW_RE = re.compile(
    r"(?P<global>[0-9]*)\|(?:(?P<count>[0-9]+):(?P<period>[0-9]+))?"
    r"\|(?P<held>-?[0-9]+)?\|(?:(?P<window>-?[0-9]+):(?P<used>[0-9]+))?"
    r"(?:\|(?P<rule>[^|]+))?"
)


def _flow_of(queue: str, value: str) -> QueueFlow | None:
    """One queue's flow from its ``B:limits`` field (as ``parse_flow`` in common.lua reads it)."""
    if value.isascii() and value.isdigit():  # a global limit alone
        global_, count, period, held, window, used, rule = (value, *(None,) * 6)
    else:
        match = _FLOW_RE.fullmatch(value)
        if match is None:
            raise _bad(queue, value)
        global_, count, period, held, window, used, rule = match.group(
            "global", "count", "period", "held", "window", "used", "rule"
        )
    try:  # a global limit of 0, a rate out of range, a time out of range, a bad rule
        limits = QueueLimits(
            global_limit=int(global_) if global_ else None,
            rate_limit=None if count is None else Rate.of_ms(int(count), int(period or 0)),
            partition_by=PartitionBy.parse(rule) if rule else None,
        )
        held_until = None if held is None else codec.time_of(held)
    except (InvalidOptions, OverflowError):
        raise _bad(queue, value) from None
    if limits.is_empty and held_until is None:
        return None
    return QueueFlow(
        limits=limits,
        held_until=held_until,
        window=None if window is None else int(window),
        window_used=0 if used is None else int(used),
    )


def _bad(queue: str, value: str) -> StoreError:
    return StoreError(
        f"the limits of queue {queue!r} in the store's limits hash are {value!r}, not a global "
        "limit (a whole number) or global|count:period_ms|held_until|window:used[|rule]: "
        "something other than taskward wrote it. Set the queue's limits again"
    )


async def save_schedule(connections: Connections, schedule: Schedule) -> None:
    """Create or replace a recurring schedule by name."""
    client = await connections.ready()
    with translated(connections.config):
        await client.hset(
            f"{connections.base}:schedules", schedule.name, codec.schedule_json(schedule)
        )


async def delete_schedule(connections: Connections, name: str) -> bool:
    """Delete a recurring schedule and its fire history; False if there was none."""
    return await cron_history.forget(connections, name)


async def list_schedules(connections: Connections) -> list[Schedule]:
    """Return every recurring schedule, by name."""
    client = await connections.ready()
    with translated(connections.config):
        stored = await client.hgetall(f"{connections.base}:schedules")
    listed = [codec.schedule_from_json(stored[name]) for name in sorted(stored)]
    return await cron_history.with_state(connections, listed)


async def record_worker(connections: Connections, info: WorkerInfo) -> None:
    """Upsert a worker's liveness record."""
    client = await connections.ready()
    base = connections.base
    with translated(connections.config):
        pipe = client.pipeline(transaction=True)
        pipe.hset(f"{base}:workers", info.id, codec.worker_json(info))
        pipe.zadd(f"{base}:beats", {info.id: int(codec.us(info.heartbeat_at))})
        await pipe.execute()


async def remove_worker(connections: Connections, worker_id: str) -> None:
    """Delete a worker's liveness record."""
    client = await connections.ready()
    base = connections.base
    with translated(connections.config):
        pipe = client.pipeline(transaction=True)
        pipe.hdel(f"{base}:workers", worker_id)
        pipe.zrem(f"{base}:beats", worker_id)
        await pipe.execute()


async def list_workers(connections: Connections, *, alive_since: datetime) -> list[WorkerInfo]:
    """Return workers that heartbeated at or after ``alive_since``, by id."""
    client = await connections.ready()
    base = connections.base
    with translated(connections.config):
        ids = await client.zrangebyscore(f"{base}:beats", int(codec.us(alive_since)), "+inf")
        if not ids:
            return []
        records = await client.hmget(f"{base}:workers", sorted(ids))
    return [codec.worker_from_json(r) for r in records if r is not None]
