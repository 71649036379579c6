"""Rows ↔ domain values that every SQL dialect shares: building jobs fast, listing order.

The dialect modules (``backends.sqlite.rows``, ``backends.postgres.rows``) decode their own
column types and hand the 27 values, in the order of :class:`~taskward.jobs.Job`'s fields, to
:data:`build_job`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from taskward.jobs import Job, JobFilter, NewJob, NewJobBatch

__all__ = ["JOB_FIELDS", "build_job", "evolve_job", "job_from_new", "order_by"]

JOB_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Job))
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


def _job_builder() -> Callable[[tuple[Any, ...]], Job]:
    """Return a function building a :class:`Job` from all its field values, in field order.

    Every fetched and every bulk-inserted job is built here, and the generated keyword
    ``__init__`` of a frozen 26-field dataclass costs several times more than setting the slots
    directly. Like ``dataclasses`` itself, the builder is generated source: one unpacking of
    the tuple (which also checks its length) and one slot store per field, with no loop (a
    loop over the setters costs twice as much). The result is the same value; if ``Job`` ever
    gains a ``__post_init__`` or loses its slots, the real constructor is used.
    """
    slots = [Job.__dict__.get(name) for name in JOB_FIELDS]
    if hasattr(Job, "__post_init__") or not all(hasattr(s, "__set__") for s in slots):
        return lambda values: Job(**dict(zip(JOB_FIELDS, values, strict=True)))
    namespace: dict[str, Any] = {"new": object.__new__, "Job": Job}
    namespace.update({f"set_{n}": slot.__set__ for n, slot in zip(JOB_FIELDS, slots, strict=True)})  # type: ignore[union-attr]
    source = (
        "def build(values):\n"
        f"    ({', '.join(f'v_{n}' for n in JOB_FIELDS)},) = values\n"
        "    job = new(Job)\n"
        + "".join(f"    set_{n}(job, v_{n})\n" for n in JOB_FIELDS)
        + "    return job\n"
    )
    exec(source, namespace)  # generated from Job's own field names only
    build: Callable[[tuple[Any, ...]], Job] = namespace["build"]
    return build


build_job: Final = _job_builder()


def _job_evolver() -> Callable[..., Job]:
    """Return ``evolve(job, **changes)``: ``dataclasses.replace`` for a Job, several times cheaper.

    Generated like :func:`_job_builder` (keyword-only parameters named after Job's fields, a
    sentinel default for "unchanged"); an unknown field is a TypeError, as with ``replace``.
    """
    params = ", ".join(f"{n}=_KEEP" for n in JOB_FIELDS)
    values = ", ".join(f"job.{n} if {n} is _KEEP else {n}" for n in JOB_FIELDS)
    source = f"def evolve(job, *, {params}):\n    return build(({values},))\n"
    namespace: dict[str, Any] = {"_KEEP": object(), "build": build_job}
    exec(source, namespace)  # generated from Job's own field names only
    evolve: Callable[..., Job] = namespace["evolve"]
    return evolve


evolve_job: Final = _job_evolver()


def job_from_new(new: NewJob, job_id: int, now: datetime, partition_key: str | None = None) -> Job:
    """The job that :func:`insert_params` stores, built without reading it back.

    ``partition_key``: the key the store gave it (default: the one the producer gave).
    """
    middle, end = _stored_fields(new, now)
    key = new.partition_key if partition_key is None else partition_key
    return build_job(
        (job_id, new.task, new.queue, new.args, new.kwargs, *middle, new.meta, *end, key)
    )


def jobs_from_batch(
    batch: NewJobBatch,
    ids: Sequence[int],
    now: datetime,
    keys: Sequence[str | None] | None = None,
) -> list[Job]:
    """The jobs that storing ``batch`` with these ids makes (as :func:`job_from_new`).

    ``keys``: the partition key the store gave each job (default: the producer's, if any).
    """
    t = batch.template
    middle, end = _stored_fields(t, now)
    given = (
        keys if keys is not None else [p.partition_key or t.partition_key for p in batch.payloads]
    )
    return [
        build_job((job_id, t.task, t.queue, p.args, p.kwargs, *middle, _own(t.meta), *end, key))
        for p, job_id, key in zip(batch.payloads, ids, given, strict=True)
    ]


def _stored_fields(new: NewJob, now: datetime) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A new job's Job fields between kwargs and meta, and after meta, in field order."""
    middle = (
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
    )
    end = (new.depends_on, new.timeout, False)  # False: cancel_requested
    return middle, end


def with_ids(jobs: list[Job], ids: Sequence[int]) -> list[Job]:
    """``jobs``, just built here and seen by no one yet, with the ids their rows took.

    Sets the frozen Job's id slot in place, as :func:`build_job` sets every slot: a tenth
    of the cost of rebuilding each job (a bulk whose ids interleaved with another session's).
    """
    slot = Job.__dict__.get("id")
    if not hasattr(slot, "__set__"):
        return [evolve_job(job, id=job_id) for job, job_id in zip(jobs, ids, strict=True)]
    set_id = slot.__set__  # type: ignore[union-attr]
    for job, job_id in zip(jobs, ids, strict=True):
        set_id(job, job_id)
    return jobs


def _own(meta: dict[str, Any]) -> dict[str, Any]:
    """A job's own copy of its template's meta: a caller may change a returned job's meta."""
    return copy.deepcopy(meta) if meta else {}


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
