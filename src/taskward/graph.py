"""Workflows as the store keeps them, and the rules every backend applies to their steps.

The steps to insert, the steps read back, and what happens when a step ends, is retried or
is deleted.

A workflow is a set of jobs (its *steps*) with edges "B waits for A". A step with
dependencies is inserted ``blocked``; it carries a count of the dependencies it still waits
for, decremented in the transaction (or script) that ends each of them, and it is released to
``pending`` (``scheduled`` when its own time is later) by the one that reaches zero: the
release happens once, whichever process ends the last dependency. The rules below are the
reference the SQL and Lua versions follow; the memory backend runs them as written.

Terms: a step *ends* when it reaches a final state (completed, failed, discarded,
cancelled) or is deleted. ``on_failure="cancel"`` (the default): a dependency that ends other
than completed cancels the step at once (*propagated*), and that cancel is an end in turn.
``on_failure="continue"``: any end counts, and the step runs once all its dependencies ended.
A *finalizer* is a step with ``continue`` that depends on every other step; cancelling the
workflow spares it, so it runs once everything else has ended, whatever the outcome.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from taskward.errors import InvalidOptions
from taskward.jobs import FINISHED_STATES, Job, JobState, NewJob

__all__ = [
    "MAX_RESULTS_PASSED",
    "MAX_STEPS",
    "WORKFLOW_META_KEY",
    "NewStep",
    "NewWorkflow",
    "OnFailure",
    "PassResult",
    "StoredStep",
    "WorkflowRecord",
    "WorkflowState",
    "counts_as_done",
    "dependency_failed_message",
    "released_state",
    "waiting_for",
]

WORKFLOW_META_KEY: Final = "taskward.workflow"
"""The job meta key of a workflow step: ``{"id": workflow id, "step": name, "pass": mode,
"dependents": bool}``. The worker reads ``pass`` (what the step receives) and ``dependents``
(whether ending the step must release others) from it; the store keeps the rest itself."""

MAX_STEPS: Final = 100_000
"""Steps in one workflow: one transaction stores them all."""

MAX_NAME_CHARS: Final = 200
"""Characters in a workflow's or a step's name."""

MAX_RESULTS_PASSED: Final = 10_000
"""Dependencies whose results one step may receive (a chord's callback): past it the step
is refused at build time; store large results elsewhere and pass their keys."""

OnFailure = Literal["cancel", "continue"]
PassResult = Literal["none", "one", "all", "outcome"]
"""What a step receives as its first positional argument: nothing; its one dependency's
result; the list of its dependencies' results in order; or (a finalizer) the workflow's
outcome, ``{"workflow_id", "completed", "failed", "discarded", "cancelled"}`` (step names)."""


class WorkflowState(StrEnum):
    """A workflow's overall state, derived from its steps' states."""

    RUNNING = "running"
    """Some step has not ended."""
    COMPLETED = "completed"
    """Every step completed."""
    FAILED = "failed"
    """Every step ended, and one failed or was discarded."""
    CANCELLED = "cancelled"
    """Every step ended, none failed, and one was cancelled."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewStep:
    """One step to insert. ``depends_on``: indexes of earlier steps of the same workflow."""

    name: str
    job: NewJob
    depends_on: tuple[int, ...] = ()
    on_failure: OnFailure = "cancel"
    finalizer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NewWorkflow:
    """A validated workflow ready to insert: its steps, dependencies first.

    Steps with dependencies have ``job.state == BLOCKED``; the store inserts them all in one
    transaction, or none.
    """

    name: str | None
    steps: tuple[NewStep, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredStep:
    """One step as read back: its name, job, the names it depends on, and its policy."""

    name: str
    job: Job
    depends_on: tuple[str, ...] = ()
    on_failure: OnFailure = "cancel"
    finalizer: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible: the step's fields, with the job's id, state and task."""
        return {
            "name": self.name,
            "job_id": self.job.id,
            "task": self.job.task,
            "queue": self.job.queue,
            "state": self.job.state.value,
            "depends_on": list(self.depends_on),
            "on_failure": self.on_failure,
            "finalizer": self.finalizer,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRecord:
    """A stored workflow: its id, name, when it was inserted, and its steps in insert order."""

    id: int
    name: str | None
    inserted_at: datetime
    steps: tuple[StoredStep, ...] = field(default_factory=tuple)

    @property
    def state(self) -> WorkflowState:
        """Running while a step has not ended; then completed, failed or cancelled."""
        states = {s.job.state for s in self.steps}
        if not states <= FINISHED_STATES:
            return WorkflowState.RUNNING
        if states <= {JobState.COMPLETED}:
            return WorkflowState.COMPLETED
        if states & {JobState.FAILED, JobState.DISCARDED}:
            return WorkflowState.FAILED
        return WorkflowState.CANCELLED

    def step(self, name: str) -> StoredStep:
        """The step called ``name`` (KeyError if none)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def outcome(self) -> dict[str, Any]:
        """What a finalizer receives: the workflow's id and its steps' names by final state."""
        out: dict[str, Any] = {"workflow_id": self.id}
        for state in ("completed", "failed", "discarded", "cancelled"):
            out[state] = [s.name for s in self.steps if s.job.state == state and not s.finalizer]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible: id, name, state, inserted_at and the steps."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state.value,
            "inserted_at": self.inserted_at.isoformat(),
            "steps": [s.to_dict() for s in self.steps],
        }


def counts_as_done(dependency: JobState, on_failure: OnFailure) -> bool:
    """True when a dependency in state ``dependency`` no longer holds a step back."""
    if on_failure == "continue":
        return dependency in FINISHED_STATES
    return dependency is JobState.COMPLETED


def waiting_for(dependencies: Sequence[JobState | None], on_failure: OnFailure) -> int:
    """How many dependencies still hold a step back (None: deleted, which counts as ended).

    What the sweep and a retry recompute; the hot path keeps the same number by decrements.
    """
    return sum(1 for s in dependencies if s is not None and not counts_as_done(s, on_failure))


def released_state(job_scheduled_at: datetime, now: datetime) -> JobState:
    """The state a released step moves to: pending, or scheduled when its time is later."""
    return JobState.SCHEDULED if job_scheduled_at > now else JobState.PENDING


def dependency_failed_message(name: str, job_id: int, state: JobState | None) -> str:
    """The reason a propagated cancel records on the step it cancels."""
    how = "was deleted" if state is None else f"ended {state.value}"
    return f"dependency {name!r} (job {job_id}) {how}"


def step_marker(meta: Any) -> dict[str, Any] | None:
    """The workflow marker in a job's ``meta`` (:data:`WORKFLOW_META_KEY`); None: not a step."""
    marker = meta.get(WORKFLOW_META_KEY) if isinstance(meta, dict) else None
    return marker if isinstance(marker, dict) else None


def workflow_of(meta: Any) -> int | None:
    """The id of the workflow a job's ``meta`` marks it a step of (None: not a step)."""
    marker = step_marker(meta)
    workflow = marker.get("id") if marker is not None else None
    return workflow if isinstance(workflow, int) else None


def marked_meta(meta: dict[str, Any], workflow_id: int) -> dict[str, Any]:
    """A copy of a step's ``meta`` with the workflow's id in its marker: what the store writes.

    The common meta, the marker alone (whose values are scalars), is rebuilt; any other is
    copied deeply, so the stored meta shares nothing with the caller's.
    """
    marker = meta.get(WORKFLOW_META_KEY)
    if isinstance(marker, dict) and len(meta) == 1:
        return {WORKFLOW_META_KEY: {**marker, "id": workflow_id}}
    own = copy.deepcopy(meta)
    own[WORKFLOW_META_KEY] = {**dict(own.get(WORKFLOW_META_KEY, {})), "id": workflow_id}
    return own


def step_meta(
    base: Mapping[str, Any], *, workflow: int, name: str, passes: PassResult, dependents: bool
) -> dict[str, Any]:
    """``base`` with the workflow marker (see :data:`WORKFLOW_META_KEY`)."""
    marker = {"id": workflow, "step": name, "pass": passes, "dependents": dependents}
    return {**base, WORKFLOW_META_KEY: marker}


def validate_new_workflow(flow: NewWorkflow) -> None:
    """Refuse a workflow no store should take: empty, too big, bad edges, duplicate names."""
    if not flow.steps:
        raise InvalidOptions("a workflow needs at least one step")
    if len(flow.steps) > MAX_STEPS:
        raise InvalidOptions(f"a workflow has at most {MAX_STEPS:,} steps, got {len(flow.steps):,}")
    if flow.name is not None:
        check_name("a workflow's name", flow.name)
    names: set[str] = set()
    for index, step in enumerate(flow.steps):
        check_name("a step's name", step.name)
        if step.on_failure not in ("cancel", "continue"):
            raise InvalidOptions(
                f"step {step.name!r}: on_failure is 'cancel' or 'continue', got {step.on_failure!r}"
            )
        if step.name in names:
            raise InvalidOptions(f"two steps are called {step.name!r}")
        names.add(step.name)
        if any(not 0 <= d < index for d in step.depends_on):
            raise InvalidOptions(f"step {step.name!r} depends on a step that does not come first")
        if len(set(step.depends_on)) != len(step.depends_on):
            raise InvalidOptions(f"step {step.name!r} lists a dependency twice")
        blocked = step.job.state is JobState.BLOCKED
        if blocked != bool(step.depends_on):
            raise InvalidOptions(f"step {step.name!r}: blocked exactly when it has dependencies")


def check_name(what: str, name: object) -> str:
    """``name`` if it is a usable workflow or step name, else ``InvalidOptions``."""
    if not isinstance(name, str) or not name:
        raise InvalidOptions(f"{what} is a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_CHARS or "\x00" in name:
        raise InvalidOptions(f"{what} has at most {MAX_NAME_CHARS} characters and no NUL")
    return name
