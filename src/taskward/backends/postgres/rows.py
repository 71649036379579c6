"""Rows ↔ domain values for the PostgreSQL backend.

psycopg already decodes ``timestamptz`` to aware datetimes, ``json`` to Python values and arrays
to lists; this module puts the 27 job columns (``{job_columns}`` in ``queries.sql``, in the order
of :class:`~taskward.jobs.Job`'s fields, which is also the table's) into a :class:`Job`, turns
batches of new jobs into COPY lines or one JSON array of rows, and batches of outcomes into the
column arrays that one ``unnest`` statement writes.

Text headed for PostgreSQL is made storable first: PostgreSQL text cannot hold NUL characters
and UTF-8 cannot hold lone surrogates, and one such error message must never poison a batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from taskward import states
from taskward.backends.sql.rows import build_job, order_by
from taskward.jobs import (
    CatchUp,
    EncodedPayload,
    ErrorRecord,
    Job,
    JobState,
    JobUpdate,
    NewJob,
    NewJobBatch,
    Overlap,
    Reseal,
    Schedule,
    WorkerInfo,
)
from taskward.limits import PartitionBy

__all__ = [
    "JOB_COLUMNS",
    "batch_keys",
    "batches",
    "claim_order",
    "copy_rows",
    "dumps",
    "insert_params",
    "insert_rows",
    "insert_statement",
    "job_from_json",
    "job_from_row",
    "order_by",
    "schedule_from_row",
    "schedule_params",
    "storable_text",
    "update_arrays",
    "worker_from_row",
    "worker_params",
]

Row = Sequence[Any]
JOB_COLUMNS: Final = (
    "id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at, "
    "inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by, "
    "lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout, "
    "cancel_requested, partition_key"
)
_STATES: Final = {state.value: state for state in JobState}
_JOB_COLUMN_NAMES: Final = tuple(name.strip() for name in JOB_COLUMNS.split(","))
# scheduled_at, inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, lease_until
_TIMESTAMP_COLUMNS: Final = (9, 10, 11, 12, 13, 14, 16)
# ensure_ascii: the JSON text is pure ASCII, so a lone surrogate becomes an escape, not an
# unencodable character; PostgreSQL's json type accepts every escape json.dumps writes.
_encoder: Final = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Encode ``value`` as compact, ASCII-only JSON text."""
    return _encoder.encode(value)


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL text can hold it: lone surrogates and NUL characters escaped."""
    text = states.storable_text(text)
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def reseal_arrays(rewrites: Sequence[Reseal]) -> dict[str, list[Any]]:
    """The column arrays of ``reseal_jobs`` (None keeps a stored value)."""
    return {
        "ids": [r.job_id for r in rewrites],
        "states": [r.state.value for r in rewrites],
        "attempts": [r.attempt for r in rewrites],
        "counts": [r.errors_count for r in rewrites],
        "kwargs": [None if r.kwargs is None else dumps(r.kwargs) for r in rewrites],
        "results": [None if r.result is None else dumps(r.result) for r in rewrites],
        "errors": [
            None if r.errors is None else "[" + ",".join(map(_error_json, r.errors)) + "]"
            for r in rewrites
        ],
        "envelopes": [r.envelope for r in rewrites],
    }


def _error_json(error: ErrorRecord) -> str:
    record = error.to_dict()
    record["message"] = storable_text(record["message"])
    record["kind"] = storable_text(record["kind"])
    if record["traceback"] is not None:
        record["traceback"] = storable_text(record["traceback"])
    # jsonb rejects \u0000 even as an escape; storable_text removed every NUL already.
    return dumps(record)


def job_from_row(row: Row) -> Job:
    """Build a :class:`Job` from the 27 job columns (more may follow; they are not read)."""
    errors = row[17]
    return build_job(
        (
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            _STATES[row[5]],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            row[11],
            row[12],
            row[13],
            row[14],
            row[15],
            row[16],
            tuple(ErrorRecord.from_dict(e) for e in errors) if errors else (),
            row[18],
            row[19],
            row[20],
            tuple(row[21]),
            row[22],
            tuple(row[23]),
            row[24],
            row[25],
            row[26],
        )
    )


def job_from_json(text: str) -> Job:
    """Build a :class:`Job` from ``row_to_json`` of the 27 job columns (a dispatched job).

    JSON carries timestamps as ISO 8601 text (the session is UTC), arrays as lists, and the
    json columns as the values themselves, so each column gets what the binary row has.
    """
    obj = json.loads(text)
    row = [obj[name] for name in _JOB_COLUMN_NAMES]
    for index in _TIMESTAMP_COLUMNS:
        if row[index] is not None:
            row[index] = datetime.fromisoformat(row[index])
    return job_from_row(row)


def claim_order(row: Row) -> tuple[Any, ...]:
    """Sort key of a claimed job row: priority, then scheduled time, then id."""
    return (row[6], row[9], row[0])


def _payload(new: NewJob) -> tuple[str, str]:
    args = new.args_json if new.args_json is not None else dumps(new.args)
    kwargs = new.kwargs_json if new.kwargs_json is not None else dumps(new.kwargs)
    return args, kwargs


def batches(jobs: Sequence[NewJob]) -> Iterator[NewJobBatch]:
    """``jobs`` as batches for :func:`copy_rows`: runs of jobs alike but for their arguments.

    Lazy: a job that cannot be encoded fails inside the COPY, which then stores nothing.
    """
    template: NewJob | None = None
    payloads: list[EncodedPayload] = []
    for new in jobs:
        args, kwargs = _payload(new)
        payload = EncodedPayload(
            args=new.args, kwargs=new.kwargs, args_json=args, kwargs_json=kwargs,
            size=len(args.encode()) + len(kwargs.encode()), partition_key=new.partition_key,
        )  # fmt: skip
        if template is None or not _alike(template, new):
            if template is not None:
                yield NewJobBatch(template=template, payloads=payloads)
            template, payloads = new, []
        payloads.append(payload)
    if template is not None:
        yield NewJobBatch(template=template, payloads=payloads)


def _alike(a: NewJob, b: NewJob) -> bool:
    """Whether ``b`` may share the fields of ``a``'s batch: the very same objects, and no meta.

    Identity, not equality: ``1 == 1.0 == True``, and a time equals itself in another zone,
    but each job must be stored and returned with its own value. Keys given by the producer
    travel with each payload: a batch's jobs either all have one, or none has (the template's
    own key then never stands for a job's).
    """
    if a.meta or b.meta or (a.partition_key is None) != (b.partition_key is None):
        return False
    return all(x is y for x, y in zip(_shared(a), _shared(b), strict=True))


def _shared(new: NewJob) -> tuple[Any, ...]:
    """The fields of ``new`` that a batch's template gives all its jobs (but meta)."""
    return (new.task, new.queue, new.state, new.priority, new.max_attempts, new.scheduled_at,
            new.unique_key, new.tags, new.depends_on, new.timeout)  # fmt: skip


def insert_statement(new: NewJob, now: Any) -> tuple[str, dict[str, Any]]:
    """The statement inserting ``new`` alone (``insert_job`` or its short form), and its params."""
    params = _basic_params(new, now)
    if (
        new.unique_key is None
        and not new.tags
        and not new.meta
        and not new.depends_on
        and new.timeout is None
    ):
        return "insert_job_basic", params
    return "insert_job", _full_params(params, new)


def insert_params(new: NewJob, now: Any) -> dict[str, Any]:
    """Parameters of ``insert_job`` (one row) for ``new``."""
    return _full_params(_basic_params(new, now), new)


def _basic_params(new: NewJob, now: Any) -> dict[str, Any]:
    """Parameters of ``insert_job_basic``: the columns every job sets, and the producer's key.

    ``partition_key`` None: the statement reads the key by the rule of the job's queue.
    """
    args, kwargs = _payload(new)
    return {
        "task": new.task,
        "queue": new.queue,
        "args": args,
        "kwargs": kwargs,
        "state": new.state.value,
        "priority": new.priority,
        "max_attempts": new.max_attempts,
        "scheduled_at": new.scheduled_at,
        "now": now,
        "partition_key": new.partition_key,
    }


def _full_params(basic: dict[str, Any], new: NewJob) -> dict[str, Any]:
    basic.update(
        unique_key=new.unique_key,
        tags=list(new.tags),
        meta=dumps(new.meta) if new.meta else "{}",
        depends_on=list(new.depends_on),
        timeout=new.timeout,
    )
    return basic


def insert_rows(jobs: Sequence[NewJob]) -> str:
    """The ``rows`` parameter of ``insert_jobs``: one JSON array holding a row per job.

    Payload columns travel as JSON *strings* holding the exact JSON text, so jsonb's
    normalisation never touches them. Trailing columns at their defaults are left out (the
    statement reads a missing element as NULL), which keeps the common row short.
    """
    out = []
    for new in jobs:
        args, kwargs = _payload(new)
        row: list[Any] = [
            new.task,
            new.queue,
            args,
            kwargs,
            new.state.value,
            new.priority,
            new.max_attempts,
            new.scheduled_at.isoformat(),
        ]
        tail = (
            new.unique_key,
            list(new.tags),
            dumps(new.meta) if new.meta else "{}",
            list(new.depends_on),
            new.timeout,
            new.partition_key,
        )
        if tail != _ROW_DEFAULTS:
            row.extend(tail)
        out.append(row)
    return dumps(out)


def copy_rows(batch: NewJobBatch, now: datetime, keys: Sequence[str | None] | None = None) -> str:
    """The lines ``copy_jobs`` reads (COPY text format) for ``batch`` (ids: the identity's).

    ``keys``: each job's partition key, as :func:`batch_keys` gives them (None: no job has one).
    """
    t = batch.template
    # Every field but the arguments is the template's: formatted once per batch.
    head = f"{_copy(t.task)}\t{_copy(t.queue)}"
    tail = (
        f"{t.state.value}\t{t.priority}\t{t.max_attempts}\t"
        f"{t.scheduled_at.isoformat()}\t{now.isoformat()}\t"
        f"{_COPY_NULL if t.unique_key is None else _copy(t.unique_key)}\t"
        f"{_copy(_array_literal(t.tags)) if t.tags else '{}'}\t"
        f"{_copy(dumps(t.meta)) if t.meta else '{}'}\t"
        f"{{{','.join(map(str, t.depends_on))}}}\t"
        f"{_COPY_NULL if t.timeout is None else repr(float(t.timeout))}\t"
    )
    if keys is None:
        return "".join([
            f"{head}\t{_copy(p.args_json)}\t"
            f"{'{}' if p.kwargs_json == '{}' else _copy(p.kwargs_json)}\t{tail}{_COPY_NULL}\n"
            for p in batch.payloads
        ])  # fmt: skip
    return "".join([
        f"{head}\t{_copy(p.args_json)}\t"
        f"{'{}' if p.kwargs_json == '{}' else _copy(p.kwargs_json)}\t{tail}"
        f"{_COPY_NULL if key is None else _copy(key)}\n"
        for p, key in zip(batch.payloads, keys, strict=True)
    ])  # fmt: skip


def batch_keys(batch: NewJobBatch, rule: PartitionBy | None = None) -> list[str | None] | None:
    """The partition key of each job of ``batch``; None when none of them has one.

    A job's key is its producer's (the payload's, else the template's), else, with ``rule``
    (its queue's partition rule), what the rule reads from its arguments.
    """
    template_key = batch.template.partition_key
    if rule is None and template_key is None:
        if all(p.partition_key is None for p in batch.payloads):
            return None
        return [p.partition_key for p in batch.payloads]
    keys: list[str | None] = []
    for p in batch.payloads:
        key = p.partition_key if p.partition_key is not None else template_key
        if key is None and rule is not None:
            key = rule.key_of(p.args, p.kwargs)
        keys.append(key)
    return keys


_COPY_NULL: Final = "\\N"
_COPY_SPECIAL: Final = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy(text: str) -> str:
    """``text`` as one field of COPY's text format (backslash, tab and line breaks escaped)."""
    return text.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(text) else text


def _array_literal(items: Sequence[str]) -> str:
    """A PostgreSQL ``text[]`` literal: elements double-quoted, quotes and backslashes escaped."""
    quoted = (item.replace("\\", "\\\\").replace('"', '\\"') for item in items)
    return "{" + ",".join(f'"{item}"' for item in quoted) + "}"


# insert_rows' tail columns at their defaults (unique_key, tags, meta, depends_on, timeout,
# partition_key).
_ROW_DEFAULTS: Final[tuple[Any, ...]] = (None, [], "{}", [], None, None)


def update_arrays(
    updates: Sequence[JobUpdate], worker_id: str, *, drop_results: bool = False
) -> dict[str, Any]:
    """Parameters of ``finish_jobs``: the fence and the outcome of each update, as arrays.

    ``drop_results`` stores no result (NULL): the last resort for a result the database
    refused, so that the job still leaves ``running`` instead of being re-run forever.
    """
    # Each array goes as one array literal (cast in the statement): psycopg's own list dumper
    # inspects and quotes every element in Python, about a tenth of a worker's CPU per job.
    completed = JobState.COMPLETED
    return {
        "worker_id": worker_id,
        "ids": _int_array([u.job_id for u in updates]),
        "attempts": _int_array([u.attempt for u in updates]),
        "states": "{" + ",".join([u.state.value for u in updates]) + "}",
        "refunds": _int_array([1 if u.refund_attempt else 0 for u in updates]),
        "scheduled_ats": _time_array([u.scheduled_at for u in updates]),
        "errors": _nullable_array(
            [None if u.error is None else _error_json(u.error) for u in updates]
        ),
        "results": _nullable_array(
            [
                dumps(u.result) if u.state is completed and not drop_results else None
                for u in updates
            ]
        ),
        "ats": _time_array([u.at for u in updates]),
        "expired_befores": _time_array([u.lease_expired_before for u in updates]),
    }


def _int_array(values: list[int]) -> str:
    """A PostgreSQL integer array literal."""
    return "{" + ",".join(map(str, values)) + "}"


def _time_array(values: list[datetime | None]) -> str:
    """A PostgreSQL ``timestamptz[]`` literal of aware datetimes (ISO 8601) and NULLs."""
    return "{" + ",".join(["NULL" if v is None else v.isoformat() for v in values]) + "}"


def _nullable_array(values: list[str | None]) -> str:
    """A PostgreSQL ``text[]`` literal: elements double-quoted and escaped, None as NULL."""
    return (
        "{"
        + ",".join(
            [
                "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                for v in values
            ]
        )
        + "}"
    )


def schedule_params(schedule: Schedule) -> dict[str, Any]:
    """Parameters of ``save_schedule``."""
    return {
        "name": schedule.name,
        "task": schedule.task,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "args": dumps(schedule.args),
        "kwargs": dumps(schedule.kwargs),
        "queue": schedule.queue,
        "priority": schedule.priority,
        "max_attempts": schedule.max_attempts,
        "created_at": schedule.created_at,
        "catch_up": str(schedule.catch_up),
        "max_catch_up": schedule.max_catch_up,
        "catch_up_within": schedule.catch_up_within,
        "overlap": str(schedule.overlap),
    }


def schedule_from_row(row: Row) -> Schedule:
    """Build a :class:`Schedule` from a ``list_schedules`` row."""
    return Schedule(
        name=row[0],
        task=row[1],
        cron=row[2],
        timezone=row[3],
        args=row[4],
        kwargs=row[5],
        queue=row[6],
        priority=row[7],
        max_attempts=row[8],
        created_at=row[9],
        catch_up=CatchUp(row[10]),
        max_catch_up=row[11],
        catch_up_within=row[12],
        overlap=Overlap(row[13]),
        last_fire_at=row[14],
        last_job_id=row[15],
        paused=row[16],
    )


def worker_params(info: WorkerInfo) -> dict[str, Any]:
    """Parameters of ``record_worker``."""
    return {
        "id": info.id,
        "hostname": info.hostname,
        "pid": info.pid,
        "queues": dumps(info.queues),
        "started_at": info.started_at,
        "heartbeat_at": info.heartbeat_at,
        "running": info.running,
    }


def worker_from_row(row: Row) -> WorkerInfo:
    """Build a :class:`WorkerInfo` from a ``list_workers`` row."""
    return WorkerInfo(
        id=row[0],
        hostname=row[1],
        pid=row[2],
        queues=row[3],
        started_at=row[4],
        heartbeat_at=row[5],
        running=row[6],
    )
