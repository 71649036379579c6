"""A retry with edits on PostgreSQL: the job's new fields, in the retry's own transaction.

The job row is locked (``FOR UPDATE``) and read, the record made from it
(``taskward.edits.replayed_meta``: nothing can change the job between the read and the
write), then one ``UPDATE`` retries it with the new arguments, queue, priority and meta. The
partition key is computed in that statement as at insert (the producer's, else the rule of
the job's new queue reads it from the new arguments, else the key it had), so it follows a
rule changed meanwhile as an insert does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from taskward.backends.postgres import rows
from taskward.backends.postgres.connections import AConn
from taskward.edits import replayed_meta
from taskward.errors import JobNotFound
from taskward.jobs import RETRIABLE_BY_OPERATOR, JobEdit
from taskward.serialize import dumps

__all__ = ["retry_edited"]


async def retry_edited(
    conn: AConn, q: Mapping[str, str], job_id: int, now: datetime, edit: JobEdit
) -> list[Any]:
    """Retry job ``job_id`` with ``edit`` in ``conn``'s transaction; its row (none: refused).

    Raises ``JobNotFound`` when there is no such job.
    """
    locked = await (await conn.execute(q["lock_job_for_edit"], {"id": job_id})).fetchall()
    if not locked:
        raise JobNotFound(job_id)
    job = rows.job_from_row(locked[0])
    if job.state not in RETRIABLE_BY_OPERATOR:
        return []
    params = {
        "id": job_id,
        "now": now,
        "args": _json(edit.args_json, edit.args),
        "kwargs": _json(edit.kwargs_json, edit.kwargs),
        "queue": job.queue if edit.queue is None else edit.queue,
        "priority": job.priority if edit.priority is None else edit.priority,
        "meta": dumps(replayed_meta(job, edit)),
        "rekey": edit.rekeys,
        "partition_key": edit.partition_key,
    }
    return await (await conn.execute(q["retry_job_edited"], params)).fetchall()


def _json(text: str | None, value: Any) -> str | None:
    """A new argument's stored text (None: the argument is kept)."""
    if value is None:
        return None
    return text if text is not None else dumps(value)
