"""Why a job is not running right now: every reason, in plain words and as data.

:func:`explain_job` reads the job and, while it waits, what holds its queue back, through
public :class:`~taskward.backends.base.Backend` calls only (``get``, ``paused_queues``,
``queue_flow``, ``list_jobs``, ``list_workers``). The answer, an :class:`Explanation`,
carries the job as shown to people (sensitive arguments as ``"***"``) and one
:class:`Reason` per cause, each with a stable ``code``, a sentence and JSON-able ``data``:

- a waiting job: ``scheduled`` (due later), ``backoff`` (retryable after a failed attempt),
  then every queue-level block in :data:`QUEUE_CHECKS` (``paused``, ``held``,
  ``global_limit``, ``rate_limit``, ``no_worker``; in a partitioned queue the key's own
  ``partition_held``, ``partition_limit``, ``partition_rate``), or, when nothing blocks it,
  ``waiting`` (for a free worker slot);
- a running job: ``running`` (worker, since, lease, attempt);
- a finished job: ``finished`` (state, when, why).

The queue-level checks are in :mod:`taskward.blocks`, the vocabulary (reasons, the store
reads, the words) in :mod:`taskward.reasons`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from taskward.backends.base import Backend
from taskward.blocks import QUEUE_CHECKS
from taskward.errors import NotSupported, WorkflowNotFound
from taskward.graph import OnFailure, counts_as_done, workflow_of
from taskward.jobs import Job, JobState
from taskward.limits import RUNNING_SHOWN
from taskward.reasons import (
    Check,
    Explanation,
    Inquiry,
    Reason,
    attempts_text,
    cut,
    error_data,
    error_text,
    iso,
    span,
    time_text,
)
from taskward.serialize import stored_payload_problem
from taskward.tasks import shown_job

__all__ = [
    "QUEUE_CHECKS",
    "Check",
    "Explanation",
    "Inquiry",
    "Reason",
    "explain_job",
]

AHEAD_SCAN = 1000
"""``waiting`` counts the jobs ahead of a pending job when its queue has at most this many."""


async def explain_job(
    backend: Backend,
    job_id: int,
    *,
    now: datetime,
    alive_since: datetime,
    view: Callable[[Job], Job] | None = None,
) -> Explanation:
    """Explain job ``job_id`` at ``now``; raise ``JobNotFound``.

    ``alive_since``: workers that heartbeat since then count as live (``no_worker``).
    ``view``: the job as people may see it (encrypted values opened or shown as
    ``"encrypted"``), applied before any reason quotes it.
    """
    job = await backend.get(job_id)
    if view is not None:
        job = view(job)
    inquiry = Inquiry(backend, now=now, alive_since=alive_since)
    if job.state is JobState.RUNNING:
        reasons = [_running(job, now)]
    elif job.state is JobState.BLOCKED:
        reasons = [await _blocked(job, backend)]
    elif job.is_finished:
        reasons = [_finished(job)]
    else:
        reasons = [r for r in (_not_due(job, now),) if r is not None]
        for check in QUEUE_CHECKS:
            reason = await check(job, inquiry)
            if reason is not None:
                reasons.append(reason)
        if not reasons:
            reasons.append(await _waiting(job, inquiry))
    return Explanation(
        job=_shown(job),
        running=job.state is JobState.RUNNING,
        reasons=tuple(reasons),
        at=now,
    )


def _shown(job: Job) -> dict[str, Any]:
    """The job as people may see it; stored args taskward did not write are not shown."""
    problem = stored_payload_problem(job.args, job.kwargs)
    if problem is None:
        return {**shown_job(job), "payload_error": None}
    return {**shown_job(replace(job, args=[], kwargs={})), "payload_error": problem}


# -- the job's own state ---------------------------------------------------------------------
def _not_due(job: Job, now: datetime) -> Reason | None:
    """``scheduled`` or ``backoff``: the job waits for its time (None for a pending job)."""
    if job.state is JobState.PENDING:
        return None
    due = job.scheduled_at
    seconds = (due - now).total_seconds()
    data: dict[str, Any] = {"due_at": iso(due), "in_seconds": round(seconds, 3)}
    late = "; it becomes pending when a live worker next promotes due jobs"
    if seconds > 0:
        when = f"{time_text(due)} (in {span(seconds)})"
    else:
        when = f"{time_text(due)} ({span(-seconds)} ago)"
    if job.state is JobState.RETRYABLE:
        error = job.last_error
        failed = f"attempt {job.attempt} of {job.max_attempts} failed"
        if error is not None:
            failed += f" with {error_text(error)}"
        text = (
            f"in retry backoff until {when}: {failed}"
            if seconds > 0
            else f"due for a retry since {when}: {failed}{late}"
        )
        data |= {
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "error": error_data(error),
        }
        return Reason(code="backoff", text=text, data=data)
    text = f"scheduled to run at {when}" if seconds > 0 else f"due since {when}{late}"
    return Reason(code="scheduled", text=text, data=data)


async def _blocked(job: Job, backend: Backend) -> Reason:
    """``blocked``: a workflow step waits for the dependencies that have not ended well."""
    workflow = workflow_of(job.meta)
    record = None
    if workflow is not None:
        with contextlib.suppress(WorkflowNotFound, NotSupported):
            record = await backend.get_workflow(workflow)
    steps = {s.job.id: s for s in record.steps} if record is not None else {}
    own = steps.get(job.id)
    on_failure: OnFailure = own.on_failure if own is not None else "cancel"
    waiting: list[dict[str, Any]] = []
    for dep_id in job.depends_on:
        dep = steps.get(dep_id)  # not a step of it any more: gone, which counts as ended
        if dep is not None and not counts_as_done(dep.job.state, on_failure):
            waiting.append({"job_id": dep_id, "task": dep.job.task, "state": dep.job.state.value})
    listed = ", ".join(f"job {w['job_id']} ({w['task']}, {w['state']})" for w in waiting[:5])
    more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
    text = f"a step of workflow {workflow} waiting for {listed or 'its dependencies'}{more}"
    data = {"workflow_id": workflow, "waiting_for": waiting[:RUNNING_SHOWN]}
    return Reason(code="blocked", text=text, data=data)


def _running(job: Job, now: datetime) -> Reason:
    lease = job.lease_until
    expired = lease is not None and lease < now
    text = (
        f"running on worker {job.attempted_by or '(unknown)'} since {time_text(job.attempted_at)}"
        f" (attempt {job.attempt} of {job.max_attempts})"
    )
    if lease is not None and expired:
        text += (
            f"; its lease expired at {time_text(lease)} "
            f"({span((now - lease).total_seconds())} ago):"
            " its worker may have died, and the job is rescued at the next maintenance pass"
        )
    elif lease is not None:
        text += f"; its lease runs until {time_text(lease)}"
    if job.cancel_requested:
        text += "; a cancel was requested"
    return Reason(
        code="running",
        text=text,
        data={
            "worker": job.attempted_by,
            "since": iso(job.attempted_at),
            "lease_until": iso(lease),
            "lease_expired": expired,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "cancel_requested": job.cancel_requested,
        },
    )


def _finished(job: Job) -> Reason:
    at = job.completed_at or job.discarded_at or job.cancelled_at
    error = None if job.state is JobState.COMPLETED else job.last_error
    when = f" at {time_text(at)}" if at is not None else ""
    if job.state is JobState.COMPLETED:
        returned = "returned a result" if job.result is not None else "returned nothing"
        text = f"it completed{when} after {attempts_text(job.attempt)} ({returned})"
    elif job.state is JobState.FAILED:
        text = f"it failed{when}: all {attempts_text(job.attempt)} failed"
        text += f", the last with {error_text(error)}" if error is not None else ""
    elif job.state is JobState.DISCARDED:
        text = f"it was discarded{when}"
        text += f": {error_text(error)}" if error is not None else ""
    else:
        text = f"it was cancelled{when}"
        text += f": {cut(error.message)}" if error is not None else ""
    if job.state is not JobState.COMPLETED:
        text += "; an operator may retry it"
    return Reason(
        code="finished",
        text=text,
        data={
            "state": job.state.value,
            "at": iso(at),
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "error": error_data(error),
            "result_present": job.result is not None,
        },
    )


async def _waiting(job: Job, inquiry: Inquiry) -> Reason:
    """Pending, due, nothing blocking: it waits for a free worker slot."""
    workers = [w for w in await inquiry.workers() if job.queue in w.queues]
    # The count first (one row): the jobs themselves are read only when few enough to order.
    pending = await inquiry.jobs(job.queue, JobState.PENDING, first=1)
    if not pending.total_is_estimate and 1 < pending.total_entries <= AHEAD_SCAN:
        pending = await inquiry.jobs(job.queue, JobState.PENDING, first=AHEAD_SCAN)
    ahead: int | None = None
    if not pending.total_is_estimate and pending.total_entries <= len(pending.items):
        mine = _claim_order(job)
        ahead = sum(1 for j in pending.items if j.id != job.id and _claim_order(j) < mine)
    if ahead is not None:
        where = f"{ahead} job(s) of queue {job.queue} are ahead of it"
    else:
        where = f"it is one of {pending.total_entries} pending jobs of queue {job.queue}"
    slots = sum(w.queues[job.queue] for w in workers)
    return Reason(
        code="waiting",
        text=(
            f"pending and due, nothing blocks it: waiting for a worker ({where}; "
            f"{len(workers)} live worker(s) with {slots} slot(s) serve the queue)"
        ),
        data={
            "queue": job.queue,
            "ahead": ahead,
            "pending": pending.total_entries,
            "workers": len(workers),
            "slots": slots,
        },
    )


def _claim_order(job: Job) -> tuple[int, datetime, int]:
    """The order workers claim pending jobs in: priority, then due time, then id."""
    return (job.priority, job.scheduled_at, job.id)
