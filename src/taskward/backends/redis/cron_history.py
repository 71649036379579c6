"""Cron fire history on Redis: the records, and the state a schedule's JSON does not hold.

Writes go through ``lua/cron_fires.lua`` (records, trim and state in one step) and
``lua/cron_pause.lua`` (the pause, only for a schedule that exists); reads are plain
commands. ``B:cronhist:<name>`` (sorted set by planned time, members the records' JSON),
``B:cronstate`` (name -> ``<last fire us>|<last job id>``) and ``B:cronpaused`` (set of the
paused schedules' names) live beside ``B:schedules``, so a save that replaces the schedule's
JSON keeps them; :func:`forget` drops all three with the schedule (one MULTI/EXEC with its
``HDEL``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskward.backends.redis import codec
from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import translated
from taskward.jobs import CronFire, CronOutcome, Schedule

__all__ = ["forget", "history", "record", "set_paused", "with_state"]


def _history_key(connections: Connections, name: str) -> str:
    return f"{connections.base}:cronhist:{name}"


async def record(
    connections: Connections,
    name: str,
    fires: Sequence[CronFire],
    *,
    now: datetime,
    keep: int,
) -> None:
    """Append ``fires`` to ``name``'s history (see ``Backend.record_cron_fires``)."""
    if not fires:
        return
    with_jobs = [f for f in fires if f.job_id is not None]
    last_job = max(with_jobs, key=lambda f: f.planned_at).job_id if with_jobs else None
    args: list[Any] = [
        name,
        str(max(keep, 1)),
        codec.us(max(f.planned_at for f in fires)),
        "" if last_job is None else str(last_job),
    ]
    for fire in fires:
        args += [codec.us(fire.planned_at), _record_json(fire, now)]
    await connections.run("cron_fires", args)


def _record_json(fire: CronFire, now: datetime) -> str:
    return json.dumps(
        {
            "p": codec.us(fire.planned_at),
            "o": str(fire.outcome),
            "j": fire.job_id,
            "r": fire.reason,
            "c": fire.count,
            "t": codec.us(now),
        },
        separators=(",", ":"),
    )


async def history(connections: Connections, name: str, *, limit: int) -> list[CronFire]:
    """The newest ``limit`` records of ``name``, newest planned time first."""
    if limit < 1:
        return []
    client = await connections.ready()
    with translated(connections.config):
        members = await client.zrevrange(_history_key(connections, name), 0, limit - 1)
    found = []
    for member in members:
        data = json.loads(member)
        found.append(
            CronFire(
                planned_at=codec.time_of(data["p"]),
                outcome=CronOutcome(data["o"]),
                job_id=data["j"],
                reason=data["r"],
                count=data["c"],
                recorded_at=codec.time_of(data["t"]),
            )
        )
    return found


async def set_paused(connections: Connections, name: str, paused: bool) -> bool:
    """Pause or resume schedule ``name``; False if there is none."""
    return bool(await connections.run("cron_pause", [name, "1" if paused else "0"]))


async def with_state(connections: Connections, schedules: list[Schedule]) -> list[Schedule]:
    """``schedules`` carrying their stored last fire time, last job id and pause."""
    if not schedules:
        return schedules
    client = await connections.ready()
    base = connections.base
    with translated(connections.config):
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(f"{base}:cronstate")
        pipe.smembers(f"{base}:cronpaused")
        stored, paused = await pipe.execute()
    found = []
    for schedule in schedules:
        schedule = dataclasses.replace(schedule, paused=schedule.name in paused)
        text = stored.get(schedule.name)
        if text is None:
            found.append(schedule)
            continue
        fire, _, job = text.partition("|")
        found.append(
            dataclasses.replace(
                schedule,
                last_fire_at=codec.time_of(fire),
                last_job_id=int(job) if job else None,
            )
        )
    return found


async def forget(connections: Connections, name: str) -> bool:
    """Delete schedule ``name`` with its history, state and pause; False if there was none."""
    client = await connections.ready()
    base = connections.base
    with translated(connections.config):
        pipe = client.pipeline(transaction=True)
        pipe.hdel(f"{base}:schedules", name)
        pipe.delete(_history_key(connections, name))
        pipe.hdel(f"{base}:cronstate", name)
        pipe.srem(f"{base}:cronpaused", name)
        deleted, _, _, _ = await pipe.execute()
    return bool(deleted)
