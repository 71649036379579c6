"""Job hashes ↔ domain values, and the argument lists of the Lua scripts.

A job is one Redis hash whose fields are named after :class:`~taskward.jobs.Job`'s; a field
that is absent holds the default (None, an empty list or object). Times are integer
microseconds since the epoch, written as decimal text: exact in both directions, and exact as
a sorted-set score too (below 2**53). JSON fields hold the text taskward wrote; stored args
and kwargs are read without trusting them (``load_args``), as on every backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from taskward.backends.sql.rows import build_job, job_from_new
from taskward.jobs import (
    CatchUp,
    ErrorRecord,
    Job,
    JobEdit,
    JobState,
    JobUpdate,
    NewJob,
    Overlap,
    Schedule,
    WorkerInfo,
)
from taskward.serialize import load_args, load_kwargs

__all__ = [
    "INSERT_WIDTH",
    "dumps",
    "finish_args",
    "insert_args",
    "job_from_flat",
    "job_from_new",
    "schedule_from_json",
    "schedule_json",
    "time_of",
    "us",
    "worker_from_json",
    "worker_json",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US: Final = timedelta(microseconds=1)
INSERT_WIDTH: Final = 15
_STATES: Final = {state.value: state for state in JobState}
_encoder: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text."""
    return _encoder.encode(value)


def us(when: datetime) -> str:
    """An aware datetime as integer microseconds since the epoch, in decimal text."""
    return str((when - EPOCH) // ONE_US)


def time_of(value: str | bytes) -> datetime:
    """The datetime of :func:`us` text."""
    return EPOCH + timedelta(microseconds=int(value))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_time(fields: dict[str, Any], name: str) -> datetime | None:
    value = fields.get(name)
    return None if value is None else time_of(value)


def _json(fields: dict[str, Any], name: str, default: Any) -> Any:
    value = fields.get(name)
    return default if value is None else json.loads(value)


def job_from_flat(flat: Sequence[Any]) -> Job:
    """Build a :class:`Job` from a flat HGETALL reply (field, value, field, value…)."""
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return job_from_fields(fields)


def job_from_fields(fields: dict[str, Any]) -> Job:
    """Build a :class:`Job` from a job hash decoded as text (field -> value)."""
    errors = fields.get("errors")
    timeout = fields.get("timeout")
    args = fields.get("args")
    kwargs = fields.get("kwargs")
    return build_job(
        (
            int(fields["id"]),
            fields["task"],
            fields["queue"],
            [] if args == "[]" else load_args(args),
            {} if kwargs == "{}" else load_kwargs(kwargs),
            _STATES[fields["state"]],
            int(fields["priority"]),
            int(fields["attempt"]),
            int(fields["max_attempts"]),
            time_of(fields["scheduled_at"]),
            time_of(fields["inserted_at"]),
            _opt_time(fields, "attempted_at"),
            _opt_time(fields, "completed_at"),
            _opt_time(fields, "cancelled_at"),
            _opt_time(fields, "discarded_at"),
            fields.get("attempted_by"),
            _opt_time(fields, "lease_until"),
            () if errors is None else tuple(ErrorRecord.from_dict(e) for e in json.loads(errors)),
            _json(fields, "result", None),
            _json(fields, "progress", None),
            fields.get("unique_key"),
            tuple(_json(fields, "tags", ())),
            _json(fields, "meta", {}),
            tuple(_json(fields, "depends_on", ())),
            None if timeout is None else float(timeout),
            fields.get("cancel_requested") == "1",
            fields.get("partition_key"),
        )
    )


def insert_args(new: NewJob) -> list[str]:
    """The :data:`INSERT_WIDTH` fields of one job in ``insert.lua``'s argument list."""
    window = new.unique_window
    return [
        new.task,
        new.queue,
        new.args_json if new.args_json is not None else dumps(new.args),
        new.kwargs_json if new.kwargs_json is not None else dumps(new.kwargs),
        new.state.value,
        str(new.priority),
        str(new.max_attempts),
        us(new.scheduled_at),
        new.unique_key or "",
        "" if window is None else str(round(window * 1_000_000)),
        dumps(list(new.tags)) if new.tags else "",
        dumps(new.meta) if new.meta else "",
        dumps(list(new.depends_on)) if new.depends_on else "",
        "" if new.timeout is None else repr(float(new.timeout)),
        # The producer's key, marked: '' is a key too. None: the store reads it by the rule.
        "" if new.partition_key is None else "=" + new.partition_key,
    ]


def finish_args(update: JobUpdate) -> list[str]:
    """The 10 fields of one outcome in ``finish.lua``'s argument list.

    The last is empty unless the job is a workflow step others wait for (``dependents``): then
    the outcome's time as ISO JSON text, which a propagated cancel records.
    """
    state = update.state
    expired = update.lease_expired_before
    return [
        str(update.job_id),
        str(update.attempt),
        "" if expired is None else us(expired),
        state.value,
        "1" if update.refund_attempt else "0",
        "" if update.scheduled_at is None else us(update.scheduled_at),
        "" if update.error is None else dumps(update.error.to_dict()),
        dumps(update.result) if state is JobState.COMPLETED else "",
        us(update.at),
        json.dumps(update.at.isoformat()) if update.dependents else "",
    ]


def schedule_json(schedule: Schedule) -> str:
    """A schedule as the JSON text its hash field holds."""
    return dumps(
        {
            "name": schedule.name,
            "task": schedule.task,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "args": schedule.args,
            "kwargs": schedule.kwargs,
            "queue": schedule.queue,
            "priority": schedule.priority,
            "max_attempts": schedule.max_attempts,
            "created_at": None if schedule.created_at is None else us(schedule.created_at),
            "catch_up": str(schedule.catch_up),
            "max_catch_up": schedule.max_catch_up,
            "catch_up_within": schedule.catch_up_within,
            "overlap": str(schedule.overlap),
        }
    )


def schedule_from_json(text: str) -> Schedule:
    """The schedule of :func:`schedule_json` text."""
    data = json.loads(text)
    created = data.get("created_at")
    return Schedule(
        name=data["name"],
        task=data["task"],
        cron=data["cron"],
        timezone=data["timezone"],
        args=data["args"],
        kwargs=data["kwargs"],
        queue=data["queue"],
        priority=data["priority"],
        max_attempts=data["max_attempts"],
        created_at=None if created is None else time_of(created),
        # Absent in a schedule saved before issue 25: the defaults are the old behaviour.
        catch_up=CatchUp(data.get("catch_up", "skip")),
        max_catch_up=data.get("max_catch_up", 10),
        catch_up_within=data.get("catch_up_within"),
        overlap=Overlap(data.get("overlap", "allow")),
    )


def worker_json(info: WorkerInfo) -> str:
    """A worker record as the JSON text its hash field holds."""
    return dumps(
        {
            "id": info.id,
            "hostname": info.hostname,
            "pid": info.pid,
            "queues": info.queues,
            "started_at": us(info.started_at),
            "heartbeat_at": us(info.heartbeat_at),
            "running": info.running,
        }
    )


def worker_from_json(text: str) -> WorkerInfo:
    """The worker record of :func:`worker_json` text."""
    data = json.loads(text)
    return WorkerInfo(
        id=data["id"],
        hostname=data["hostname"],
        pid=data["pid"],
        queues=data["queues"],
        started_at=time_of(data["started_at"]),
        heartbeat_at=time_of(data["heartbeat_at"]),
        running=data["running"],
    )


def edit_args(edit: JobEdit, read_meta: str | None, meta: dict[str, Any]) -> list[str]:
    """``retry.lua``'s arguments after the time for ``edit`` (ARGV[4] on; see the script).

    ``read_meta``: the job's meta field as read (None: absent), which the script compares
    with the stored one; ``meta``: the meta to store, its replay record appended.
    """
    args_json = edit.args_json if edit.args_json is not None else dumps(edit.args)
    kwargs_json = edit.kwargs_json if edit.kwargs_json is not None else dumps(edit.kwargs)
    return [
        "1",
        "" if read_meta is None else "=" + read_meta,
        dumps(meta),
        "" if edit.args is None else args_json,
        "" if edit.kwargs is None else kwargs_json,
        edit.queue or "",
        "" if edit.priority is None else str(edit.priority),
        "1" if edit.rekeys else "",
        "" if edit.partition_key is None else "=" + edit.partition_key,
    ]
