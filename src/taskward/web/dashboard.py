"""The HTML dashboard: Jinja2 pages plus htmx fragments polled for live updates.

htmx and the page scripts are served from the package (no CDN, nothing inline, so the strict
Content-Security-Policy of :mod:`taskward.web.headers` holds), and each button is a plain
form POST carrying the CSRF token the server computed for the signed-in user (see
:mod:`taskward.web.auth`), so the pages also work without JavaScript. Each page lives in its
own module (``overview_page``, ``jobs_page``, ``job_page``, ``schedules_page``,
``replay_page``); what they share is in :mod:`taskward.web.pages`.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from taskward.errors import TaskwardError, WorkflowNotFound
from taskward.web.admin import Admin, JobId
from taskward.web.job_page import job_routes
from taskward.web.jobs_page import job_list_routes
from taskward.web.overview_page import overview_routes
from taskward.web.pages import Pages, back, create_not_found_handler, environment, page_route
from taskward.web.replay_page import replay_route
from taskward.web.schedules_page import schedule_routes
from taskward.web.workflow_view import draw

__all__ = ["create_dashboard_router", "create_not_found_handler"]

STATIC_TYPES = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "jobs.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "jobs.css": "text/css; charset=utf-8",
    "job.css": "text/css; charset=utf-8",
    "schedules.css": "text/css; charset=utf-8",
    "overview.css": "text/css; charset=utf-8",
}
"""The files served under ``/dashboard/static``: only these, never a path from the request."""


def create_dashboard_router(admin: Admin) -> APIRouter:
    """Build the dashboard routes under ``/dashboard`` for ``admin`` (see :class:`Admin`)."""
    pages = Pages(admin, environment())
    router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=page_route(pages))
    overview_routes(router, pages)
    job_list_routes(router, pages)
    job_routes(router, pages)
    _workflow_routes(router, pages)
    schedule_routes(router, pages)
    replay_route(router, admin, back)
    _static_route(router)
    return router


def _workflow_routes(router: APIRouter, pages: Pages) -> None:
    admin = pages.admin
    reader, writer = [Depends(admin.access.read)], [Depends(admin.access.write)]

    @router.get("/workflows/{workflow_id}", name="dashboard_workflow", dependencies=reader)
    async def workflow(request: Request, workflow_id: JobId) -> HTMLResponse:
        try:
            record = await admin.manager.get_workflow(workflow_id)
        except WorkflowNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except TaskwardError as exc:  # a store that keeps no workflows
            raise HTTPException(400, str(exc)) from exc
        return pages.render(request, "workflow.html", nav="jobs", wf=record, drawing=draw(record))

    @router.post(
        "/workflows/{workflow_id}/cancel", name="dashboard_workflow_cancel", dependencies=writer
    )
    async def cancel(request: Request, workflow_id: JobId) -> RedirectResponse:
        try:
            await admin.manager.cancel_workflow(workflow_id, reason="cancelled in the dashboard")
        except WorkflowNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        message = f"workflow {workflow_id} cancelled; a finalizer still runs"
        return back(admin, request, "dashboard_workflow", message, workflow_id=workflow_id)


def _static_route(router: APIRouter) -> None:
    @router.get("/static/{name}", name="dashboard_static")
    async def static(name: str) -> Response:
        media_type = STATIC_TYPES.get(name)
        if media_type is None:  # only the files listed: never a path from the request
            raise HTTPException(404)
        body = resources.files("taskward.web").joinpath("static", name).read_bytes()
        return Response(body, media_type=media_type, headers={"cache-control": "max-age=3600"})
