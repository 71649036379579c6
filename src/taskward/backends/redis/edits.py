"""A retry with edits on Redis: ``retry.lua`` writes it, fenced on the meta the client read.

Lua cannot re-encode a job's meta without changing its numbers (cjson writes doubles with 14
digits), so the client makes the new meta in Python (``taskward.edits.replayed_meta``, from
the job as read) and the script writes it, with the new fields and the retry, only if the
stored meta is still the text the client read. Every replay appends a record, so a replay
made meanwhile changes that text: the script answers ``conflict``, writes nothing, and the
client reads again (optimistic, like ``WATCH``, but one script: one Redis Cluster slot, no
transaction across calls). A plain retry changes no meta and needs no fence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from taskward.backends.redis import codec
from taskward.backends.redis.client import Connections
from taskward.backends.redis.errors import StoreError, translated
from taskward.edits import replayed_meta
from taskward.errors import JobNotFound
from taskward.jobs import RETRIABLE_BY_OPERATOR, Job, JobEdit

__all__ = ["retry_edited"]

ATTEMPTS: Final = 20
"""Reads before giving up: each lost race means another operator replayed the job meanwhile."""


async def retry_edited(
    connections: Connections, base: str, job_id: int, now: datetime, edit: JobEdit
) -> Job:
    """Retry job ``job_id`` with ``edit`` (one script); the job as it is now."""
    for _ in range(ATTEMPTS):
        client = await connections.ready()
        with translated(connections.config):
            fields: dict[str, Any] = await client.hgetall(f"{base}:job:{int(job_id)}")
        if not fields:
            raise JobNotFound(job_id)
        job = codec.job_from_fields(fields)
        if job.state not in RETRIABLE_BY_OPERATOR:
            return job
        meta = replayed_meta(job, edit)
        args = (int(job_id), codec.us(now), *codec.edit_args(edit, fields.get("meta"), meta))
        flat = await connections.run("retry", args)
        if not flat:
            raise JobNotFound(job_id)
        if len(flat) != 1:  # a job's hash; ['conflict'] when the meta changed meanwhile
            return codec.job_from_flat(flat)
    raise StoreError(f"job {job_id} kept changing while it was being retried; try again")
