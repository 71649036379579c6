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

Extension point: a new kind of block is one more :data:`Check` in :data:`QUEUE_CHECKS`,
reading the store through :class:`Inquiry` (add a cached read there when it needs one). Each
check answers for one job, so the explanation lists every block at once, in the order of the
checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from taskward.backends.base import Backend
from taskward.jobs import ErrorRecord, Job, JobFilter, JobState, Page, WorkerInfo
from taskward.limits import QueueFlow, QueueLimits
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

HOLDERS_SHOWN = 100
"""At most this many ids of the jobs holding a full global limit are listed."""
AHEAD_SCAN = 1000
"""``waiting`` counts the jobs ahead of a pending job when its queue has at most this many."""
MESSAGE_CHARS = 200
"""An error message is cut to this many characters in a reason's text (``data`` has it all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """One cause of a job not running now (or, for ``running``, what it is doing).

    ``code``: short and stable, for programs (``scheduled``, ``backoff``, ``paused``,
    ``held``, ``global_limit``, ``rate_limit``, ``partition_held``, ``partition_limit``,
    ``partition_rate``, ``no_worker``, ``waiting``, ``running``, ``finished``); ``text``: the
    same in plain words for people; ``data``: the facts behind it, JSON-able (times as ISO
    8601 strings).
    """

    code: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"code", "text", "data"}``."""
        return {"code": self.code, "text": self.text, "data": self.data}


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Why job ``job["id"]`` is or is not running at ``at``.

    ``job``: the job as shown to people (:func:`taskward.tasks.shown_job`: sensitive
    arguments as ``"***"``, no unique key); ``running``: whether it runs now; ``reasons``:
    every cause, in order (never empty).
    """

    job: dict[str, Any]
    running: bool
    reasons: tuple[Reason, ...]
    at: datetime

    @property
    def codes(self) -> tuple[str, ...]:
        """The reasons' codes, in order."""
        return tuple(r.code for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (``at`` as ISO 8601)."""
        return {
            "job": self.job,
            "running": self.running,
            "reasons": [r.to_dict() for r in self.reasons],
            "at": self.at.isoformat(),
        }


class Inquiry:
    """What the checks read from the store for one explanation, each read at most once."""

    def __init__(self, backend: Backend, *, now: datetime, alive_since: datetime) -> None:
        self.backend = backend
        self.now = now
        self.alive_since = alive_since
        """A worker that heartbeat at or after this time counts as live."""
        self._paused: set[str] | None = None
        self._flows: dict[str, QueueFlow] | None = None
        self._keys: dict[tuple[str, str], QueueFlow] = {}
        self._workers: list[WorkerInfo] | None = None

    async def paused(self) -> set[str]:
        """The paused queues."""
        if self._paused is None:
            self._paused = await self.backend.paused_queues()
        return self._paused

    async def flow(self, queue: str) -> QueueFlow:
        """``queue``'s limits, hold and rate window (empty when it has none)."""
        if self._flows is None:
            self._flows = await self.backend.queue_flow()
        return self._flows.get(queue, QueueFlow())

    async def key_flow(self, job: Job) -> QueueFlow | None:
        """Where ``job``'s key stands, when its queue is partitioned (else None)."""
        if (await self.flow(job.queue)).limits.partition_by is None:
            return None
        key = job.partition_key or ""
        if (job.queue, key) not in self._keys:
            self._keys[(job.queue, key)] = await self.backend.partition_flow(job.queue, key)
        return self._keys[(job.queue, key)]

    async def limits(self, queue: str) -> QueueLimits:
        """``queue``'s limits (empty when it has none)."""
        return (await self.flow(queue)).limits

    async def workers(self) -> list[WorkerInfo]:
        """The live workers."""
        if self._workers is None:
            self._workers = await self.backend.list_workers(alive_since=self.alive_since)
        return self._workers

    async def jobs(self, queue: str, state: JobState, *, first: int) -> Page[Job]:
        """The first ``first`` jobs of ``queue`` in ``state`` by id, with their total."""
        flt = JobFilter(states=frozenset({state}), queue=queue, per_page=first, sort_by="id")
        return await self.backend.list_jobs(flt)


Check = Callable[[Job, Inquiry], Awaitable[Reason | None]]
"""A queue-level block: the reason it holds this waiting job back now, or None."""


async def explain_job(
    backend: Backend, job_id: int, *, now: datetime, alive_since: datetime
) -> Explanation:
    """Explain job ``job_id`` at ``now``; raise ``JobNotFound``.

    ``alive_since``: workers that heartbeat since then count as live (``no_worker``).
    """
    job = await backend.get(job_id)
    inquiry = Inquiry(backend, now=now, alive_since=alive_since)
    if job.state is JobState.RUNNING:
        reasons = [_running(job, now)]
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
    data: dict[str, Any] = {"due_at": _iso(due), "in_seconds": round(seconds, 3)}
    late = "; it becomes pending when a live worker next promotes due jobs"
    if seconds > 0:
        when = f"{_when(due)} (in {_span(seconds)})"
    else:
        when = f"{_when(due)} ({_span(-seconds)} ago)"
    if job.state is JobState.RETRYABLE:
        error = job.last_error
        failed = f"attempt {job.attempt} of {job.max_attempts} failed"
        if error is not None:
            failed += f" with {_error_text(error)}"
        text = (
            f"in retry backoff until {when}: {failed}"
            if seconds > 0
            else f"due for a retry since {when}: {failed}{late}"
        )
        data |= {
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "error": _error_data(error),
        }
        return Reason(code="backoff", text=text, data=data)
    text = f"scheduled to run at {when}" if seconds > 0 else f"due since {when}{late}"
    return Reason(code="scheduled", text=text, data=data)


def _running(job: Job, now: datetime) -> Reason:
    lease = job.lease_until
    expired = lease is not None and lease < now
    text = (
        f"running on worker {job.attempted_by or '(unknown)'} since {_when(job.attempted_at)}"
        f" (attempt {job.attempt} of {job.max_attempts})"
    )
    if lease is not None and expired:
        text += (
            f"; its lease expired at {_when(lease)} ({_span((now - lease).total_seconds())} ago):"
            " its worker may have died, and the job is rescued at the next maintenance pass"
        )
    elif lease is not None:
        text += f"; its lease runs until {_when(lease)}"
    if job.cancel_requested:
        text += "; a cancel was requested"
    return Reason(
        code="running",
        text=text,
        data={
            "worker": job.attempted_by,
            "since": _iso(job.attempted_at),
            "lease_until": _iso(lease),
            "lease_expired": expired,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "cancel_requested": job.cancel_requested,
        },
    )


def _finished(job: Job) -> Reason:
    at = job.completed_at or job.discarded_at or job.cancelled_at
    error = None if job.state is JobState.COMPLETED else job.last_error
    when = f" at {_when(at)}" if at is not None else ""
    if job.state is JobState.COMPLETED:
        returned = "returned a result" if job.result is not None else "returned nothing"
        text = f"it completed{when} after {_attempts(job.attempt)} ({returned})"
    elif job.state is JobState.FAILED:
        text = f"it failed{when}: all {_attempts(job.attempt)} failed"
        text += f", the last with {_error_text(error)}" if error is not None else ""
    elif job.state is JobState.DISCARDED:
        text = f"it was discarded{when}"
        text += f": {_error_text(error)}" if error is not None else ""
    else:
        text = f"it was cancelled{when}"
        text += f": {_cut(error.message)}" if error is not None else ""
    if job.state is not JobState.COMPLETED:
        text += "; an operator may retry it"
    return Reason(
        code="finished",
        text=text,
        data={
            "state": job.state.value,
            "at": _iso(at),
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "error": _error_data(error),
            "result_present": job.result is not None,
        },
    )


# -- what holds a waiting job's queue back (the extension point) ------------------------------
async def _paused(job: Job, inquiry: Inquiry) -> Reason | None:
    if job.queue not in await inquiry.paused():
        return None
    return Reason(
        code="paused",
        text=f"its queue {job.queue} is paused: no worker fetches from it until it is resumed",
        data={"queue": job.queue},
    )


async def _global_limit(job: Job, inquiry: Inquiry) -> Reason | None:
    limit = (await inquiry.limits(job.queue)).global_limit
    if limit is None:
        return None
    key_flow = await inquiry.key_flow(job)
    if key_flow is not None:
        return _key_limit(job, limit, key_flow)
    running = await inquiry.jobs(job.queue, JobState.RUNNING, first=min(limit, HOLDERS_SHOWN))
    if running.total_entries < limit:
        return None
    holders = [j.id for j in running.items]
    listed = ", ".join(str(i) for i in holders)
    more = running.total_entries - len(holders)
    if more > 0:
        listed += f" and {more} more"
    return Reason(
        code="global_limit",
        text=(
            f"the global limit of queue {job.queue} is full: {running.total_entries} of "
            f"{limit} job(s) run (held by job(s) {listed})"
        ),
        data={
            "queue": job.queue,
            "limit": limit,
            "running": running.total_entries,
            "held_by": holders,
        },
    )


def _key_limit(job: Job, limit: int, flow: QueueFlow) -> Reason | None:
    holders = list(flow.running or ())
    if len(holders) < limit:
        return None
    key = job.partition_key or ""
    return Reason(
        code="partition_limit",
        text=(
            f"its partition key {key!r} of queue {job.queue} is at its limit: {len(holders)} of "
            f"{limit} job(s) of the key run (held by job(s) {', '.join(map(str, holders))})"
        ),
        data={
            "queue": job.queue,
            "key": key,
            "limit": limit,
            "running": len(holders),
            "held_by": holders,
        },
    )


async def _no_worker(job: Job, inquiry: Inquiry) -> Reason | None:
    workers = await inquiry.workers()
    if any(job.queue in w.queues for w in workers):
        return None
    served = sorted({q for w in workers for q in w.queues})
    if workers:
        text = (
            f"no live worker listens on queue {job.queue}; the {len(workers)} live worker(s) "
            f"serve: {', '.join(served)}"
        )
    else:
        text = f"no live worker listens on queue {job.queue}: no worker is alive"
    return Reason(
        code="no_worker",
        text=text,
        data={
            "queue": job.queue,
            "live_workers": [w.id for w in workers],
            "served_queues": served,
            "alive_since": _iso(inquiry.alive_since),
        },
    )


async def _held(job: Job, inquiry: Inquiry) -> Reason | None:
    until = (await inquiry.flow(job.queue)).held_until
    if until is None or until <= inquiry.now:
        return await _key_held(job, inquiry)
    seconds = (until - inquiry.now).total_seconds()
    return Reason(
        code="held",
        text=(
            f"its queue {job.queue} is held back until {_when(until)} (in {_span(seconds)}): "
            "a job of the queue raised RateLimited (an upstream asked to wait)"
        ),
        data={"queue": job.queue, "until": _iso(until), "in_seconds": round(seconds, 3)},
    )


async def _key_held(job: Job, inquiry: Inquiry) -> Reason | None:
    flow = await inquiry.key_flow(job)
    until = None if flow is None else flow.held_until
    if until is None or until <= inquiry.now:
        return None
    key = job.partition_key or ""
    seconds = (until - inquiry.now).total_seconds()
    return Reason(
        code="partition_held",
        text=(
            f"its partition key {key!r} of queue {job.queue} is held back until {_when(until)} "
            f"(in {_span(seconds)}): a job of the key raised RateLimited"
        ),
        data={
            "queue": job.queue,
            "key": key,
            "until": _iso(until),
            "in_seconds": round(seconds, 3),
        },
    )


async def _rate_limit(job: Job, inquiry: Inquiry) -> Reason | None:
    flow = await inquiry.key_flow(job) or await inquiry.flow(job.queue)
    rate = flow.limits.rate_limit
    if rate is None:
        return None
    window = rate.window_of(inquiry.now)
    used = flow.used_in(window)
    if used < rate.count:
        return None
    opens = rate.window_start(window + 1)
    partitioned = flow.limits.partition_by is not None
    whose = f"partition key {job.partition_key or ''!r} of queue" if partitioned else "queue"
    return Reason(
        code="partition_rate" if partitioned else "rate_limit",
        text=(
            f"the rate window of {whose} {job.queue} is full: {used} of {rate.count} start(s) "
            f"allowed by its rate limit {rate} were used; the next window opens at "
            f"{_when(opens)}"
        ),
        data={
            "queue": job.queue,
            **({"key": job.partition_key or ""} if partitioned else {}),
            "rate": str(rate),
            "count": rate.count,
            "seconds": rate.seconds,
            "used": used,
            "window_started_at": _iso(rate.window_start(window)),
            "next_window_at": _iso(opens),
        },
    )


QUEUE_CHECKS: tuple[Check, ...] = (_paused, _held, _global_limit, _rate_limit, _no_worker)
"""What can hold a waiting job's queue back, checked in this order (see the module doc)."""


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


# -- words -------------------------------------------------------------------------------------
def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: datetime | None) -> str:
    if value is None:
        return "an unknown time"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    """``seconds`` in the unit people read: "42 s", "5 min", "3 h", "2 days"."""
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _error_text(error: ErrorRecord) -> str:
    return f"{error.kind}: {_cut(error.message)}"


def _error_data(error: ErrorRecord | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {
        "attempt": error.attempt,
        "at": error.at.isoformat(),
        "kind": error.kind,
        "message": error.message,
    }
