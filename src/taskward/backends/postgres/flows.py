"""Workflows in PostgreSQL: steps, their edges, and the release rules (``taskward.graph``).

The tables and PL/pgSQL functions are migration 0009's; the memory backend's ``flows`` is the
reference they follow. Each rule runs in the transaction of the write that causes it:

- A finish whose batch ends a step others wait for sends ``finish_steps_ended`` after
  ``finish_jobs`` in the same pipeline (one implicit transaction, one round trip); other
  batches send ``finish_jobs`` alone, as before (:func:`finish_ending_steps`).
- A cancel, a retry and a delete (of any job: they live here) call their function after (or
  instead of) their statement, in one transaction; a cancel or retry of a job that carries no
  workflow marker costs nothing more.
- Concurrent ends of the dependencies of one step take turns on its counter's row: exactly one
  sees it reach zero and releases the step (which notifies its queue when it is due).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from taskward.backends.base import RELEASE_LOOKUPS
from taskward.backends.postgres import admin, rows
from taskward.backends.postgres.connections import AConn, Connections
from taskward.backends.postgres.edits import retry_edited
from taskward.backends.sql.rows import evolve_job, job_from_new
from taskward.errors import InvalidJob, WorkflowNotFound
from taskward.graph import (
    NewWorkflow,
    StoredStep,
    WorkflowRecord,
    marked_meta,
    step_marker,
    validate_new_workflow,
)
from taskward.jobs import FINISHED_STATES, Job, JobEdit, JobState, JobUpdate

__all__ = [
    "cancel",
    "cancel_workflow",
    "delete",
    "ends_steps",
    "finish_ending_steps",
    "get_jobs",
    "get_workflow",
    "insert_workflow",
    "release_blocked",
    "retry",
    "step_params",
]


async def insert_workflow(
    connections: Connections, flow: NewWorkflow, *, now: datetime
) -> WorkflowRecord:
    """Store every step of ``flow`` in one transaction (validated first: none on error).

    Two statements: the workflow's row and its steps' ids (``workflow_begin``), then every job,
    step row and edge, set-based (``insert_steps``). The record is built from what was stored
    (each job as the store wrote it: the ids drawn, ``now``, the partition keys the statement
    returns), without reading it back.
    """
    validate_new_workflow(flow)
    q = connections.q
    news = [step.job for step in flow.steps]

    async def write(conn: AConn) -> tuple[int, list[int], list[dict[str, Any]], dict[int, str]]:
        async with conn.transaction():
            cursor = await conn.execute(
                q["workflow_begin"], {"name": flow.name, "now": now, "n": len(flow.steps)}
            )
            row = await cursor.fetchone()
            assert row is not None
            workflow_id, ids = row[0], sorted(row[1])
            metas = [marked_meta(new.meta, workflow_id) for new in news]
            params = step_params(flow, workflow_id, ids, metas, now)
            cursor = await conn.execute(q["insert_steps"], params)
            keyed = await cursor.fetchone()
            assert keyed is not None
            return workflow_id, ids, metas, dict(zip(keyed[0], keyed[1], strict=True))

    try:
        workflow_id, ids, metas, keys = await connections.run(write)
    except (psycopg.DataError, UnicodeEncodeError) as exc:
        raise InvalidJob(f"PostgreSQL cannot store this workflow: {exc}") from exc
    stored = []
    for step, new, job_id, meta in zip(flow.steps, news, ids, metas, strict=True):
        job = job_from_new(new, job_id, now, keys.get(job_id))
        depends_on = tuple(ids[d] for d in step.depends_on)
        stored.append(
            StoredStep(
                name=step.name,
                job=evolve_job(job, meta=meta, depends_on=depends_on),
                depends_on=tuple(flow.steps[d].name for d in step.depends_on),
                on_failure=step.on_failure,
                finalizer=step.finalizer,
            )
        )
    return WorkflowRecord(id=workflow_id, name=flow.name, inserted_at=now, steps=tuple(stored))


def step_params(
    flow: NewWorkflow,
    workflow_id: int,
    ids: Sequence[int],
    metas: Sequence[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The parameters of ``insert_steps``.

    The jobs travel as one JSON array of rows (as ``insert_jobs``'s, an id first; each meta
    with the workflow's id in its marker, each ``depends_on`` as job ids), the step rows as
    another (its job's id first); the edges as two arrays (parents, children), in the text
    form of PostgreSQL's arrays.
    """
    jobs = []
    parents: list[int] = []
    children: list[int] = []
    for step, job_id, meta in zip(flow.steps, ids, metas, strict=True):
        new = step.job
        depends_on = [ids[d] for d in step.depends_on]
        parents.extend(depends_on)
        children.extend([job_id] * len(depends_on))
        jobs.append(
            [
                job_id,
                new.task,
                new.queue,
                new.args_json if new.args_json is not None else rows.dumps(new.args),
                new.kwargs_json if new.kwargs_json is not None else rows.dumps(new.kwargs),
                new.state.value,
                new.priority,
                new.max_attempts,
                new.scheduled_at.isoformat(),
                new.unique_key,
                list(new.tags),
                rows.dumps(meta),
                depends_on,
                new.timeout,
                new.partition_key,
            ]
        )
    steps = [
        [
            job_id,
            step.name,
            rows.storable_text(repr(step.name)),
            step.on_failure,
            step.finalizer,
            len(step.depends_on),
        ]
        for step, job_id in zip(flow.steps, ids, strict=True)
    ]
    return {
        "rows": rows.dumps(jobs),
        "steps": rows.dumps(steps),
        "now": now,
        "workflow": workflow_id,
        "parents": _int_array(parents),
        "children": _int_array(children),
    }


def _int_array(values: Sequence[int]) -> str:
    """``values`` as the text of a PostgreSQL array: a fraction of the cost of a list param."""
    return "{" + ",".join(map(str, values)) + "}"


async def get_workflow(connections: Connections, workflow_id: int) -> WorkflowRecord:
    """The workflow and its steps still stored, in insert order; ``WorkflowNotFound``."""
    return _record(workflow_id, await connections.fetchall("get_workflow", {"id": workflow_id}))


def _record(workflow_id: int, found: list[Any]) -> WorkflowRecord:
    """A :class:`WorkflowRecord` from the rows of ``get_workflow``."""
    if not found:
        raise WorkflowNotFound(workflow_id)
    name, inserted_at = found[0][0], found[0][1]
    steps = [(rows.job_from_row(row[2:]), row[29:32]) for row in found if row[2] is not None]
    names = {job.id: step_name for job, (step_name, _, _) in steps}
    return WorkflowRecord(
        id=workflow_id,
        name=name,
        inserted_at=inserted_at,
        steps=tuple(
            StoredStep(
                name=step_name,
                job=job,
                depends_on=tuple(names[d] for d in job.depends_on if d in names),
                on_failure=on_failure,
                finalizer=finalizer,
            )
            for job, (step_name, on_failure, finalizer) in steps
        ),
    )


async def cancel_workflow(
    connections: Connections, workflow_id: int, *, reason: str, now: datetime
) -> WorkflowRecord:
    """Cancel every step not ended but the finalizers; ask running ones to stop (one transaction).

    Returns the workflow as it stands after, read in the same transaction.
    """
    q = connections.q
    params = {"id": workflow_id, "reason": reason, "now": now, "at": now.isoformat()}

    async def write(conn: AConn) -> list[Any]:
        async with conn.transaction():
            cursor = await conn.execute(q["cancel_workflow"], params)
            row = await cursor.fetchone()
            if row is None or not row[0]:
                return []
            return await (await conn.execute(q["get_workflow"], params)).fetchall()

    return _record(workflow_id, await connections.run(write))


async def cancel(connections: Connections, job_id: int, *, reason: str, now: datetime) -> Job:
    """Cancel a waiting job, or ask the worker of a running one to stop."""
    q = connections.q
    params = {"id": job_id, "now": now, "at": now.isoformat(), "reason": reason}

    async def write(conn: AConn) -> list[Any]:
        async with conn.transaction():
            found = await (await conn.execute(q["cancel_waiting"], params)).fetchall()
            if found:
                if step_marker(found[0][22]) is not None:  # a step's end: its dependents see it
                    await _ended(conn, connections, found[0][0], now)
            else:
                cursor = await conn.execute(q["request_cancel"], params)
                found = await cursor.fetchall()
            return found

    found = await connections.run(write)
    return rows.job_from_row(found[0]) if found else await admin.get(connections, job_id)


async def retry(
    connections: Connections, job_id: int, *, now: datetime, edit: JobEdit | None = None
) -> Job:
    """Make a failed, discarded or cancelled job pending again (one transaction).

    A workflow step goes back to blocked instead while a dependency holds it back, and what
    its end cancelled waits again (``taskward_step_retried``). ``edit``: its changes and
    record in the same transaction (``backends.postgres.edits``).
    """
    q = connections.q

    async def write(conn: AConn) -> Job | None:
        async with conn.transaction():
            if edit is not None:
                found = await retry_edited(conn, q, job_id, now, edit)
            else:
                cursor = await conn.execute(q["retry_job"], {"id": job_id, "now": now})
                found = await cursor.fetchall()
            if not found:
                return None
            job = rows.job_from_row(found[0])
            state = (
                await _retried(conn, connections, job.id)
                if step_marker(job.meta) is not None
                else None
            )
            if state is not None and state is not job.state:
                job = evolve_job(job, state=state)
            await conn.execute(q["notify"], {"queue": job.queue})
            return job

    retried = await connections.run(write)
    return retried if retried is not None else await admin.get(connections, job_id)


async def release_blocked(
    connections: Connections, *, now: datetime, limit: int, after: int = 0
) -> tuple[int, int]:
    """Recount blocked steps after id ``after``; release those nothing holds back.

    One statement: at most ``limit`` steps and ``RELEASE_LOOKUPS`` dependency lookups. Returns
    (released, the last id examined or 0 at the end).
    """
    if limit <= 0:
        return 0, after
    params = {"now": now, "limit": limit, "after": after, "budget": RELEASE_LOOKUPS}
    [(released, cursor)] = await connections.fetchall("release_blocked", params)
    return int(released), int(cursor)


async def get_jobs(connections: Connections, job_ids: Sequence[int]) -> list[Job]:
    """The stored jobs of these ids that exist, in the order given (one statement)."""
    if not job_ids:
        return []
    ids = [int(i) for i in job_ids]
    stored = await connections.fetchall("get_jobs", {"ids": ids})
    found = {job.id: job for job in map(rows.job_from_row, stored)}
    return [found[i] for i in ids if i in found]


async def delete(
    connections: Connections, job_id: int, states: Collection[JobState] | None = None
) -> bool:
    """Delete a job unless it is running; a step that had not ended ends for its dependents.

    With ``states``, only a job in one of them: the row is locked as its state is checked,
    in the delete's statement, so a retry committed meanwhile is seen (and the job kept).
    """
    now = datetime.now(UTC)
    params: dict[str, Any] = {"id": job_id, "now": now, "at": now.isoformat()}
    if states is None:
        [(deleted,)] = await connections.fetchall("delete_step_or_job", params)
        return bool(deleted)
    params["states"] = sorted(state.value for state in states)
    found = await connections.fetchall("delete_job_in_states", params)
    return bool(found and found[0][0])


def ends_steps(updates: Sequence[JobUpdate]) -> list[JobUpdate]:
    """The updates of a batch that end a step others wait for (``JobUpdate.dependents``)."""
    return [u for u in updates if u.dependents and u.state in FINISHED_STATES]


async def finish_ending_steps(
    connections: Connections, params: dict[str, Any], ending: Sequence[JobUpdate]
) -> list[Any]:
    """``finish_jobs`` with ``params``, then the steps it ended end for their dependents.

    Both statements go out in one pipeline on an autocommit connection: one implicit
    transaction (committed by the pipeline's sync, rolled back if one fails), one round trip.
    Returns the rows of ``finish_jobs``.
    """
    q = connections.q
    ended = {
        "ended": [u.job_id for u in ending],
        "ended_ats": [u.at for u in ending],
        "ended_texts": [u.at.isoformat() for u in ending],
    }
    async with connections.connection() as conn:
        finish, release = conn.cursor(), conn.cursor()
        async with conn.pipeline():
            await finish.execute(q["finish_jobs"], params)
            await release.execute(q["finish_steps_ended"], ended)
        written: list[Any] = await finish.fetchall()
        return written


async def _ended(conn: AConn, connections: Connections, job_id: int, now: datetime) -> None:
    """A waiting job just cancelled on ``conn`` (same transaction): its dependents see the end."""
    params = {"id": job_id, "now": now, "at": now.isoformat()}
    await conn.execute(connections.q["step_cancelled"], params)


async def _retried(conn: AConn, connections: Connections, job_id: int) -> JobState | None:
    """A job just retried on ``conn`` (same transaction): its state as a step (None: none)."""
    cursor = await conn.execute(connections.q["step_retried"], {"id": job_id})
    row = await cursor.fetchone()
    return None if row is None or row[0] is None else JobState(row[0])
