"""The job state machine: the legal moves, and the one pure function that picks each move.

```mermaid
stateDiagram-v2
    blocked --> pending: its dependencies ended (released)
    blocked --> scheduled: released, its own time is later
    blocked --> cancelled: a dependency failed / cancel_task
    scheduled --> pending: due
    retryable --> pending: due
    pending --> running: fetched
    running --> completed: returned
    running --> retryable: error, attempts left / orphaned
    running --> failed: error, none left
    running --> discarded: Discard
    running --> scheduled: Snooze
    running --> cancelled: Cancel / orphaned after a cancel request
    scheduled --> cancelled: cancel_task
    pending --> cancelled: cancel_task
    retryable --> cancelled: cancel_task
    failed --> pending: retry_task
    discarded --> pending: retry_task
    cancelled --> pending: retry_task
    failed --> blocked: retry_task, a dependency not done
    discarded --> blocked: retry_task, a dependency not done
    cancelled --> blocked: retry_task or a dependency retried
```

Backends never choose a state: the worker turns a run into an :data:`Outcome`, then
:func:`next_update` turns ``(job, outcome, now)`` into a :class:`~taskward.jobs.JobUpdate` that the
backend writes, fenced on the job still being ``running`` at that attempt and owned by the writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from taskward.backoff import RetryPolicy
from taskward.graph import step_marker
from taskward.jobs import MAX_DELAY_SECONDS, ErrorRecord, Job, JobState, JobUpdate

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
        (S.BLOCKED, S.PENDING),
        (S.BLOCKED, S.SCHEDULED),
        (S.BLOCKED, S.CANCELLED),
        (S.FAILED, S.BLOCKED),
        (S.DISCARDED, S.BLOCKED),
        (S.CANCELLED, S.BLOCKED),
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
    retry: bool = True
    """False: no later attempt can do better (the task is not registered), so fail now."""


@dataclass(frozen=True, slots=True)
class Snoozed:
    """The job asked to run again after ``seconds``, without spending an attempt.

    ``hold_queue``: the job raised ``RateLimited``; its queue (its key, in a partitioned queue,
    unless ``whole_queue``) is held back as long.
    """

    seconds: float
    hold_queue: bool = False
    whole_queue: bool = False

    def __post_init__(self) -> None:
        if math.isnan(self.seconds):  # Snooze refuses it too; NaN has no place in a schedule
            raise ValueError("a job cannot snooze for NaN seconds")


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
    Nothing else raises: delays are capped at ``MAX_DELAY_SECONDS``, a retry policy that
    raises (or answers NaN) fails the job, and error text is made storable as UTF-8.
    """
    if job.state is not JobState.RUNNING:
        raise ValueError(f"job {job.id} is {job.state}, only a running job has an outcome")
    match outcome:
        case Completed(result=result):
            return _update(job, now, S.COMPLETED, result=result)
        case Snoozed(seconds=seconds):
            return _update(
                job, now, S.SCHEDULED, scheduled_at=_after(now, seconds), refund_attempt=True
            )
        case Cancelled(reason=reason):
            return _update(job, now, S.CANCELLED, error=_error(job, now, "Cancelled", reason))
        case Discarded(reason=reason):
            return _update(job, now, S.DISCARDED, error=_error(job, now, "Discarded", reason))
        case Failed(kind=kind, message=message, traceback=tb, retry=False):
            return _update(job, now, S.FAILED, error=_error(job, now, kind, message, tb))
        case Failed(kind=kind, message=message, traceback=tb):
            return _failed_attempt(job, now, policy, kind, message, tb)
        case Orphaned():
            return replace(_orphaned(job, now, policy), lease_expired_before=now)
    raise TypeError(f"unknown outcome {outcome!r}")  # pragma: no cover - exhaustive match


def _update(job: Job, now: datetime, state: JobState, **fields: Any) -> JobUpdate:
    marker = step_marker(job.meta)
    dependents = marker is not None and marker.get("dependents") is True
    return JobUpdate(
        job_id=job.id, attempt=job.attempt, at=now, state=state, dependents=dependents, **fields
    )


def _orphaned(job: Job, now: datetime, policy: RetryPolicy) -> JobUpdate:
    lost = "the worker stopped heartbeating (lease expired)"
    if job.cancel_requested:
        # An operator asked to stop it before its worker died: honour that, never re-run it.
        reason = f"cancelled by an operator while running; {lost}"
        return _update(job, now, S.CANCELLED, error=_error(job, now, "Cancelled", reason))
    return _failed_attempt(job, now, policy, "Orphaned", lost)


def _failed_attempt(
    job: Job, now: datetime, policy: RetryPolicy, kind: str, message: str, tb: str | None = None
) -> JobUpdate:
    if job.attempt >= job.max_attempts:
        return _update(job, now, S.FAILED, error=_error(job, now, kind, message, tb))
    try:
        retry_at = _after(now, policy.delay(job.attempt))
    except Exception as exc:
        # The function already ran: a broken policy must not leave the job stuck in running.
        # A dead letter saying why is visible, and an operator can retry it once it is fixed.
        message = f"{message} [not retried: the retry policy raised {type(exc).__name__}: {exc}]"
        return _update(job, now, S.FAILED, error=_error(job, now, kind, message, tb))
    error = _error(job, now, kind, message, tb)
    return _update(job, now, S.RETRYABLE, scheduled_at=retry_at, error=error)


def _after(now: datetime, seconds: float) -> datetime:
    """Return ``now + seconds``, the delay capped to 0..MAX_DELAY_SECONDS; NaN is refused."""
    if math.isnan(seconds):
        raise ValueError("a delay of NaN seconds")
    return now + timedelta(seconds=min(max(float(seconds), 0.0), MAX_DELAY_SECONDS))


def _error(job: Job, now: datetime, kind: str, message: str, tb: str | None = None) -> ErrorRecord:
    return ErrorRecord(
        attempt=job.attempt,
        at=now,
        kind=storable_text(kind),
        message=storable_text(message),
        traceback=None if tb is None else storable_text(tb),
    )


def storable_text(text: str) -> str:
    r"""Return ``text`` with lone surrogates escaped (``\udcff``), so any backend stores it.

    An exception message may carry one (a file name from ``os.listdir`` that is not UTF-8);
    UTF-8 cannot encode it, and the write of the whole outcome batch would fail.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text
