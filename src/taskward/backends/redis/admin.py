"""Queue controls, limits, holds, schedules and the worker registry of the Redis backend.

None of them changes a job's state, so each is a plain command or a MULTI/EXEC pipeline, except
limits and holds: those are scripts (``limits.lua``, ``hold.lua``) because a hold only grows
(compare and write in one step) and limits span two hashes whose types are checked before either
is written. The keys are in docs/DESIGN.md ("Redis backend as built").
"""

from __future__ import annotations

import re
from datetime import datetime

from taskward.backends.redis import codec
from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import StoreError, translated
from taskward.errors import InvalidOptions
from taskward.jobs import Schedule, WorkerInfo
from taskward.limits import QueueFlow, QueueLimits, Rate

__all__ = [
    "delete_schedule",
    "hold_queue",
    "list_schedules",
    "list_workers",
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
    """Store ``queue``'s limits (``B:limits``, ``B:flow``), or clear them; True if raised or cleared.

    The queue's hold is left alone. A raised or cleared limit is published on the wake channel
    (by ``limits.lua``): a worker held back by the old one may claim now.
    """
    rate = limits.rate_limit
    raised = await connections.run(
        "limits",
        (
            queue,
            "" if limits.global_limit is None else str(int(limits.global_limit)),
            "" if rate is None else f"{rate.count}:{rate.period_ms}",
        ),
    )
    return bool(raised == 1)


async def hold_queue(connections: Connections, queue: str, *, until: datetime | None) -> None:
    """Hold back ``queue`` until ``until`` (the later hold wins); None releases it (published)."""
    await connections.run("hold", (queue, "" if until is None else codec.us(until)))


async def queue_limits(connections: Connections) -> dict[str, QueueLimits]:
    """Return the limits of every queue that has one (a queue with only a hold has none)."""
    flows = await queue_flow(connections)
    return {queue: flow.limits for queue, flow in flows.items() if not flow.limits.is_empty}


async def queue_flow(connections: Connections) -> dict[str, QueueFlow]:
    """Limits, hold and rate window of every queue with limits or a hold."""
    flat_limits, flat_flow = await connections.run("flow", ())  # one snapshot of both hashes
    globals_ = _pairs(flat_limits)
    fields: dict[str, dict[str, str]] = {}
    for name, value in _pairs(flat_flow).items():
        kind, _, queue = name.partition(":")
        if kind in _FLOW_FIELDS:
            fields.setdefault(queue, {})[kind] = value
    out: dict[str, QueueFlow] = {}
    for queue in sorted({*globals_, *fields}):
        stored = fields.get(queue, {})
        limit = globals_.get(queue)
        limits = QueueLimits(
            global_limit=None if limit is None else _limit_of(queue, limit),
            rate_limit=_rate_of(queue, stored["rate"]) if "rate" in stored else None,
        )
        held = stored.get("hold")
        if limits.is_empty and held is None:
            continue  # a window left without its rate: nothing to show
        window, used = _window_of(queue, stored["window"]) if "window" in stored else (None, 0)
        out[queue] = QueueFlow(
            limits=limits,
            held_until=None if held is None else _hold_of(queue, held),
            window=window,
            window_used=used,
        )
    return out


_FLOW_FIELDS = frozenset({"rate", "hold", "window"})
_RATE_RE = re.compile(r"([0-9]+):([0-9]+)")
_WINDOW_RE = re.compile(r"(-?[0-9]+):([0-9]+)")
_HOLD_RE = re.compile(r"-?[0-9]+")


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _bad(queue: str, what: str, value: str, expected: str) -> StoreError:
    if what == "limit":
        where, fix = "limits", "Set the queue's limits again"
    elif what == "hold":
        where, fix = "flow", "Release the queue's hold (hold_queue with until=None)"
    elif what == "rate window":  # cleared with the rate
        where, fix = "flow", "Clear the queue's limits, then set them again"
    else:
        where, fix = "flow", "Set the queue's limits again"
    return StoreError(
        f"the {what} of queue {queue!r} in the store's {where} hash is {value!r}, not "
        f"{expected}: something other than taskward wrote it. {fix}"
    )


def _limit_of(queue: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise _bad(queue, "limit", value, "a whole number")
    return int(value)


def _rate_of(queue: str, value: str) -> Rate:
    match = _RATE_RE.fullmatch(value)
    if match is None:
        raise _bad(queue, "rate", value, "count:period_ms")
    try:
        return Rate.of_ms(int(match[1]), int(match[2]))
    except InvalidOptions:
        raise _bad(queue, "rate", value, "a valid count:period_ms") from None


def _window_of(queue: str, value: str) -> tuple[int, int]:
    match = _WINDOW_RE.fullmatch(value)
    if match is None:
        raise _bad(queue, "rate window", value, "window:used")
    return int(match[1]), int(match[2])


def _hold_of(queue: str, value: str) -> datetime:
    if _HOLD_RE.fullmatch(value) is None:
        raise _bad(queue, "hold", value, "a time in microseconds")
    try:
        return codec.time_of(value)
    except OverflowError:
        raise _bad(queue, "hold", value, "a time taskward can hold") from None


async def save_schedule(connections: Connections, schedule: Schedule) -> None:
    """Create or replace a recurring schedule by name."""
    client = await connections.ready()
    with translated(connections.config):
        await client.hset(
            f"{connections.base}:schedules", schedule.name, codec.schedule_json(schedule)
        )


async def delete_schedule(connections: Connections, name: str) -> bool:
    """Delete a recurring schedule; False if there was none."""
    client = await connections.ready()
    with translated(connections.config):
        return bool(await client.hdel(f"{connections.base}:schedules", name))


async def list_schedules(connections: Connections) -> list[Schedule]:
    """Return every recurring schedule, by name."""
    client = await connections.ready()
    with translated(connections.config):
        stored = await client.hgetall(f"{connections.base}:schedules")
    return [codec.schedule_from_json(stored[name]) for name in sorted(stored)]


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
