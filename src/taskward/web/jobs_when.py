"""The job lists' "When" column: the time that fits each job's state, and how to sort by it.

A scheduled job says when it is due, a waiting one how long it has waited, a running one how
long it has run (with its progress and timeout), a finished one when it finished, died or
was cancelled: relative to ``now`` (the manager's clock), with the absolute time kept for
the hover title. Pure functions of the job and ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskward.jobs import Job, JobState
from taskward.web.formatting import age, relative
from taskward.web.job_view import progress_of

__all__ = ["Progress", "When", "job_when", "when_sort_field"]


@dataclass(frozen=True, slots=True)
class Progress:
    """A running job's reported progress, ``done`` of ``total`` (both numbers)."""

    done: float
    total: float

    @property
    def percent(self) -> int:
        """``done`` as a whole percentage of ``total``, 0..100."""
        ratio = self.done / self.total  # inf for a tiny total: then it is a full bar
        return 100 if not math.isfinite(ratio) else max(0, min(100, math.floor(100 * ratio)))


@dataclass(frozen=True, slots=True, kw_only=True)
class When:
    """What the list shows of a job's time: a phrase, and the time it is measured from."""

    text: str
    """``due in 5 min``, ``waiting for 3 min``, ``running for 6 min``, ``died 4 min ago``."""
    at: datetime | None
    """The absolute time behind the phrase (shown on hover), None when unknown."""
    progress: Progress | None = None
    timeout: str | None = None
    """``timeout 10 min`` for a running job with a timeout."""


def _since(at: datetime, now: datetime) -> str:
    return age(max(0.0, (now - at).total_seconds()))


def _progress(value: Any) -> Progress | None:
    """The ``done``/``total`` of a job's progress when both are usable counts (total above 0).

    Read as the job page reads it (:func:`~taskward.web.job_view.progress_of`: finite,
    not negative, not huge), so no stored value can break the list.
    """
    try:
        shown = progress_of(value)
    except (OverflowError, ValueError):  # a ratio no float holds (total 1e-320): no bar
        return None
    if shown is None or shown.fraction is None or shown.done is None or shown.total is None:
        return None
    return Progress(done=shown.done, total=shown.total)


def _running(job: Job, now: datetime) -> When:
    started = job.attempted_at
    timeout = f"timeout {age(job.timeout)}" if job.timeout else None
    if started is None:
        return When(text="running", at=None, timeout=timeout)
    return When(
        text=f"running for {_since(started, now)}",
        at=started,
        progress=_progress(job.progress),
        timeout=timeout,
    )


def job_when(job: Job, now: datetime) -> When:
    """The "When" cell of ``job`` (a :class:`~taskward.jobs.Job`) at ``now``."""
    state = job.state
    if state in (JobState.SCHEDULED, JobState.RETRYABLE):
        return When(text=f"due {relative(job.scheduled_at, now)}", at=job.scheduled_at)
    if state in (JobState.PENDING, JobState.BLOCKED):
        return When(text=f"waiting for {_since(job.scheduled_at, now)}", at=job.scheduled_at)
    if state is JobState.RUNNING:
        return _running(job, now)
    if state is JobState.COMPLETED:
        return When(text=f"finished {relative(job.completed_at, now)}", at=job.completed_at)
    if state in (JobState.FAILED, JobState.DISCARDED):
        last = job.last_error
        died = job.discarded_at or job.completed_at or (last.at if last else None)
        return When(text=f"died {relative(died, now)}" if died else "died", at=died)
    return When(text=f"cancelled {relative(job.cancelled_at, now)}", at=job.cancelled_at)


def when_sort_field(states: frozenset[JobState] | None) -> str:
    """The sortable field nearest to the "When" of jobs in ``states`` (one listing).

    Waiting jobs sort by when they are due, running and dead ones by their last attempt's
    start, completed ones by when they finished; a mix by when they were inserted.
    """
    if states and states <= {
        JobState.SCHEDULED,
        JobState.RETRYABLE,
        JobState.PENDING,
        JobState.BLOCKED,
    }:
        return "scheduled_at"
    if states and states <= {JobState.RUNNING, JobState.FAILED, JobState.DISCARDED}:
        return "attempted_at"
    if states == frozenset({JobState.COMPLETED}):
        return "completed_at"
    return "inserted_at"
