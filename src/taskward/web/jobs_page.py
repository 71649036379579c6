"""The dashboard's job lists: every job, and the dead letters, with filters and paging.

The lists are fragments polled for live updates; "retry all matching" on the dead letters is
a form POST acting through :func:`taskward.web.queries.bulk_action`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from taskward.errors import TaskwardError
from taskward.jobs import JobState
from taskward.web.api import MAX_PAGE, Admin, job_query
from taskward.web.pages import Pages, back
from taskward.web.queries import JobQuery

__all__ = ["job_list_routes"]

STATE_NAMES = [s.value for s in JobState]


async def _jobs_context(admin: Admin, request: Request, *, dead: bool) -> dict[str, Any]:
    params = request.query_params
    state = "dead" if dead else params.get("state", "")
    try:
        page = int(params.get("page", "1") or 1)
        if not 1 <= page <= MAX_PAGE:
            raise ValueError(f"page must be between 1 and {MAX_PAGE}")
        workflow = int(params["workflow"]) if params.get("workflow") else None
        if workflow is not None and not 1 <= workflow <= 2**63 - 1:
            raise ValueError(f"workflow must be between 1 and {2**63 - 1}")
        query = job_query(
            state, params.get("queue"), params.get("task"), params.get("q"), page, workflow=workflow
        )
        listing = await admin.list_jobs(request, query)
    except (TaskwardError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc
    kept = {
        k: v for k, v in params.items() if k in ("state", "queue", "task", "q", "workflow") and v
    }
    list_url = request.url_for("dashboard_dead" if dead else "dashboard_jobs").path
    fragment = request.url_for("dashboard_dead_fragment" if dead else "dashboard_jobs_fragment")

    def page_url(number: int) -> str:
        return f"{list_url}?{urlencode({**kept, 'page': number})}"

    return {
        "heading": "Dead letters" if dead else "Jobs",
        "dead": dead,
        "query": query,
        "query_state": state,
        "filter_states": [*STATE_NAMES, "waiting", "dead"],
        "listing": listing,
        "list_url": list_url,
        "fragment_url": f"{fragment.path}?{urlencode({**kept, 'page': listing.page})}",
        "page_url": page_url,
        "nav": "dead" if dead else "jobs",
    }


def job_list_routes(router: APIRouter, pages: Pages) -> None:
    """Add this page's routes (the page, its polled fragment, its forms) to ``router``."""
    reader = [Depends(pages.admin.access.read)]

    @router.get("/jobs", name="dashboard_jobs", dependencies=reader)
    async def jobs(request: Request) -> HTMLResponse:
        context = await _jobs_context(pages.admin, request, dead=False)
        return pages.render(request, "jobs.html", **context)

    @router.get("/fragments/jobs", name="dashboard_jobs_fragment", dependencies=reader)
    async def jobs_fragment(request: Request) -> HTMLResponse:
        context = await _jobs_context(pages.admin, request, dead=False)
        return pages.render(request, "_jobs.html", **context)

    @router.get("/dead", name="dashboard_dead", dependencies=reader)
    async def dead(request: Request) -> HTMLResponse:
        context = await _jobs_context(pages.admin, request, dead=True)
        return pages.render(request, "jobs.html", **context)

    @router.get("/fragments/dead", name="dashboard_dead_fragment", dependencies=reader)
    async def dead_fragment(request: Request) -> HTMLResponse:
        context = await _jobs_context(pages.admin, request, dead=True)
        return pages.render(request, "_jobs.html", **context)

    admin = pages.admin
    writer = [Depends(admin.access.write)]

    @router.post("/dead/retry", name="dashboard_dead_retry", dependencies=writer)
    async def dead_retry(request: Request) -> RedirectResponse:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str) and v}
        query = JobQuery(queue=fields.get("queue"), task=fields.get("task"), search=fields.get("q"))
        result = await admin.bulk_action(query, "retry")
        message = f"{len(result.changed)} dead letter(s) retried"
        return back(admin, request, "dashboard_dead", message)
