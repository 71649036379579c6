"""Replays with edits: the record a replay leaves in the job, and the job it makes.

Owns the job meta key ``taskward.replays`` (a list, oldest first, of at most
:data:`MAX_REPLAYS_KEPT` records) and the pure rules every store applies inside its retry's
atomic step (``Backend.retry(..., edit=)``): :func:`replayed_meta` (the meta with one record
more, made from the job *as the store holds it* at that moment, so two racing replays never
record a stale original) and :func:`edited_job` (the reference application, which the memory
store uses and the SQL and Lua versions follow).

A record holds what the operator changed and what it was: ``at`` (ISO 8601), ``by`` (the
operator, or None), ``note``, the ``state`` and ``attempt`` it was replayed from, and for each
changed field its value before (``args``, ``kwargs``, ``queue``, ``priority``; arguments
past :data:`MAX_RECORDED_BYTES` by their size only). The original arguments are stored
**redacted** where the task marks them sensitive: a replay never makes a second copy of a
secret, so every place that shows a job's meta shows no secret.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any, Final

from taskward.jobs import Job, JobEdit
from taskward.limits import PartitionBy
from taskward.sealing import ENCRYPTED_PLACEHOLDER, is_sealed
from taskward.tasks import redact

__all__ = [
    "CHANGED",
    "MAX_RECORDED_BYTES",
    "MAX_REPLAYS_KEPT",
    "REPLAYS_META_KEY",
    "edited_job",
    "replay_record",
    "replayed_meta",
    "replays_of",
]

REPLAYS_META_KEY: Final = "taskward.replays"
"""The job meta key of its replay history (a list of records, oldest first)."""
MAX_REPLAYS_KEPT: Final = 20
"""Records kept per job: the oldest goes first, so a job replayed in a loop stays small."""
CHANGED: Final = ("args", "kwargs", "queue", "priority")
"""The fields a replay may change, recorded by their value before."""
MAX_RECORDED_BYTES: Final = 8192
"""Original args (or kwargs) larger than this as JSON are recorded by their size only
(``args_omitted_bytes``): twenty copies of a large payload would bloat every read of the job."""


def replay_record(job: Job, edit: JobEdit) -> dict[str, Any]:
    """The history record of ``edit`` applied to ``job`` (as stored right before it)."""
    record: dict[str, Any] = {**edit.replay, "state": job.state.value, "attempt": job.attempt}
    if is_sealed(job):  # encrypted at rest: no clear copy in meta (nor a second envelope)
        args, kwargs = ENCRYPTED_PLACEHOLDER, ENCRYPTED_PLACEHOLDER
    else:
        args, kwargs = redact(job.args, job.kwargs, job.meta)
    if edit.args is not None or edit.kwargs is not None:
        if edit.args is not None:
            _keep(record, "args", args)
        if edit.kwargs is not None:
            _keep(record, "kwargs", kwargs)
    if edit.queue is not None and edit.queue != job.queue:
        record["queue"] = job.queue
    if edit.priority is not None and edit.priority != job.priority:
        record["priority"] = job.priority
    return record


def _keep(record: dict[str, Any], name: str, value: Any) -> None:
    """Record ``value`` as ``name``, or only its size past :data:`MAX_RECORDED_BYTES`."""
    size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
    if size > MAX_RECORDED_BYTES:
        record[f"{name}_omitted_bytes"] = size
    else:
        record[name] = copy.deepcopy(value)


def replays_of(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The replay records of a job's meta (none when absent or malformed)."""
    found = meta.get(REPLAYS_META_KEY)
    if not isinstance(found, list):
        return []
    return [r for r in found if isinstance(r, dict)]


def replayed_meta(job: Job, edit: JobEdit) -> dict[str, Any]:
    """``job.meta`` with the record of ``edit`` appended (the oldest dropped past the bound)."""
    records = [*replays_of(job.meta), replay_record(job, edit)][-MAX_REPLAYS_KEPT:]
    return {**copy.deepcopy(job.meta), REPLAYS_META_KEY: records}


def edited_job(job: Job, edit: JobEdit, rule: PartitionBy | None) -> Job:
    """``job`` with ``edit``'s fields and its record (the state change is the caller's).

    ``rule``: the partition rule of the job's queue after the edit (None: not partitioned).
    The key follows the new arguments or queue: the producer's key, else the rule's, else
    the key the job had.
    """
    args = job.args if edit.args is None else copy.deepcopy(edit.args)
    kwargs = job.kwargs if edit.kwargs is None else copy.deepcopy(edit.kwargs)
    key = job.partition_key
    if edit.rekeys:
        if edit.partition_key is not None:
            key = edit.partition_key
        elif rule is not None:
            key = rule.key_of(args, kwargs)
    return replace(
        job,
        args=args,
        kwargs=kwargs,
        queue=job.queue if edit.queue is None else edit.queue,
        priority=job.priority if edit.priority is None else edit.priority,
        partition_key=key,
        meta=replayed_meta(job, edit),
    )
