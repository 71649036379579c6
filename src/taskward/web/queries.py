"""Read models shared by the JSON API and the dashboard, built on the TaskManager only.

Listings and search are composed from ``list_tasks`` pages, with explicit caps
so a page view never costs more than a few bounded queries; the per-minute timeline is one
aggregate query in the store (``TaskManager.finished_per_minute``).

Free-text search has no index: it reads up to :data:`SEARCH_SCAN_LIMIT` jobs and matches
their shown (redacted) arguments and errors. That matching runs in a worker thread, a page at
a time, under a deadline of :data:`SEARCH_SECONDS`, so a search never holds the event loop
and never runs long; the web layer adds who may search (credentials when reads are public)
and how many searches run at once. The ``error_kind`` filter (the last error's kind, which no
store indexes) is read the same way, under the same caps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskward.errors import InvalidOptions
from taskward.jobs import DEAD_STATES, WAITING_STATES, Job, JobState
from taskward.manager import TaskManager
from taskward.sealing import ENCRYPTED_PLACEHOLDER, masked, still_sealed
from taskward.serialize import stored_payload_problem
from taskward.tasks import redact

SEARCH_SCAN_LIMIT = 5000
"""Text search reads at most this many of the newest jobs matching the other filters."""
BULK_LIMIT = 1000
"""A bulk action touches at most this many jobs per request."""
SCAN_PAGE = 500
SEARCH_SECONDS = 2.0
"""A search stops after this many seconds and answers with what it found (``timed_out``)."""


def parse_states(state: str | None) -> frozenset[JobState] | None:
    """Turn ``"failed"``, ``"failed,discarded"`` or ``"dead"`` into states; None for all."""
    if not state:
        return None
    names: set[JobState] = set()
    for part in state.split(","):
        part = part.strip()
        if part == "dead":
            names |= DEAD_STATES
        elif part == "waiting":
            names |= WAITING_STATES
        elif part:
            try:
                names.add(JobState(part))
            except ValueError:
                raise InvalidOptions(
                    f"unknown state {part!r}; use one of {[s.value for s in JobState]},"
                    " 'dead' or 'waiting'"
                ) from None
    return frozenset(names) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobQuery:
    """A listing request: filters, free-text search, page."""

    states: frozenset[JobState] | None = None
    queue: str | None = None
    task: str | None = None
    search: str | None = None
    page: int = 1
    per_page: int = 25
    sort_by: str = "-id"
    workflow: int | None = None
    error_kind: str | None = None
    """Only jobs whose last error is of this kind (read by a capped scan, like a search)."""


def is_scan(query: JobQuery) -> bool:
    """True when ``query`` is read by a capped scan (a search, or an error-kind filter).

    Such a listing costs up to :data:`SEARCH_SCAN_LIMIT` jobs read: the web layer applies
    the search policy to it (credentials, a slot, a deadline).
    """
    return bool(query.search) or query.error_kind is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobListing:
    """One page of jobs, with how the search went.

    ``scanned``: jobs read by a search (None without one); ``truncated``: the scan cap was
    reached; ``timed_out``: the search ran out of time, so its matches are partial.
    """

    items: Sequence[Job]
    total: int
    page: int
    per_page: int
    scanned: int | None = None
    truncated: bool = False
    timed_out: bool = False
    total_is_estimate: bool = False

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, -(-self.total // self.per_page))


def _state_list(states: frozenset[JobState] | None) -> list[JobState] | None:
    return sorted(states) if states else None


@dataclass(frozen=True, slots=True)
class ShownArguments:
    """A job's args and kwargs as people may see them."""

    args: list[Any]
    kwargs: dict[str, Any]
    problem: str | None
    """Why the stored payload cannot run (not what taskward wrote), or None."""


SEALED_PROBLEM = f"{ENCRYPTED_PLACEHOLDER}: this server holds no key that opens the arguments"
"""``ShownArguments.problem`` of a job whose arguments stay encrypted here."""


def shown_arguments(job: Job) -> ShownArguments:
    """Return the job's arguments with sensitive values as ``"***"``.

    Stored args that are not the JSON taskward wrote (a planted pickle, bytes) are never shown
    or decoded further: the result carries empty arguments and the problem instead.
    """
    if still_sealed(job):  # encrypted at rest, and this server holds no key that opens it
        return ShownArguments(args=[], kwargs={}, problem=SEALED_PROBLEM)
    problem = stored_payload_problem(job.args, job.kwargs)
    if problem is not None:
        return ShownArguments(args=[], kwargs={}, problem=problem)
    args, kwargs = redact(job.args, job.kwargs, job.meta)
    return ShownArguments(args=args, kwargs=kwargs, problem=None)


def kind_matches(job: Job, kind: str | None) -> bool:
    """True when ``kind`` is None or is the kind of the job's last error."""
    return kind is None or (job.last_error is not None and job.last_error.kind == kind)


def job_matches(job: Job, needle: str) -> bool:
    """True if ``needle`` (lower case) occurs in the job's shown args, kwargs or errors.

    Sensitive values are redacted first: a search must not reveal them one guess at a time.
    """
    shown = shown_arguments(job)
    if needle in json.dumps([shown.args, shown.kwargs], ensure_ascii=False).lower():
        return True
    return any(
        needle in e.message.lower() or needle in (e.traceback or "").lower() or needle in e.kind
        for e in job.errors
    )


async def list_jobs(
    manager: TaskManager, query: JobQuery, *, seconds: float | None = SEARCH_SECONDS
) -> JobListing:
    """Return one page of jobs; with a search, scan the newest matches up to a cap.

    A search is bounded three ways: in work (at most :data:`SEARCH_SCAN_LIMIT` jobs), in time
    (``seconds``; past it the scan stops and the listing says ``timed_out``, its matches
    being those found so far) and off the event loop (the matching, which decodes and
    re-encodes every job, runs in a worker thread one page at a time, so health checks and
    other requests are answered meanwhile). Who may search, and how many searches run at
    once, is the caller's policy (:meth:`taskward.web.auth.Access.search`, ``Admin``).
    """
    if not is_scan(query):
        page = await manager.list_tasks(
            state=_state_list(query.states),
            queue=query.queue,
            task=query.task,
            page=query.page,
            per_page=query.per_page,
            sort_by=query.sort_by,
            workflow=query.workflow,
        )
        return JobListing(
            items=[masked(job) for job in page.items],
            total=page.total_entries,
            page=query.page,
            per_page=query.per_page,
            total_is_estimate=page.total_is_estimate,
        )
    scan = await search_jobs(manager, query, SEARCH_SCAN_LIMIT, seconds=seconds)
    start = (query.page - 1) * query.per_page
    return JobListing(
        items=[masked(job) for job in scan.matches[start : start + query.per_page]],
        total=len(scan.matches),
        page=query.page,
        per_page=query.per_page,
        scanned=scan.scanned,
        truncated=scan.scanned >= SEARCH_SCAN_LIMIT,
        timed_out=scan.timed_out,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchScan:
    """What a search scan found.

    The matches in scan order, how many jobs it read, and whether its time ran out before
    the scan was done.
    """

    matches: list[Job]
    scanned: int
    timed_out: bool


async def search_jobs(
    manager: TaskManager, query: JobQuery, limit: int, *, seconds: float | None
) -> SearchScan:
    """Scan up to ``limit`` jobs matching the query's filters for its search text.

    Pages are read on the event loop (the backend's I/O is async); each page is matched in a
    worker thread. ``seconds`` (None: no deadline) stops the scan between jobs once spent.
    """
    needle = (query.search or "").lower()
    deadline = None if seconds is None else time.monotonic() + seconds
    matches: list[Job] = []
    scanned = 0
    # aclosing: leaving early (the deadline) closes the page reader now, not at GC.
    async with aclosing(filtered_pages(manager, query, limit)) as pages:
        async for batch in pages:
            if deadline is not None and time.monotonic() >= deadline:
                return SearchScan(matches=matches, scanned=scanned, timed_out=True)
            found, looked = await asyncio.to_thread(
                _match_page, batch, needle, query.error_kind, deadline
            )
            matches += found
            scanned += looked
            if looked < len(batch):  # the deadline passed inside the page
                return SearchScan(matches=matches, scanned=scanned, timed_out=True)
    return SearchScan(matches=matches, scanned=scanned, timed_out=False)


def _match_page(
    jobs: Sequence[Job], needle: str, kind: str | None, deadline: float | None
) -> tuple[list[Job], int]:
    """The jobs of one page that match, and how many were looked at before the deadline.

    Runs in a worker thread: it only reads the (frozen) jobs and the clock.
    """
    found: list[Job] = []
    for looked, job in enumerate(jobs):
        if deadline is not None and time.monotonic() >= deadline:
            return found, looked
        if kind_matches(job, kind) and (not needle or job_matches(job, needle)):
            found.append(job)
    return found, len(jobs)


async def filtered_pages(
    manager: TaskManager, query: JobQuery, limit: int
) -> AsyncGenerator[list[Job], None]:
    """Yield pages of jobs matching the query's filters (not its search), up to ``limit``."""
    page, seen = 1, 0
    while seen < limit:
        batch = await manager.list_tasks(
            state=_state_list(query.states),
            queue=query.queue,
            task=query.task,
            page=page,
            per_page=SCAN_PAGE,
            sort_by=query.sort_by,
            workflow=query.workflow,
        )
        items = list(batch.items[: limit - seen])
        if items:
            yield items
        seen += len(items)
        if len(batch.items) < SCAN_PAGE:
            return
        page += 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """Jobs finished per minute over a window, oldest minute first."""

    start: datetime
    minutes: list[datetime]
    completed: list[int]
    failed: list[int]


async def timeline(manager: TaskManager, *, minutes: int = 60) -> Timeline:
    """Count completed and dead-lettered jobs per minute over the last ``minutes``.

    One aggregate query in the store over the finished jobs it still holds (cleanup removes
    old ones): completed jobs, and failed plus discarded ones, each by the minute it finished.
    """
    now = manager.clock.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = now - timedelta(minutes=minutes)
    completed, failed = [0] * minutes, [0] * minutes
    for minute, state, count in await manager.finished_per_minute(since=start):
        index = int((minute - start).total_seconds() // 60)
        if not 0 <= index < minutes:
            continue
        if state is JobState.COMPLETED:
            completed[index] += count
        elif state in (JobState.FAILED, JobState.DISCARDED):
            failed[index] += count
    return Timeline(
        start=start,
        minutes=[start + timedelta(minutes=i) for i in range(minutes)],
        completed=completed,
        failed=failed,
    )


class Cached:
    """Caches the result of an async call for ``max_age`` seconds (one call at a time)."""

    def __init__(self, call: Callable[[], Awaitable[Any]], max_age: float) -> None:
        self.call = call
        self.max_age = max_age
        self._value: Any = None
        self._at = -1e18
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        """Return the cached value, refreshing it when older than ``max_age``."""
        async with self._lock:
            if time.monotonic() - self._at >= self.max_age:
                self._value = await self.call()
                self._at = time.monotonic()
            return self._value


async def queue_overview(
    manager: TaskManager, stats: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Per queue: counts, estimates, paused, live workers, concurrency, limits, hold.

    ``global_limit``, ``rate_limit`` (text, ``"100/s"``), ``rate_used`` (starts in the current
    window) and ``held_until`` are None for a queue without one; ``rate_full`` is a bool;
    ``waits`` counts, by reason, the claims a limit turned away while jobs were due.

    ``stats``: a ``get_statistics()`` result the caller already has (one query fewer).
    """
    if stats is None:
        stats = await manager.get_statistics()
    slots: dict[str, int] = {}
    workers: dict[str, int] = {}
    for node in stats["workers"]["nodes"]:
        for queue, concurrency in node["queues"].items():
            slots[queue] = slots.get(queue, 0) + concurrency
            workers[queue] = workers.get(queue, 0) + 1
    paused = set(stats["paused"])
    limits = stats.get("limits", {})
    names = sorted(set(stats["queues"]) | set(slots) | paused | set(limits))
    return [
        {
            "name": name,
            "counts": stats["queues"].get(name, {s.value: 0 for s in JobState}),
            "estimated": stats.get("estimated", {}).get(name, []),
            "paused": name in paused,
            "concurrency": slots.get(name, 0),
            "workers": workers.get(name, 0),
            "global_limit": limits.get(name, {}).get("global_limit"),
            "rate_limit": limits.get(name, {}).get("rate_limit"),
            "rate_used": limits.get(name, {}).get("rate_used"),
            "rate_full": bool(limits.get(name, {}).get("rate_full")),
            "held_until": limits.get(name, {}).get("held_until"),
            "waits": limits.get(name, {}).get("waits", {}),
        }
        for name in names
    ]
