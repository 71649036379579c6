"""The job state machine: the legal moves, and the one pure function that picks each move.

```mermaid
stateDiagram-v2
    scheduled --> pending: due
    retryable --> pending: due
    pending --> running: fetched
    running --> completed: returned
    running --> retryable: error, attempts left / orphaned
    running --> failed: error, none left
    running --> discarded: Discard
    running --> scheduled: Snooze
    running --> cancelled: Cancel
    scheduled --> cancelled: cancel_task
    pending --> cancelled: cancel_task
    retryable --> cancelled: cancel_task
    failed --> pending: retry_task
    discarded --> pending: retry_task
    cancelled --> pending: retry_task
```

Backends never choose a state: the worker turns a run into an :data:`Outcome`, then
:func:`next_update` turns ``(job, outcome, now)`` into a :class:`~taskward.jobs.JobUpdate` that the
backend writes, fenced on the job still being ``running`` at that attempt and owned by the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from taskward.backoff import RetryPolicy
from taskward.jobs import ErrorRecord, Job, JobState, JobUpdate

S = JobState
LEGAL_MOVES: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (S.SCHEDULED, S.PENDING),
        (S.RETRYABLE, S.PENDING),
        (S.PENDING, S.RUNNING),
        (S.RUNNING, S.COMPLETED),
        (S.RUNNING, S.RETRYABLE),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.DISCARDED),
        (S.RUNNING, S.SCHEDULED),
        (S.RUNNING, S.CANCELLED),
        (S.SCHEDULED, S.CANCELLED),
        (S.PENDING, S.CANCELLED),
        (S.RETRYABLE, S.CANCELLED),
        (S.FAILED, S.PENDING),
        (S.DISCARDED, S.PENDING),
        (S.CANCELLED, S.PENDING),
    }
)


def is_legal(source: JobState, target: JobState) -> bool:
    """Return True if the state machine allows moving from ``source`` to ``target``."""
    return (source, target) in LEGAL_MOVES


@dataclass(frozen=True, slots=True)
class Completed:
    """The function returned ``result``."""

    result: Any = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt raised (or timed out); ``kind`` is the exception's type name."""

    kind: str
    message: str
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class Snoozed:
    """The job asked to run again after ``seconds``, without spending an attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The job (or an operator, while it ran) cancelled it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Discarded:
    """The job asked to go straight to the dead letters."""

    reason: str


@dataclass(frozen=True, slots=True)
class Orphaned:
    """The worker running the job stopped heartbeating; its lease expired."""


Outcome = Completed | Failed | Snoozed | Cancelled | Discarded | Orphaned


def next_update(job: Job, outcome: Outcome, now: datetime, policy: RetryPolicy) -> JobUpdate:
    """Decide what a running ``job`` becomes after ``outcome`` at ``now``.

    ``policy`` gives the backoff before the next attempt when an attempt failed and attempts
    remain. The job must be ``running``; the returned update is fenced on its current attempt.
    """
    if job.state is not JobState.RUNNING:
        raise ValueError(f"job {job.id} is {job.state}, only a running job has an outcome")
    match outcome:
        case Completed(result=result):
            return _update(job, now, S.COMPLETED, result=result)
        case Snoozed(seconds=seconds):
            return _update(
                job,
                now,
                S.SCHEDULED,
                scheduled_at=now + timedelta(seconds=seconds),
                refund_attempt=True,
            )
        case Cancelled(reason=reason):
            return _update(job, now, S.CANCELLED, error=_error(job, now, "Cancelled", reason))
        case Discarded(reason=reason):
            return _update(job, now, S.DISCARDED, error=_error(job, now, "Discarded", reason))
        case Failed(kind=kind, message=message, traceback=tb):
            return _failed_attempt(job, now, policy, _error(job, now, kind, message, tb))
        case Orphaned():
            error = _error(job, now, "Orphaned", "the worker stopped heartbeating (lease expired)")
            return replace(_failed_attempt(job, now, policy, error), lease_expired_before=now)
    raise TypeError(f"unknown outcome {outcome!r}")  # pragma: no cover - exhaustive match


def _update(job: Job, now: datetime, state: JobState, **fields: Any) -> JobUpdate:
    return JobUpdate(job_id=job.id, attempt=job.attempt, at=now, state=state, **fields)


def _failed_attempt(job: Job, now: datetime, policy: RetryPolicy, error: ErrorRecord) -> JobUpdate:
    if job.attempt >= job.max_attempts:
        return _update(job, now, S.FAILED, error=error)
    delay = policy.delay(job.attempt)
    return _update(job, now, S.RETRYABLE, scheduled_at=now + timedelta(seconds=delay), error=error)


def _error(job: Job, now: datetime, kind: str, message: str, tb: str | None = None) -> ErrorRecord:
    return ErrorRecord(attempt=job.attempt, at=now, kind=kind, message=message, traceback=tb)
