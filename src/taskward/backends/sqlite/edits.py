"""A retry with edits on SQLite: the job's new fields, written by the retry's own statement.

Runs inside the retry's ``BEGIN IMMEDIATE`` transaction (SQLite's single writer: nothing
changes the job between the read and the write), the way ``memory.py`` applies
``taskward.edits.edited_job``: the record is made from the job as stored, the partition key
read by the rule of the job's (new) queue.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from taskward.backends.sqlite import rows
from taskward.edits import edited_job
from taskward.jobs import RETRIABLE_BY_OPERATOR, Job, JobEdit
from taskward.limits import PartitionBy

__all__ = ["retry_edited"]


def retry_edited(
    db: sqlite3.Connection, q: Mapping[str, str], job: Job, edit: JobEdit, now: datetime
) -> Sequence[Any] | None:
    """Retry ``job`` (as just read in ``db``'s write transaction) with ``edit``; its row.

    None when the job is in a state an operator cannot retry (nothing is written).
    """
    if job.state not in RETRIABLE_BY_OPERATOR:
        return None
    queue = job.queue if edit.queue is None else edit.queue
    found = db.execute(q["insert_rules"], (json.dumps([queue]),)).fetchone()
    edited = edited_job(job, edit, None if found is None else PartitionBy.parse(found[1]))
    params = (
        rows.epoch(now),
        job.id,
        _json(edit.args_json, edit.args),
        _json(edit.kwargs_json, edit.kwargs),
        edited.queue,
        edited.priority,
        rows.dumps(edited.meta),
        edited.partition_key,
    )
    row: Sequence[Any] | None = db.execute(q["retry_job_edited"], params).fetchone()
    return row


def _json(text: str | None, value: Any) -> str | None:
    """A new argument's stored text (None: the argument is kept)."""
    if value is None:
        return None
    return text if text is not None else rows.dumps(value)
