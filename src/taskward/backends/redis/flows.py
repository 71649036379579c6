"""The workflow half of the Redis backend: insert, read, cancel and sweep workflows.

The rules of ``taskward.graph`` run in Lua (``lua/flows.lua``), inside the script of the write
that causes them: ``finish.lua`` (an update with ``dependents``), ``cancel.lua``,
``retry.lua``, ``delete.lua`` and the scripts called here, so a fan-in is released exactly once
whichever process ends its last dependency.

Keys (``B`` = ``{prefix}``, so one slot): ``B:wseq`` the last workflow id; ``B:workflow:<id>``
a hash (``name`` when it has one, ``inserted_at``); ``B:wsteps:<id>`` its steps' job ids
(score = id, so insert order), which ``list_jobs`` reads for ``JobFilter.workflow``. A step's own
fields live in its job hash, prefixed ``wf_`` (see ``flows.lua``), and go with the job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from taskward.backends.base import RELEASE_LOOKUPS
from taskward.backends.redis import codec
from taskward.backends.redis.client import Connections
from taskward.backends.redis.config import RedisConfig
from taskward.backends.redis.errors import translated
from taskward.backends.redis.listener import Listener
from taskward.errors import WorkflowNotFound
from taskward.graph import (
    NewStep,
    NewWorkflow,
    StoredStep,
    WorkflowRecord,
    marked_meta,
    validate_new_workflow,
)
from taskward.jobs import Job, JobState, NewJob

__all__ = ["RedisWorkflows", "now_args"]


class RedisWorkflows:
    """Workflow storage; mixed into ``RedisBackend`` (Capability.WORKFLOWS)."""

    config: RedisConfig
    _connections: Connections
    _listener: Listener

    async def insert_workflow(self, flow: NewWorkflow, *, now: datetime) -> WorkflowRecord:
        """Store every step in one script (validated first, so nothing is stored on error).

        The workflow's id is taken from ``B:wseq`` first (a script that then fails leaves a
        gap, as a SQL sequence does), so that each step's meta marker is written by the client.
        """
        validate_new_workflow(flow)
        client = await self._connections.ready()
        with translated(self.config):
            workflow_id = int(await client.incr(f"{self._connections.base}:wseq"))
        args: list[str] = [
            str(workflow_id),
            codec.us(now),
            "" if flow.name is None else "=" + flow.name,
            str(len(flow.steps)),
        ]
        for step in flow.steps:
            args.extend(_step_args(step, workflow_id))
        replies = await self._connections.run("workflow_insert", args)
        record = _inserted(workflow_id, flow, replies, now)
        for stored in record.steps:
            if stored.job.state is JobState.PENDING:
                self._listener.wake(stored.job.queue)
        return record

    async def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """The workflow and its steps still stored, in insert order."""
        reply = await self._connections.run("workflow", (int(workflow_id),))
        return _record(workflow_id, reply)

    async def cancel_workflow(
        self, workflow_id: int, *, reason: str, now: datetime
    ) -> WorkflowRecord:
        """Cancel every step not ended but the finalizers; ask running ones to stop."""
        reply = await self._connections.run(
            "workflow_cancel", (int(workflow_id), *now_args(now), codec.dumps(reason))
        )
        return _record(workflow_id, reply)

    async def release_blocked(
        self, *, now: datetime, limit: int, after: int = 0
    ) -> tuple[int, int]:
        """Recount blocked steps after id ``after`` from their dependencies; release the free.

        One script: at most ``limit`` steps and ``RELEASE_LOOKUPS`` dependency lookups.
        Returns (released, the last id examined or 0 at the end).
        """
        if limit <= 0:
            return 0, after
        args = (codec.us(now), int(limit), int(after), RELEASE_LOOKUPS)
        released, cursor = await self._connections.run("release", args)
        return int(released), int(cursor)

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """The stored jobs of these ids that exist, in the order given (one pipeline)."""
        if not job_ids:
            return []
        client = await self._connections.ready()
        base = self._connections.base
        with translated(self.config):
            pipe = client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hgetall(f"{base}:job:{int(job_id)}")
            found = await pipe.execute()
        return [codec.job_from_fields(flat) for flat in found if flat]


def now_args(now: datetime | None = None) -> tuple[str, str]:
    """A time as the scripts take it: microseconds, and ISO JSON text for an error record."""
    when = datetime.now(UTC) if now is None else now
    return codec.us(when), json.dumps(when.isoformat())


def _step_job(step: NewStep, workflow_id: int, depends_on: tuple[int, ...] = ()) -> NewJob:
    """The step's job as stored: the workflow's id in its marker, its dependencies' ids."""
    meta = marked_meta(step.job.meta, workflow_id)
    return replace(step.job, meta=meta, depends_on=depends_on)


def _step_args(step: NewStep, workflow_id: int) -> list[str]:
    """A step's job fields (``codec.insert_args``), then its own (see workflow_insert.lua)."""
    job = _step_job(step, workflow_id)
    return [
        *codec.insert_args(job),
        step.name,
        repr(step.name),
        step.on_failure,
        "1" if step.finalizer else "",
        ",".join(str(d) for d in step.depends_on),
    ]


def _inserted(
    workflow_id: int, flow: NewWorkflow, replies: Sequence[Any], now: datetime
) -> WorkflowRecord:
    """The workflow ``workflow_insert.lua`` stored, built without reading it back."""
    ids: list[int] = []
    steps = []
    for step, reply in zip(flow.steps, replies, strict=True):
        job_id, keyed, key = str(reply).partition(":")
        ids.append(int(job_id))
        depends_on = tuple(ids[d] for d in step.depends_on)
        new = _step_job(step, workflow_id, depends_on)
        steps.append(
            StoredStep(
                name=step.name,
                job=codec.job_from_new(new, int(job_id), now, key if keyed else None),
                depends_on=tuple(flow.steps[d].name for d in step.depends_on),
                on_failure=step.on_failure,
                finalizer=step.finalizer,
            )
        )
    return WorkflowRecord(id=workflow_id, name=flow.name, inserted_at=now, steps=tuple(steps))


def _record(workflow_id: int, reply: Sequence[Any]) -> WorkflowRecord:
    """The :class:`WorkflowRecord` of a ``read_workflow`` reply (flows.lua)."""
    if not reply:
        raise WorkflowNotFound(workflow_id)
    name, inserted_at, rows = reply
    hashes = [dict(zip(row[::2], row[1::2], strict=True)) for row in rows]
    names = {int(fields["id"]): fields["wf_name"] for fields in hashes}
    steps = []
    for fields in hashes:
        job = codec.job_from_fields(fields)
        steps.append(
            StoredStep(
                name=fields["wf_name"],
                job=job,
                depends_on=tuple(names[d] for d in job.depends_on if d in names),
                on_failure="continue" if fields.get("wf_on_failure") == "continue" else "cancel",
                finalizer=fields.get("wf_finalizer") == "1",
            )
        )
    return WorkflowRecord(
        id=workflow_id,
        name=name[1:] if name else None,
        inserted_at=codec.time_of(inserted_at),
        steps=tuple(steps),
    )
