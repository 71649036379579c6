"""The dashboard's job lists: every job, and the dead letters, with filters, sorting, paging.

The lists are fragments polled for live updates (``jobs.js`` pauses the poll while rows are
selected). Each row says the time that fits its state (:mod:`taskward.web.jobs_when`); the
headers sort; the queue and task filters suggest names from the store; the dead letters are
grouped by error kind above the list (:mod:`taskward.web.error_kinds`) and filter by one.
Bulk actions on a selection or on all matching jobs are confirmed with their exact count
first (:mod:`taskward.web.bulk_page`). A bad filter or sort answers the 400 page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from taskward.errors import TaskwardError
from taskward.jobs import JobState
from taskward.web.admin import MAX_PAGE, Admin
from taskward.web.bulk_page import bulk_page_routes
from taskward.web.error_kinds import KindCache, suggestions
from taskward.web.jobs_filters import FILTERS, list_query
from taskward.web.jobs_when import job_when, when_sort_field
from taskward.web.pages import Pages
from taskward.web.queries import JobListing, JobQuery

__all__ = ["job_list_routes"]

STATE_NAMES = [s.value for s in JobState]


async def _listing(admin: Admin, request: Request, *, dead: bool) -> tuple[JobQuery, JobListing]:
    params = request.query_params
    try:
        page = int(params.get("page", "1") or 1)
        if not 1 <= page <= MAX_PAGE:
            raise ValueError(f"page must be between 1 and {MAX_PAGE}")
        query = list_query(params, dead=dead, page=page)
        return query, await admin.list_jobs(request, query)
    except (TaskwardError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc


async def _jobs_context(admin: Admin, request: Request, *, dead: bool) -> dict[str, Any]:
    query, listing = await _listing(admin, request, dead=dead)
    params = request.query_params
    kept = {k: v for k, v in params.items() if k in FILTERS and v and not (dead and k == "state")}
    if query.sort_by != "-id":
        kept["sort"] = query.sort_by
    list_url = request.url_for("dashboard_dead" if dead else "dashboard_jobs").path
    fragment = request.url_for("dashboard_dead_fragment" if dead else "dashboard_jobs_fragment")

    def page_url(number: int) -> str:
        return f"{list_url}?{urlencode({**kept, 'page': number})}"

    def sort_url(field: str) -> str:
        """The list sorted by ``field``: descending first, toggled when already sorted by it."""
        sort = field if query.sort_by == f"-{field}" else f"-{field}"
        return f"{list_url}?{urlencode({**kept, 'sort': sort})}"

    def kind_query(kind: str | None) -> str:
        """The list's filters with the error kind ``kind`` (None: any kind), page 1."""
        rest = {k: v for k, v in kept.items() if k != "error_kind"}
        return urlencode(rest if kind is None else {**rest, "error_kind": kind})

    def aria_sort(field: str) -> str | None:
        if query.sort_by.removeprefix("-") != field:
            return None
        return "descending" if query.sort_by.startswith("-") else "ascending"

    now = admin.manager.clock.now()
    return {
        "heading": "Dead letters" if dead else "Jobs",
        "dead": dead,
        "query": query,
        "query_state": params.get("state", "") if not dead else "dead",
        "filter_states": [*STATE_NAMES, "waiting", "dead"],
        "listing": listing,
        "list_url": list_url,
        "kept": kept,
        "fragment_url": f"{fragment.path}?{urlencode({**kept, 'page': listing.page})}",
        "page_url": page_url,
        "sort_url": sort_url,
        "aria_sort": aria_sort,
        "kind_query": kind_query,
        "when_field": when_sort_field(query.states),
        "when_of": lambda job: job_when(job, now),
        "now": now,
        "nav": "dead" if dead else "jobs",
    }


async def _page_context(
    admin: Admin, request: Request, kinds_cache: KindCache, *, dead: bool
) -> dict[str, Any]:
    """The whole page: the list, and what only the page shows (suggestions, error kinds)."""
    context = await _jobs_context(admin, request, dead=dead)
    queues, tasks = await suggestions(admin.manager)
    tasks = sorted({*tasks, *(job.task for job in context["listing"].items)})
    kinds = await kinds_cache.get(admin.manager, context["query"]) if dead else None
    return {**context, "queue_names": queues, "task_names": tasks, "kinds": kinds}


def job_list_routes(router: APIRouter, pages: Pages) -> None:
    """Add this page's routes (the page, its polled fragment, its forms) to ``router``."""
    reader = [Depends(pages.admin.access.read)]
    kinds_cache = KindCache()  # one per app: the dead letters' grouping, a few seconds

    @router.get("/jobs", name="dashboard_jobs", dependencies=reader)
    async def jobs(request: Request) -> HTMLResponse:
        context = await _page_context(pages.admin, request, kinds_cache, dead=False)
        return pages.render(request, "jobs.html", **context)

    @router.get("/fragments/jobs", name="dashboard_jobs_fragment", dependencies=reader)
    async def jobs_fragment(request: Request) -> HTMLResponse:
        context = await _jobs_context(pages.admin, request, dead=False)
        return pages.render(request, "_jobs.html", **context)

    @router.get("/dead", name="dashboard_dead", dependencies=reader)
    async def dead(request: Request) -> HTMLResponse:
        context = await _page_context(pages.admin, request, kinds_cache, dead=True)
        return pages.render(request, "jobs.html", **context)

    @router.get("/fragments/dead", name="dashboard_dead_fragment", dependencies=reader)
    async def dead_fragment(request: Request) -> HTMLResponse:
        context = await _jobs_context(pages.admin, request, dead=True)
        return pages.render(request, "_jobs.html", **context)

    bulk_page_routes(router, pages, kinds_cache)
