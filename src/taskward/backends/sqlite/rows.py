"""Rows ↔ domain values for the SQLite backend: times as epoch seconds, JSON as text.

A job row holds the 27 columns of ``queries.sql`` in the order of :class:`~taskward.jobs.Job`'s
fields. Decoding is on the hot path of ``fetch``, so the common empty JSON values skip the
parser and states are looked up in a dict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from taskward.backends.sql.rows import JOB_FIELDS, build_job, job_from_new, order_by
from taskward.jobs import (
    CatchUp,
    ErrorRecord,
    Job,
    JobState,
    JobUpdate,
    NewJob,
    Overlap,
    Reseal,
    Schedule,
    WorkerInfo,
)
from taskward.limits import WAIT_REASONS, PartitionBy, QueueFlow, QueueLimits, Rate
from taskward.serialize import UnreadablePayload, load_args, load_kwargs

__all__ = [
    "JOB_FIELDS",
    "build_job",
    "claim_order",
    "dumps",
    "epoch",
    "flow_from_row",
    "insert_params",
    "job_from_new",
    "job_from_row",
    "key_flow",
    "key_of_stored",
    "limits_from_row",
    "minute_time",
    "order_by",
    "schedule_from_row",
    "schedule_params",
    "update_params",
    "waits_from_row",
    "worker_from_row",
    "worker_params",
]

Row = Sequence[Any]
_STATES: Final = {state.value: state for state in JobState}
_encoder: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Encode ``value`` as compact JSON text."""
    return _encoder.encode(value)


def minute_time(minute: int) -> datetime:
    """The start of a minute counted from the epoch (``finished_per_minute``'s buckets)."""
    return datetime.fromtimestamp(minute * 60, UTC)


def epoch(when: datetime) -> float:
    """Return an aware datetime as unix epoch seconds (what the REAL time columns hold)."""
    return when.timestamp()


def _opt_epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _opt_time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _list(text: str) -> Any:
    # Stored args are untrusted: bytes or non-JSON come back as UnreadablePayload (the
    # executor discards such a job with the reason) instead of raising out of every read.
    return [] if text == "[]" else load_args(text)


def _dict(text: str) -> Any:
    return {} if text == "{}" else load_kwargs(text)


def _opt_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _errors(text: str) -> tuple[ErrorRecord, ...]:
    return () if text == "[]" else tuple(ErrorRecord.from_dict(e) for e in json.loads(text))


def job_from_row(row: Row) -> Job:
    """Build a :class:`Job` from the 27 job columns."""
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
            row[26],
        )
    )


def claim_order(row: Row) -> tuple[int, float, int]:
    """Sort key of a claimed job row: priority, then scheduled time, then id."""
    return (row[6], row[9], row[0])


def limits_from_row(row: Row) -> QueueLimits:
    """Build :class:`QueueLimits` from ``global_limit, rate_count, rate_period_ms, partition_by``.

    The rule is stored as its text (``str(PartitionBy)``).
    """
    global_limit, rate_count, rate_period_ms, rule = row
    rate = None if rate_count is None else Rate.of_ms(rate_count, rate_period_ms)
    return QueueLimits(
        global_limit=global_limit, rate_limit=rate, partition_by=PartitionBy.parse(rule)
    )


def flow_from_row(row: Row) -> QueueFlow:
    """Build :class:`QueueFlow` from a queue's row of ``taskward_queue_limits``.

    The columns: those of :func:`limits_from_row`, then ``held_until, window_index,
    window_used`` (any after them are ignored).
    """
    return QueueFlow(
        limits=limits_from_row(row[:4]),
        held_until=_opt_time(row[4]),
        window=row[5],
        window_used=row[6],
    )


def waits_from_row(row: Row) -> dict[str, int]:
    """A queue's waits by reason from ``waits_held, waits_global_limit, waits_rate_limit``.

    Only the reasons counted at least once appear.
    """
    return {reason: n for reason, n in zip(WAIT_REASONS, row, strict=True) if n}


def key_flow(limits: QueueLimits, row: Row, *, running: tuple[int, ...] | None = None) -> QueueFlow:
    """One key's :class:`QueueFlow`: its queue's ``limits`` with the key's own state.

    ``row``: the key's ``held_until, window_index, window_used`` (NULL, NULL, 0 for a key
    without a row in ``taskward_partition_keys``).
    """
    return QueueFlow(
        limits=limits,
        held_until=_opt_time(row[0]),
        window=row[1],
        window_used=row[2],
        running=running,
    )


def key_of_stored(rule: PartitionBy, args: str, kwargs: str) -> str:
    """The key ``rule`` reads from a job's stored ``args`` and ``kwargs`` columns.

    Arguments that cannot be read (not JSON: the job will be discarded when it runs) count as
    absent: the key is then ``""``, as for a job that lacks the argument.
    """
    values = _list(args)
    named = _dict(kwargs)
    return rule.key_of(
        [] if isinstance(values, UnreadablePayload) else values,
        {} if isinstance(named, UnreadablePayload) else named,
    )


def insert_params(new: NewJob, job_id: int, now: float, key: str | None = None) -> tuple[Any, ...]:
    """Parameters of ``insert_job_row`` for ``new`` stored as ``job_id`` at ``now`` (epoch).

    ``key``: the job's partition key (the producer's, or the one its queue's rule gave).
    """
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
        key,
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


def reseal_params(r: Reseal) -> tuple[Any, ...]:
    """Parameters of ``reseal_job``: the fence, then each value (None keeps the stored one)."""
    return (
        r.job_id,
        r.state.value,
        r.attempt,
        r.errors_count,
        None if r.kwargs is None else dumps(r.kwargs),
        None if r.result is None else dumps(r.result),
        None if r.errors is None else dumps([e.to_dict() for e in r.errors]),
        r.envelope,
    )


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
        str(schedule.catch_up),
        schedule.max_catch_up,
        schedule.catch_up_within,
        str(schedule.overlap),
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
        catch_up=CatchUp(row[10]),
        max_catch_up=row[11],
        catch_up_within=row[12],
        overlap=Overlap(row[13]),
        last_fire_at=_opt_time(row[14]),
        last_job_id=row[15],
        paused=bool(row[16]),
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
