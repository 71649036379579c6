"""What the admin API and the dashboard share: the manager, access policy, caches and limits.

:class:`Admin` holds them for one app; :func:`edge_errors` turns taskward errors into HTTP
answers; :func:`job_query` and :func:`job_detail` build the read models both sides show.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import HTTPException, Path, Request

from taskward.errors import (
    BackendUnavailable,
    JobNotFound,
    JobRunning,
    ScheduleNotFound,
    ScheduleOverlap,
    TaskwardError,
    WorkflowNotFound,
)
from taskward.jobs import Job
from taskward.manager import TaskManager
from taskward.observe.history import job_history
from taskward.sealing import masked
from taskward.web.auth import Access, AdminAuth
from taskward.web.bulk import BulkResult, bulk_action
from taskward.web.models import HistoryOut, JobDetailOut, JobOut, TimingsOut
from taskward.web.queries import (
    BULK_LIMIT,
    SEARCH_SECONDS,
    Cached,
    JobListing,
    JobQuery,
    is_scan,
    list_jobs,
    parse_states,
    timeline,
)

__all__ = [
    "MAX_JOB_ID",
    "MAX_PAGE",
    "SEARCH_CONCURRENCY",
    "Admin",
    "JobId",
    "SearchSlots",
    "edge_errors",
    "job_detail",
    "job_query",
]

MAX_JOB_ID = 2**63 - 1
"""The largest job id a store holds (a signed 64-bit integer in SQLite and PostgreSQL)."""
MAX_PAGE = 1_000_000
"""The last page number a listing accepts; a larger one would overflow the store's OFFSET."""
JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="a job id")]
"""A job id in a path: refused at the edge (422) when no store could hold it."""
SEARCH_CONCURRENCY = 2
"""Free-text searches one Admin runs at once; one more is refused with 429."""


class SearchSlots:
    """At most ``limit`` searches at once; one more is refused (429), never queued.

    Refusing keeps a burst from piling up worker threads and waiting requests: each search
    already costs up to its deadline of CPU, and the dashboard polls a searched listing
    every few seconds, so its next poll simply tries again. Only the event loop's thread
    touches the counter, so no lock is needed.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the search limit must be >= 1, got {limit}")
        self.limit = limit
        self.running = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the duration of a search, or raise HTTPException(429)."""
        if self.running >= self.limit:
            raise HTTPException(
                429,
                f"too many searches at once (at most {self.limit}): try again shortly",
                headers={"Retry-After": "1"},
            )
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


class Admin:
    """What the API and the dashboard share: the manager, the access policy, caches, limits.

    ``search_concurrency`` and ``search_seconds`` bound free-text search: how many run at once
    (one more answers 429) and how long one may scan before it answers with what it found.
    """

    def __init__(
        self,
        manager: TaskManager,
        *,
        auth: AdminAuth | None = None,
        read_only: bool = False,
        search_concurrency: int = SEARCH_CONCURRENCY,
        search_seconds: float = SEARCH_SECONDS,
    ) -> None:
        self.manager = manager
        self.access = Access(auth, read_only=read_only)
        # The timeline reads up to a few thousand rows: a page polled every 2 s by several
        # browsers must not repeat that each time.
        self.timeline = Cached(lambda: timeline(manager), max_age=5.0)
        self.searches = SearchSlots(search_concurrency)
        self.search_seconds = search_seconds

    async def list_jobs(self, request: Request, query: JobQuery) -> JobListing:
        """One page of jobs for this request, applying the search policy to a search.

        A search, or an error-kind filter (read by the same capped scan: no store indexes
        it), needs credentials when reads are public (401) and a free slot (429), and stops
        at ``search_seconds``.
        """
        if not is_scan(query):
            return await list_jobs(self.manager, query)
        self.access.search(request)
        async with self.searches.slot():
            return await list_jobs(self.manager, query, seconds=self.search_seconds)

    async def bulk_action(
        self, query: JobQuery, action: str, *, limit: int = BULK_LIMIT
    ) -> BulkResult:
        """Retry or cancel the jobs matching ``query``; a search takes a search slot (429)."""
        if not is_scan(query):
            return await bulk_action(self.manager, query, action, limit=limit)
        async with self.searches.slot():
            return await bulk_action(self.manager, query, action, limit=limit)


@asynccontextmanager
async def edge_errors() -> AsyncIterator[None]:
    """Turn taskward errors into HTTP answers.

    404 for a missing job, schedule or workflow, 409 for a running job that cannot be
    deleted or a schedule's run now that its ``overlap="skip"`` refused, 503 when the store
    cannot be reached, 400 for bad input.
    """
    try:
        yield
    except (JobNotFound, ScheduleNotFound, WorkflowNotFound) as exc:
        raise HTTPException(404, str(exc)) from exc
    except (JobRunning, ScheduleOverlap) as exc:
        raise HTTPException(409, str(exc)) from exc
    except BackendUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc
    except TaskwardError as exc:
        raise HTTPException(400, str(exc)) from exc


def job_query(
    state: str | None = None,
    queue: str | None = None,
    task: str | None = None,
    q: str | None = None,
    page: int = 1,
    per_page: int = 25,
    sort_by: str = "-id",
    workflow: int | None = None,
) -> JobQuery:
    """Build a JobQuery from request parameters (raises TaskwardError on bad input)."""
    return JobQuery(
        workflow=workflow,
        states=parse_states(state),
        queue=queue or None,
        task=task or None,
        search=(q or "").strip() or None,
        page=page,
        per_page=per_page,
        sort_by=sort_by,
    )


def job_detail(admin: Admin, job: Job) -> JobDetailOut:
    """A job with timings and history (row plus this process's recent events)."""
    job = masked(job)  # values no key here opens are shown as "encrypted", history included
    events = admin.manager.recent_events.recent(job_id=job.id, limit=200)
    history = job_history(job, events)
    finished = job.completed_at or job.cancelled_at or job.discarded_at
    started = job.attempted_at
    timings = TimingsOut(
        wait_seconds=(started - job.scheduled_at).total_seconds() if started else None,
        run_seconds=(finished - started).total_seconds() if started and finished else None,
    )
    base = JobOut.of(job).model_dump()
    return JobDetailOut(**base, timings=timings, history=[HistoryOut.of(h) for h in history])
