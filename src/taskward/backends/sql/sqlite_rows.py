"""Rows ↔ domain values for the SQLite backend: times as epoch seconds, JSON as text.

A job row holds the 26 columns of ``queries.sql`` in the order of :class:`~taskward.jobs.Job`'s
fields. Decoding is on the hot path of ``fetch``, so the common empty JSON values skip the
parser and states are looked up in a dict.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from taskward.jobs import (
    ErrorRecord,
    Job,
    JobFilter,
    JobState,
    JobUpdate,
    NewJob,
    Schedule,
    WorkerInfo,
)

__all__ = [
    "JOB_FIELDS",
    "build_job",
    "claim_order",
    "dumps",
    "epoch",
    "insert_params",
    "job_from_new",
    "job_from_row",
    "order_by",
    "schedule_from_row",
    "schedule_params",
    "update_params",
    "worker_from_row",
    "worker_params",
]

Row = Sequence[Any]
_STATES: Final = {state.value: state for state in JobState}
_SORT_COLUMNS: Final = {
    "id": "id",
    "inserted_at": "inserted_at",
    "scheduled_at": "scheduled_at",
    "attempted_at": "attempted_at",
    "completed_at": "completed_at",
    "priority": "priority",
    "attempt": "attempt",
}
_NULLABLE_SORT_COLUMNS: Final = frozenset({"attempted_at", "completed_at"})
_encoder: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
JOB_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Job))


def _job_builder() -> Callable[[tuple[Any, ...]], Job]:
    """Return a function building a :class:`Job` from all its field values, in field order.

    Bulk inserts build one Job per row, and the generated keyword ``__init__`` of a frozen
    26-field dataclass costs twice as much as setting the slots directly (about 2 µs per job,
    a fifth of the budget of a 100,000 jobs/s bulk insert). The result is the same value;
    if ``Job`` ever gains a ``__post_init__`` or loses its slots, the real constructor is used.
    """
    slots = [Job.__dict__.get(name) for name in JOB_FIELDS]
    if hasattr(Job, "__post_init__") or not all(hasattr(s, "__set__") for s in slots):
        return lambda values: Job(**dict(zip(JOB_FIELDS, values, strict=True)))
    setters = tuple(slot.__set__ for slot in slots)  # type: ignore[union-attr]
    new = object.__new__

    def build(values: tuple[Any, ...]) -> Job:
        if len(values) != len(setters):
            raise ValueError(f"a Job has {len(setters)} fields, got {len(values)} values")
        job = new(Job)
        for setter, value in zip(setters, values):  # noqa: B905 - length checked above
            setter(job, value)
        return job

    return build


build_job: Final = _job_builder()


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text."""
    return _encoder.encode(value)


def epoch(when: datetime) -> float:
    """Return an aware datetime as unix epoch seconds (what the REAL time columns hold)."""
    return when.timestamp()


def _opt_epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _opt_time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _list(text: str) -> list[Any]:
    return [] if text == "[]" else list(json.loads(text))


def _dict(text: str) -> dict[str, Any]:
    return {} if text == "{}" else dict(json.loads(text))


def _opt_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _errors(text: str) -> tuple[ErrorRecord, ...]:
    return () if text == "[]" else tuple(ErrorRecord.from_dict(e) for e in json.loads(text))


def job_from_row(row: Row) -> Job:
    """Build a :class:`Job` from the 26 job columns."""
    return build_job(
        (
            row[0],
            row[1],
            row[2],
            _list(row[3]),
            _dict(row[4]),
            _STATES[row[5]],
            row[6],
            row[7],
            row[8],
            _time(row[9]),
            _time(row[10]),
            _opt_time(row[11]),
            _opt_time(row[12]),
            _opt_time(row[13]),
            _opt_time(row[14]),
            row[15],
            _opt_time(row[16]),
            _errors(row[17]),
            _opt_json(row[18]),
            _opt_json(row[19]),
            row[20],
            tuple(_list(row[21])),
            _dict(row[22]),
            tuple(_list(row[23])),
            row[24],
            bool(row[25]),
        )
    )


def claim_order(row: Row) -> tuple[int, float, int]:
    """Sort key of a claimed job row: priority, then scheduled time, then id."""
    return (row[6], row[9], row[0])


def insert_params(new: NewJob, job_id: int, now: float) -> tuple[Any, ...]:
    """Parameters of ``insert_job`` for ``new`` stored as ``job_id`` at ``now`` (epoch)."""
    return (
        job_id,
        new.task,
        new.queue,
        new.args_json if new.args_json is not None else dumps(new.args),
        new.kwargs_json if new.kwargs_json is not None else dumps(new.kwargs),
        new.state.value,
        new.priority,
        new.max_attempts,
        new.scheduled_at.timestamp(),
        now,
        new.unique_key,
        dumps(list(new.tags)) if new.tags else "[]",
        dumps(new.meta) if new.meta else "{}",
        dumps(list(new.depends_on)) if new.depends_on else "[]",
        new.timeout,
    )


def job_from_new(new: NewJob, job_id: int, now: datetime) -> Job:
    """The job that :func:`insert_params` stores, built without reading it back."""
    return build_job(
        (
            job_id,
            new.task,
            new.queue,
            new.args,
            new.kwargs,
            new.state,
            new.priority,
            0,  # attempt
            new.max_attempts,
            new.scheduled_at,
            now,  # inserted_at
            None,  # attempted_at
            None,  # completed_at
            None,  # cancelled_at
            None,  # discarded_at
            None,  # attempted_by
            None,  # lease_until
            (),  # errors
            None,  # result
            None,  # progress
            new.unique_key,
            new.tags,
            new.meta,
            new.depends_on,
            new.timeout,
            False,  # cancel_requested
        )
    )


def update_params(update: JobUpdate, worker_id: str) -> tuple[Any, ...]:
    """Parameters of ``finish_job``: the fence, then the outcome as memory.py's ``_apply``."""
    state = update.state
    at = update.at.timestamp()
    return (
        update.job_id,
        update.attempt,
        worker_id,
        _opt_epoch(update.lease_expired_before),
        state.value,
        1 if update.refund_attempt else 0,
        _opt_epoch(update.scheduled_at),
        None if update.error is None else dumps(update.error.to_dict()),
        dumps(update.result) if state is JobState.COMPLETED else None,
        at if state in (JobState.COMPLETED, JobState.FAILED) else None,
        at if state is JobState.CANCELLED else None,
        at if state is JobState.DISCARDED else None,
    )


def order_by(filter: JobFilter) -> str:
    """ORDER BY text for a listing, from the whitelisted sort columns only.

    Same order as the reference backend: by the column, then by id, both in the requested
    direction; jobs without a value (never attempted, never completed) last either way.
    """
    column = _SORT_COLUMNS[filter.sort_field]
    direction = "DESC" if filter.descending else "ASC"
    if column == "id":
        return f"id {direction}"
    nulls = " NULLS LAST" if column in _NULLABLE_SORT_COLUMNS else ""
    return f"{column} {direction}{nulls}, id {direction}"


def schedule_params(schedule: Schedule) -> tuple[Any, ...]:
    """Parameters of ``save_schedule``."""
    return (
        schedule.name,
        schedule.task,
        schedule.cron,
        schedule.timezone,
        dumps(schedule.args),
        dumps(schedule.kwargs),
        schedule.queue,
        schedule.priority,
        schedule.max_attempts,
        _opt_epoch(schedule.created_at),
    )


def schedule_from_row(row: Row) -> Schedule:
    """Build a :class:`Schedule` from a ``list_schedules`` row."""
    return Schedule(
        name=row[0],
        task=row[1],
        cron=row[2],
        timezone=row[3],
        args=_list(row[4]),
        kwargs=_dict(row[5]),
        queue=row[6],
        priority=row[7],
        max_attempts=row[8],
        created_at=_opt_time(row[9]),
    )


def worker_params(info: WorkerInfo) -> tuple[Any, ...]:
    """Parameters of ``record_worker``."""
    return (
        info.id,
        info.hostname,
        info.pid,
        dumps(info.queues),
        info.started_at.timestamp(),
        info.heartbeat_at.timestamp(),
        info.running,
    )


def worker_from_row(row: Row) -> WorkerInfo:
    """Build a :class:`WorkerInfo` from a ``list_workers`` row."""
    return WorkerInfo(
        id=row[0],
        hostname=row[1],
        pid=row[2],
        queues=_dict(row[3]),
        started_at=_time(row[4]),
        heartbeat_at=_time(row[5]),
        running=row[6],
    )
