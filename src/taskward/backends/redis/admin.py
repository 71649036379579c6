"""Queue controls, limits, schedules and the worker registry of the Redis backend.

None of them changes a job's state, so each is a plain command or a MULTI/EXEC pipeline, not
a script. The keys are in docs/DESIGN.md ("Redis backend as built").
"""

from __future__ import annotations

from datetime import datetime

from taskward.backends.redis import codec
from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import StoreError, translated
from taskward.jobs import Schedule, WorkerInfo
from taskward.limits import QueueLimits

__all__ = [
    "delete_schedule",
    "list_schedules",
    "list_workers",
    "pause_queue",
    "paused_queues",
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

    A raised or cleared limit is published on the wake channel: a worker held back by the
    old one may claim now.
    """
    client = await connections.ready()
    key = f"{connections.base}:limits"
    with translated(connections.config):
        pipe = client.pipeline(transaction=True)  # the old value, read with the write
        pipe.hget(key, queue)
        if limits.global_limit is None:  # empty limits: clear them
            pipe.hdel(key, queue)
        else:
            pipe.hset(key, queue, str(int(limits.global_limit)))
        old, _ = await pipe.execute()
        raised = old is not None and (
            limits.global_limit is None or not _whole(old) or limits.global_limit > int(old)
        )
        if raised:
            await client.publish(f"{connections.base}:wake", queue)
    return raised


async def queue_limits(connections: Connections) -> dict[str, QueueLimits]:
    """Return the limits of every queue that has one."""
    client = await connections.ready()
    with translated(connections.config):
        stored = await client.hgetall(f"{connections.base}:limits")
    return {queue: _limits_of(queue, value) for queue, value in stored.items()}


def _whole(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _limits_of(queue: str, value: str) -> QueueLimits:
    if not _whole(value) or int(value) < 1:
        raise StoreError(
            f"the limit of queue {queue!r} in the store's limits hash is {value!r}, not a "
            "whole number: something other than taskward wrote it. Set the queue's limits again"
        )
    return QueueLimits(global_limit=int(value))


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
