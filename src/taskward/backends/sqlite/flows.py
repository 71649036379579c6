"""Workflows on SQLite: steps, their edges, and the release rules of ``taskward.graph``.

:class:`StoreWorkflows` is a base of :class:`~taskward.backends.sqlite.store.SqliteStore`. The
rules are ``memory/flows.py``'s (the reference), run here against three tables of migration
0005: ``taskward_workflows``, ``taskward_steps`` (one row per step: its policy and the count of
dependencies it waits for) and ``taskward_edges`` ("child waits for parent").

Every rule runs in the write transaction of the call that causes it: the finish, cancel,
retry or delete that ends a step decrements, releases or cancels its dependents there, under
SQLite's single writer lock, so a step is released once, whichever process ends its last
dependency. Each method that may release steps also returns the queues where a step became
pending: the backend wakes their waiters, as after an insert.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskward.backends.base import RELEASE_LOOKUPS
from taskward.backends.sql.rows import evolve_job
from taskward.backends.sqlite import rows
from taskward.backends.sqlite.connection import SqliteConnection
from taskward.backends.sqlite.partitions import keys_at_insert
from taskward.errors import WorkflowNotFound
from taskward.graph import (
    NewWorkflow,
    StoredStep,
    WorkflowRecord,
    dependency_failed_message,
    marked_meta,
    validate_new_workflow,
    waiting_for,
)
from taskward.jobs import FINISHED_STATES, Job, JobState

__all__ = ["StoreWorkflows"]

S = JobState
Row = Sequence[Any]


class StoreWorkflows(SqliteConnection):
    """Workflow storage and the release rules, on the store's connection (its thread only)."""

    # Provided by SqliteStore.
    def _insert_rows(self, db: sqlite3.Connection, params: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def insert_workflow(self, flow: NewWorkflow, now: datetime) -> tuple[WorkflowRecord, set[str]]:
        """Store every step in one transaction (validated first); the queues made pending.

        Each step's job gets the workflow's id in its meta marker and its dependencies' job
        ids as ``depends_on``; a step waits for all of its dependencies.
        """
        validate_new_workflow(flow)
        now_ts = rows.epoch(now)
        news = [step.job for step in flow.steps]
        with self._write() as db:
            cursor = db.execute(self.q["insert_workflow"], (flow.name, now_ts))
            workflow_id = cursor.lastrowid
            assert workflow_id is not None
            first_id = db.execute(self.q["last_job_id"]).fetchone()[0] + 1
            ids = [first_id + n for n in range(len(news))]
            metas = [marked_meta(new.meta, workflow_id) for new in news]
            depends = [tuple(ids[d] for d in step.depends_on) for step in flow.steps]
            keys = keys_at_insert(db, self.q, news)
            params = []
            for new, job_id, key, meta, depends_on in zip(
                news, ids, keys, metas, depends, strict=True
            ):
                row = list(rows.insert_params(new, job_id, now_ts, key))
                row[_META], row[_DEPENDS_ON] = rows.dumps(meta), rows.dumps(list(depends_on))
                params.append(tuple(row))
            self._insert_rows(db, params)
            db.executemany(
                self.q["insert_step"],
                [
                    (job_id, workflow_id, s.name, s.on_failure, int(s.finalizer), len(s.depends_on))
                    for job_id, s in zip(ids, flow.steps, strict=True)
                ],
            )
            db.executemany(
                self.q["insert_edge"],
                [
                    (parent, job_id)
                    for job_id, depends_on in zip(ids, depends, strict=True)
                    for parent in depends_on
                ],
            )
        stored = [
            StoredStep(
                name=s.name,
                job=evolve_job(
                    rows.job_from_new(new, job_id, now, key), meta=meta, depends_on=depends_on
                ),
                depends_on=tuple(flow.steps[d].name for d in s.depends_on),
                on_failure=s.on_failure,
                finalizer=s.finalizer,
            )
            for s, new, job_id, key, meta, depends_on in zip(
                flow.steps, news, ids, keys, metas, depends, strict=True
            )
        ]
        record = WorkflowRecord(
            id=workflow_id, name=flow.name, inserted_at=now, steps=tuple(stored)
        )
        ready = {s.job.queue for s in stored if s.job.state is S.PENDING}
        return record, ready

    def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """The workflow and its steps still stored, in insert order."""
        with self._read() as db:
            return self._workflow(db, workflow_id)

    def _workflow(self, db: sqlite3.Connection, workflow_id: int) -> WorkflowRecord:
        row = db.execute(self.q["get_workflow_row"], (workflow_id,)).fetchone()
        if row is None:
            raise WorkflowNotFound(workflow_id)
        found = db.execute(self.q["workflow_steps"], (workflow_id,)).fetchall()
        names = {step[3]: step[0] for step in found}
        steps = []
        for step in found:
            job = rows.job_from_row(step[3:])
            steps.append(
                StoredStep(
                    name=step[0],
                    job=job,
                    depends_on=tuple(names[d] for d in job.depends_on if d in names),
                    on_failure=step[1],
                    finalizer=bool(step[2]),
                )
            )
        return WorkflowRecord(
            id=workflow_id,
            name=row[0],
            inserted_at=datetime.fromtimestamp(row[1], UTC),
            steps=tuple(steps),
        )

    def cancel_workflow(
        self, workflow_id: int, reason: str, now: datetime
    ) -> tuple[WorkflowRecord, set[str]]:
        """Cancel every step not ended but the finalizers; ask running ones to stop.

        Steps in insert order, each as :meth:`SqliteStore.cancel` does it (a step cancelled by
        an earlier one's end is no longer waiting when its turn comes).
        """
        ready: set[str] = set()
        params = (rows.epoch(now), now.isoformat(), reason)
        with self._write() as db:
            if db.execute(self.q["get_workflow_row"], (workflow_id,)).fetchone() is None:
                raise WorkflowNotFound(workflow_id)
            ids = [
                job_id for (job_id,) in db.execute(self.q["workflow_cancellable"], (workflow_id,))
            ]
            for job_id in ids:
                if db.execute(self.q["cancel_waiting"], (*params, job_id)).fetchone() is not None:
                    ready |= self._step_ended(db, job_id, S.CANCELLED, now)
                else:
                    db.execute(self.q["request_cancel"], (job_id,)).fetchall()
        # Read after the commit: the write lock is not held while reading back every step.
        return self.get_workflow(workflow_id), ready

    def release_blocked(self, now: datetime, limit: int, after: int) -> tuple[int, int, set[str]]:
        """Recount blocked steps after id ``after`` from their dependencies; release the free.

        Up to ``limit`` steps, and no more once ``RELEASE_LOOKUPS`` dependencies were looked up
        (their ids and dependency counts are read first, the states step by step). Returns how
        many were released, the cursor (the last id examined, 0 at the end) and the queues
        where one became pending.
        """
        released = 0
        ready: set[str] = set()
        now_ts = rows.epoch(now)
        lookups = 0
        with self._write() as db:
            # One more than the batch: whether the walk goes on after it.
            found = db.execute(self.q["blocked_after"], (after, limit + 1)).fetchall()
            cursor = found[limit - 1][0] if len(found) > limit else 0
            found = found[:limit]
            for job_id, dependencies in found:
                lookups += dependencies
                step = db.execute(self.q["step_recount"], (job_id,)).fetchone()
                if step is not None and step[2] == S.BLOCKED:  # else: not a step
                    waiting = waiting_for(_states(step[3]), step[0])
                    db.execute(self.q["recount_step"], (waiting, job_id))
                    if waiting == 0:
                        moved = db.execute(self.q["release_step"], (now_ts, job_id)).fetchone()
                        if moved is not None:
                            released += 1
                            if moved[1] == S.PENDING:
                                ready.add(moved[0])
                if lookups >= RELEASE_LOOKUPS and job_id != found[-1][0]:
                    cursor = job_id
                    break
        return released, cursor, ready

    def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """The stored jobs of these ids that exist, in the order given (chunks of 500 ids)."""
        found: dict[int, Job] = {}
        with self._read() as db:
            for start in range(0, len(job_ids), _CHUNK):
                chunk = [int(i) for i in job_ids[start : start + _CHUNK]]
                for row in db.execute(self.q["get_jobs"], (json.dumps(chunk),)):
                    job = rows.job_from_row(row)
                    found[job.id] = job
        return [found[i] for i in job_ids if i in found]

    # -- the rules (taskward.graph), inside the caller's write transaction ----------------
    def _step_ended(
        self, db: sqlite3.Connection, job_id: int, state: JobState | None, now: datetime
    ) -> set[str]:
        """Step ``job_id`` ended in ``state`` (None: deleted): release or cancel its dependents.

        A dependent cancelled here ends in turn, and so on down the graph. Returns the queues
        where a step became pending. A job that is no step has no edges: one probe.
        """
        q = self.q
        ready: set[str] = set()
        now_ts, at = rows.epoch(now), now.isoformat()
        ended: list[tuple[int, JobState | None]] = [(job_id, state)]
        while ended:
            parent, end = ended.pop()
            message: str | None = None
            for child, on_failure in db.execute(q["step_children"], (parent,)).fetchall():
                if end is S.COMPLETED or on_failure == "continue":
                    left = db.execute(q["count_down_step"], (child,)).fetchone()
                    if left is not None and left[0] <= 0:
                        moved = db.execute(q["release_step"], (now_ts, child)).fetchone()
                        if moved is not None and moved[1] == S.PENDING:
                            ready.add(moved[0])
                    continue
                if message is None:
                    found = db.execute(q["step_name"], (parent,)).fetchone()
                    name = str(parent) if found is None else found[0]
                    message = dependency_failed_message(name, parent, end)
                if db.execute(q["cancel_step"], (now_ts, at, message, child)).fetchone():
                    db.execute(q["mark_propagated"], (1, child))
                    ended.append((child, S.CANCELLED))
        return ready

    def _step_retried(self, db: sqlite3.Connection, job: Job) -> Job:
        """``job``, just retried to pending; blocked instead while a dependency holds it back.

        Not a step: ``job`` unchanged. Its dependents cancelled by its end wait again, and
        theirs, down the graph; its blocked dependents are recounted.
        """
        q = self.q
        found = db.execute(q["step_recount"], (job.id,)).fetchone()
        if found is None:
            return job
        waiting = waiting_for(_states(found[3]), found[0])
        db.execute(q["store_step_waiting"], (waiting, 0, job.id))
        if waiting:
            db.execute(q["block_step"], (job.id,))
            job = evolve_job(job, state=S.BLOCKED)
        parents = [job.id]
        while parents:
            parent = parents.pop()
            for (child,) in db.execute(q["step_child_ids"], (parent,)).fetchall():
                step = db.execute(q["step_recount"], (child,)).fetchone()
                if step is None:
                    continue
                on_failure, propagated, state, dependencies = step
                again = state == S.CANCELLED and bool(propagated)
                if state != S.BLOCKED and not again:
                    continue
                waiting = waiting_for(_states(dependencies), on_failure)
                db.execute(q["store_step_waiting"], (waiting, 0 if again else propagated, child))
                if again:
                    db.execute(q["block_step"], (child,))
                    parents.append(child)
        return job

    def _step_deleted(self, db: sqlite3.Connection, job_id: int, now: datetime) -> set[str]:
        """Before deleting job ``job_id``: a step that has not ended ends for its dependents."""
        found = db.execute(self.q["job_state"], (job_id,)).fetchone()
        if found is None or S(found[0]) in _ENDED_OR_RUNNING:
            return set()
        return self._step_ended(db, job_id, None, now)


_ENDED_OR_RUNNING = FINISHED_STATES | {S.RUNNING}
_CHUNK = 500
"""Ids per statement of ``get_jobs`` (one JSON array parameter each)."""
_META = 12
"""The position of ``meta`` in ``insert_job_row``'s parameters (``rows.insert_params``)."""
_DEPENDS_ON = 13


def _states(dependencies: str) -> list[JobState | None]:
    """The states of a step's dependencies from their JSON array (null: deleted)."""
    return [None if s is None else S(s) for s in json.loads(dependencies)]
