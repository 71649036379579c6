"""The workflow half of the memory backend: steps, their edges, and the release rules.

The rules of ``taskward.graph`` run as written: the reference the SQL and Lua versions follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from taskward.backends.base import RELEASE_LOOKUPS
from taskward.backends.sql.rows import evolve_job
from taskward.errors import WorkflowNotFound
from taskward.graph import (
    NewWorkflow,
    OnFailure,
    StoredStep,
    WorkflowRecord,
    dependency_failed_message,
    marked_meta,
    released_state,
    validate_new_workflow,
    waiting_for,
)
from taskward.jobs import (
    FINISHED_STATES,
    WAITING_STATES,
    ErrorRecord,
    Job,
    JobState,
    NewJob,
)

S = JobState


@dataclass(slots=True)
class StepRow:
    """What the store keeps per step besides its job: the count it waits for, mutable."""

    workflow: int
    name: str
    depends_on: tuple[int, ...]
    on_failure: OnFailure
    finalizer: bool
    waiting: int
    propagated: bool = False
    """Cancelled because a dependency ended: a retry of that dependency makes it wait again."""


@dataclass(slots=True)
class WorkflowRow:
    """A workflow: its name, insert time and step job ids in insert order."""

    name: str | None
    inserted_at: datetime
    jobs: list[int]


class MemoryWorkflows:
    """Workflow storage and the release rules; mixed into ``MemoryBackend``."""

    _jobs: dict[int, Job]
    _next_id: int

    def __init__(self) -> None:
        self._steps: dict[int, StepRow] = {}
        self._children: dict[int, list[int]] = {}
        self._workflows: dict[int, WorkflowRow] = {}
        self._next_workflow = 1

    # Provided by MemoryBackend.
    def _store(self, job: Job) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    def _new_job(self, new: NewJob, now: datetime) -> Job:
        raise NotImplementedError

    async def insert_workflow(self, flow: NewWorkflow, *, now: datetime) -> WorkflowRecord:
        """Store every step (validated first, so nothing is stored on error)."""
        validate_new_workflow(flow)
        workflow_id = self._next_workflow
        self._next_workflow += 1
        ids: list[int] = []
        for step in flow.steps:
            depends_on = tuple(ids[d] for d in step.depends_on)
            meta = marked_meta(step.job.meta, workflow_id)
            job = evolve_job(self._new_job(step.job, now), meta=meta, depends_on=depends_on)
            self._store(job)
            ids.append(job.id)
            self._steps[job.id] = StepRow(
                workflow=workflow_id,
                name=step.name,
                depends_on=depends_on,
                on_failure=step.on_failure,
                finalizer=step.finalizer,
                waiting=len(depends_on),
            )
            for parent in depends_on:
                self._children.setdefault(parent, []).append(job.id)
        self._workflows[workflow_id] = WorkflowRow(name=flow.name, inserted_at=now, jobs=ids)
        self._wake()
        return await self.get_workflow(workflow_id)

    async def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """The workflow and its steps still stored, in insert order."""
        row = self._workflows.get(workflow_id)
        if row is None:
            raise WorkflowNotFound(workflow_id)
        steps = []
        for job_id in row.jobs:
            job, step = self._jobs.get(job_id), self._steps.get(job_id)
            if job is None or step is None:
                continue  # pruned or deleted
            names = tuple(self._steps[d].name for d in step.depends_on if d in self._steps)
            steps.append(
                StoredStep(
                    name=step.name,
                    job=job,
                    depends_on=names,
                    on_failure=step.on_failure,
                    finalizer=step.finalizer,
                )
            )
        return WorkflowRecord(
            id=workflow_id, name=row.name, inserted_at=row.inserted_at, steps=tuple(steps)
        )

    async def cancel_workflow(
        self, workflow_id: int, *, reason: str, now: datetime
    ) -> WorkflowRecord:
        """Cancel every step not ended but the finalizers; ask running ones to stop."""
        row = self._workflows.get(workflow_id)
        if row is None:
            raise WorkflowNotFound(workflow_id)
        for job_id in row.jobs:
            job, step = self._jobs.get(job_id), self._steps.get(job_id)
            if job is None or step is None or step.finalizer:
                continue
            if job.state in WAITING_STATES:
                self._store(cancelled(job, now, "Cancelled", reason))
                self._step_ended(job_id, S.CANCELLED, now)
            elif job.state is S.RUNNING:
                self._jobs[job_id] = evolve_job(job, cancel_requested=True)
        return await self.get_workflow(workflow_id)

    async def release_blocked(
        self, *, now: datetime, limit: int, after: int = 0
    ) -> tuple[int, int]:
        """Recount blocked steps after id ``after`` from their dependencies' states.

        Up to ``limit`` of them, and no more once ``RELEASE_LOOKUPS`` dependencies were looked
        up; the free ones are released. Returns (released, last id examined or 0 at the end).
        """
        if limit <= 0:
            return 0, after
        released = 0
        lookups = 0
        blocked = sorted(i for i, j in self._jobs.items() if j.state is S.BLOCKED and i > after)
        batch = blocked[:limit]
        cursor = 0 if len(blocked) <= len(batch) else batch[-1]
        for job_id in batch:
            step = self._steps.get(job_id)
            if step is not None:
                lookups += len(step.depends_on)
                step.waiting = waiting_for(
                    [self._state_of(d) for d in step.depends_on], step.on_failure
                )
                if step.waiting == 0:
                    job = self._jobs[job_id]
                    self._store(evolve_job(job, state=released_state(job.scheduled_at, now)))
                    released += 1
            if lookups >= RELEASE_LOOKUPS and job_id != batch[-1]:
                cursor = job_id
                break
        if released:
            self._wake()
        return released, cursor

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """The stored jobs of these ids that exist, in the order given."""
        return [self._jobs[i] for i in job_ids if i in self._jobs]

    # -- the rules (taskward.graph) --------------------------------------------------------
    def _state_of(self, job_id: int) -> JobState | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.state

    def _step_ended(self, job_id: int, state: JobState | None, now: datetime) -> None:
        """Step ``job_id`` ended in ``state`` (None: deleted): release or cancel its dependents.

        A dependent cancelled here ends in turn, and so on down the graph.
        """
        ended: list[tuple[int, JobState | None]] = [(job_id, state)]
        woken = False
        while ended:
            parent, end = ended.pop()
            for child_id in self._children.get(parent, ()):
                step, child = self._steps.get(child_id), self._jobs.get(child_id)
                if step is None or child is None or child.state is not S.BLOCKED:
                    continue
                if end is S.COMPLETED or step.on_failure == "continue":
                    step.waiting -= 1
                    if step.waiting <= 0:
                        self._store(
                            evolve_job(child, state=released_state(child.scheduled_at, now))
                        )
                        woken = True
                    continue
                name = self._steps[parent].name if parent in self._steps else str(parent)
                message = dependency_failed_message(name, parent, end)
                self._store(cancelled(child, now, "DependencyFailed", message))
                step.propagated = True
                ended.append((child_id, S.CANCELLED))
        if woken:
            self._wake()

    def _step_retried(self, job: Job, now: datetime) -> Job:
        """Store ``job``, a retried step; blocked instead of pending while a dependency waits.

        Its dependents cancelled by its end wait again, and theirs, down the graph.
        """
        step = self._steps[job.id]
        step.propagated = False
        step.waiting = waiting_for([self._state_of(d) for d in step.depends_on], step.on_failure)
        if step.waiting:
            job = evolve_job(job, state=S.BLOCKED)
        self._store(job)
        parents = [job.id]
        while parents:
            parent = parents.pop()
            for child_id in self._children.get(parent, ()):
                child_step, child = self._steps.get(child_id), self._jobs.get(child_id)
                if child_step is None or child is None:
                    continue
                again = child.state is S.CANCELLED and child_step.propagated
                if child.state is not S.BLOCKED and not again:
                    continue
                states = [self._state_of(d) for d in child_step.depends_on]
                child_step.waiting = waiting_for(states, child_step.on_failure)
                if again:
                    child_step.propagated = False
                    self._store(evolve_job(child, state=S.BLOCKED, cancelled_at=None))
                    parents.append(child_id)
        return job

    def _forget_step(self, job_id: int, now: datetime, *, deleted: bool) -> None:
        """Drop a step's row (pruned or deleted); a delete is an end its dependents see."""
        if job_id not in self._steps:
            return
        if deleted and self._state_of(job_id) not in FINISHED_STATES:
            self._step_ended(job_id, None, now)
        del self._steps[job_id]
        self._children.pop(job_id, None)


def cancelled(job: Job, now: datetime, kind: str, reason: str) -> Job:
    """``job`` cancelled at ``now``, the reason recorded in its history."""
    record = ErrorRecord(attempt=job.attempt, at=now, kind=kind, message=reason)
    return evolve_job(job, state=S.CANCELLED, cancelled_at=now, errors=(*job.errors, record))
