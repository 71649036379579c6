"""The HTML dashboard: Jinja2 pages plus htmx fragments polled for live updates.

Everything is rendered on the server with autoescaping on (job args and error text are
untrusted), htmx and the page script are served from the package (no CDN, nothing inline, so
the strict Content-Security-Policy of :mod:`taskward.web.headers` holds), and each button is
a plain form POST carrying the CSRF token the server computed for the signed-in user (see
:mod:`taskward.web.auth`), so the pages also work without JavaScript. Something that does not
exist (a job, a workflow, a page) answers a 404 page in the same style, never the API's JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskward.errors import (
    InvalidOptions,
    JobNotFound,
    JobRunning,
    TaskwardError,
    WorkflowNotFound,
)
from taskward.graph import step_marker, workflow_of
from taskward.jobs import JobState, Schedule
from taskward.manager import TaskManager
from taskward.sealing import ENCRYPTED_PLACEHOLDER, masked
from taskward.web.api import MAX_PAGE, Admin, JobId, job_detail, job_query
from taskward.web.guard import GuardedRoute
from taskward.web.headers import RouteHandler
from taskward.web.queries import (
    SEALED_PROBLEM,
    JobQuery,
    queue_overview,
    shown_arguments,
)
from taskward.web.replay_page import replay_context, replay_route
from taskward.web.workflow_view import draw

__all__ = ["create_dashboard_router", "create_not_found_handler"]

STATIC_TYPES = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
STATE_NAMES = [s.value for s in JobState]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("taskward.web", "templates"),
        autoescape=True,  # every template, whatever its extension: job data is untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(when=_when, seconds=_seconds, args_text=_args_text)
    return env


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):  # statistics carry ISO 8601 strings
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _args_text(job: Any) -> str:
    shown = shown_arguments(job)
    if shown.problem == SEALED_PROBLEM:
        return f"({ENCRYPTED_PLACEHOLDER})"
    if shown.problem is not None:
        return "(unreadable stored arguments)"
    parts = [json.dumps(a, ensure_ascii=False) for a in shown.args]
    parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in shown.kwargs.items()]
    return ", ".join(parts)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


class _Pages:
    """Renders templates for one request (CSRF token and cookie, URL helper, access flags)."""

    def __init__(self, admin: Admin, env: Environment) -> None:
        self.admin = admin
        self.env = env

    def render(
        self, request: Request, template: str, *, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        """The page ``template`` for this request's viewer (its buttons, token and message)."""
        access = self.admin.access
        # Computed from the credentials, never copied from the request's cookie.
        csrf = access.csrf_token(request)
        signed_in = access.scheme(request) is not None

        def url(route: str, /, **params: Any) -> str:
            return request.url_for(route, **params).path

        html = self.env.get_template(template).render(
            url=url,
            csrf=csrf or "",
            # Buttons only for a signed-in viewer: an anonymous one (public reads) would be
            # refused, so the page offers "sign in" instead.
            can_write=access.can_write and signed_in,
            sign_in=access.can_write and not signed_in,
            flash=access.message(request),
            nav=context.pop("nav", ""),
            **context,
        )
        response = HTMLResponse(
            html, status_code=status_code, headers={"cache-control": "no-store"}
        )
        if csrf is not None:
            access.set_csrf_cookie(request, response, csrf)
        return response

    def not_found(self, request: Request, message: str) -> HTMLResponse:
        """The 404 page: what was not found, and a link back to where one can look."""
        route = getattr(request.scope.get("route"), "name", None) or ""
        if "job" in route or "workflow" in route:
            back, back_label = "dashboard_jobs", "the job list"
        else:
            back, back_label = "dashboard", "the overview"
        return self.render(
            request,
            "404.html",
            status_code=404,
            message=message,
            back=back,
            back_label=back_label,
        )

    def pages_for_errors(self, handler: RouteHandler) -> RouteHandler:
        """Wrap a dashboard route so that a 404 answers the page, not the API's JSON.

        A path id that no store could hold (``/dashboard/jobs/abc``) is a 404 too: on the
        dashboard, path parameters are the only input FastAPI validates (forms and query
        strings are read by the routes), so a validation error means "no such thing".
        """

        async def with_pages(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code != 404:
                    raise
                message = str(exc.detail) if exc.detail != "Not Found" else NO_PAGE
            except RequestValidationError:
                if request.method not in ("GET", "HEAD"):
                    raise
                message = "nothing has that id: ids are whole numbers from 1"
            return self.not_found(request, message)

        return with_pages


NO_PAGE = "there is no dashboard page at this address"


def _page_route(pages: _Pages) -> type[GuardedRoute]:
    """The route class of one dashboard router: guarded, and answering 404s with a page."""

    class PageRoute(GuardedRoute):
        def answer_errors(self, handler: RouteHandler) -> RouteHandler:
            return pages.pages_for_errors(handler)

    return PageRoute


def create_not_found_handler(
    admin: Admin,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The app's 404 handler: the dashboard's page below ``/dashboard``, JSON elsewhere.

    The dashboard's routes answer their own 404s (an unknown job); this one answers an
    address no route serves (``/dashboard/nope``). ``create_app`` installs it; an application
    mounting the routers itself may too: ``app.add_exception_handler(404, handler)``.
    """
    pages = _Pages(admin, _environment())

    async def not_found(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):  # installed for the status 404 only
            raise exc
        dashboard = request.url_for("dashboard").path  # with the prefix the app is mounted at
        path = request.scope.get("path", "")
        if path == dashboard or path.startswith(dashboard + "/"):
            return pages.not_found(request, NO_PAGE)
        return await http_exception_handler(request, exc)

    return not_found


def create_dashboard_router(admin: Admin) -> APIRouter:
    """Build the dashboard routes under ``/dashboard`` for ``admin`` (see :class:`Admin`)."""
    pages = _Pages(admin, _environment())
    router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=_page_route(pages))
    _overview_routes(router, pages)
    _job_list_routes(router, pages)
    _job_routes(router, pages)
    _workflow_routes(router, pages)
    _action_routes(router, admin)
    replay_route(router, admin, _back)
    _static_route(router)
    return router


async def _overview_context(admin: Admin, request: Request) -> dict[str, Any]:
    tw = admin.manager
    stats = await tw.get_statistics()
    queues = await queue_overview(tw, stats)

    def total(*states: str) -> str:
        """The sum over every queue, "~" first when a part of it is an estimate."""
        n = sum(q["counts"].get(s, 0) for q in queues for s in states)
        estimated = any(s in q["estimated"] for q in queues for s in states)
        return f"~{n}" if estimated else str(n)

    jobs = request.url_for("dashboard_jobs").path
    dead = request.url_for("dashboard_dead").path
    totals = [
        (
            "waiting",
            total("blocked", "scheduled", "pending", "retryable"),
            "",
            f"{jobs}?state=waiting",
        ),
        ("running", total("running"), "run", f"{jobs}?state=running"),
        ("completed", total("completed"), "ok", f"{jobs}?state=completed"),
        ("dead letters", total("failed", "discarded"), "bad", dead),
        ("workers", stats["workers"]["total"], "", "#workers"),
    ]
    return {
        "queues": queues,
        "any_estimate": any(q["estimated"] for q in queues),
        "states": STATE_NAMES,
        "totals": totals,
        "workers": stats["workers"]["nodes"],
        "timeline": await admin.timeline.get(),
    }


def _overview_routes(router: APIRouter, pages: _Pages) -> None:
    reader = [Depends(pages.admin.access.read)]

    @router.get("", name="dashboard", dependencies=reader)
    async def overview(request: Request) -> HTMLResponse:
        if "sign-in" in request.query_params:  # the link shown to anonymous readers
            pages.admin.access.sign_in(request)
        context = await _overview_context(pages.admin, request)
        return pages.render(request, "overview.html", nav="overview", **context)

    @router.get("/fragments/overview", name="dashboard_overview_fragment", dependencies=reader)
    async def overview_fragment(request: Request) -> HTMLResponse:
        context = await _overview_context(pages.admin, request)
        return pages.render(request, "_overview.html", **context)

    @router.get("/schedules", name="dashboard_schedules", dependencies=reader)
    async def schedules(request: Request) -> HTMLResponse:
        tw = pages.admin.manager
        rows = []
        for s in await tw.list_recurring_tasks():
            try:
                next_run: datetime | None = tw.next_fire(s)
            except TaskwardError:
                next_run = None
            row = _schedule_row(s, next_run)
            row.update(await _schedule_fires(tw, s))
            rows.append(row)
        return pages.render(request, "schedules.html", nav="schedules", schedules=rows)


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


def _job_list_routes(router: APIRouter, pages: _Pages) -> None:
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


async def _job_context(admin: Admin, job_id: int) -> dict[str, Any]:
    try:
        job = masked(await admin.manager.get_task_status(job_id))
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    shown = shown_arguments(job)
    # Why a waiting job does not run (or where it runs); a finished job's history says it all.
    why = None
    if not job.is_finished:
        try:
            why = await admin.manager.explain(job_id)
        except TaskwardError:  # deleted since, or the store is away: the page goes without it
            why = None
    step_of = step_marker(job.meta) if workflow_of(job.meta) is not None else None
    return {
        "job": job,
        "why": why,
        "workflow": step_of,
        "detail": job_detail(admin, job),
        "args_json": _pretty({"args": shown.args, "kwargs": shown.kwargs}),
        "payload_error": shown.problem,
        "result_json": _pretty(job.result),
        "progress_json": _pretty(job.progress),
        "meta_json": _pretty(job.meta),
        **replay_context(job),
    }


def _job_routes(router: APIRouter, pages: _Pages) -> None:
    reader = [Depends(pages.admin.access.read)]

    @router.get("/jobs/{job_id}", name="dashboard_job", dependencies=reader)
    async def job(request: Request, job_id: JobId) -> HTMLResponse:
        context = await _job_context(pages.admin, job_id)
        return pages.render(request, "job.html", nav="jobs", **context)

    @router.get("/fragments/jobs/{job_id}", name="dashboard_job_fragment", dependencies=reader)
    async def job_fragment(request: Request, job_id: JobId) -> HTMLResponse:
        return pages.render(request, "_job.html", **await _job_context(pages.admin, job_id))


def _workflow_routes(router: APIRouter, pages: _Pages) -> None:
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
        return _back(admin, request, "dashboard_workflow", message, workflow_id=workflow_id)


def _back(admin: Admin, request: Request, name: str, flash: str, **params: Any) -> RedirectResponse:
    """303 to a dashboard page (a name, never a URL from the request) with a signed message."""
    target = request.url_for(name, **params).path
    query = urlencode({"flash": flash, "flash_sig": admin.access.sign_message(flash)})
    return RedirectResponse(f"{target}?{query}", status_code=303)


async def _change_job(admin: Admin, job_id: int, action: str) -> str:
    tw = admin.manager
    try:
        if action == "retry":
            job = await tw.retry_task(job_id)
            return f"job {job_id} retried: now {job.state}"
        if action == "cancel":
            job = await tw.cancel_task(job_id, reason="cancelled in the dashboard")
            return f"job {job_id} cancel requested: now {job.state}"
        if action == "delete":
            try:
                await tw.delete_task(job_id)
            except JobRunning as exc:  # it started since the page was shown: say so
                return str(exc)
            return f"job {job_id} deleted"
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    raise HTTPException(404, f"unknown action {action!r}")


def _action_routes(router: APIRouter, admin: Admin) -> None:
    writer = [Depends(admin.access.write)]
    tw = admin.manager

    @router.post("/jobs/{job_id}/{action}", name="dashboard_job_action", dependencies=writer)
    async def job_action(request: Request, job_id: JobId, action: str) -> RedirectResponse:
        message = await _change_job(admin, job_id, action)
        if action == "delete":
            return _back(admin, request, "dashboard_jobs", message)
        return _back(admin, request, "dashboard_job", message, job_id=job_id)

    @router.post("/queues/{name}/{action}", name="dashboard_queue_action", dependencies=writer)
    async def queue_action(request: Request, name: str, action: str) -> RedirectResponse:
        if action not in ("pause", "resume"):
            raise HTTPException(404, f"unknown action {action!r}")
        try:
            await (tw.pause_queue(name) if action == "pause" else tw.resume_queue(name))
        except InvalidOptions as exc:
            raise HTTPException(400, str(exc)) from exc
        return _back(admin, request, "dashboard", f"queue {name} {action}d")

    @router.post("/dead/retry", name="dashboard_dead_retry", dependencies=writer)
    async def dead_retry(request: Request) -> RedirectResponse:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str) and v}
        query = JobQuery(queue=fields.get("queue"), task=fields.get("task"), search=fields.get("q"))
        result = await admin.bulk_action(query, "retry")
        message = f"{len(result.changed)} dead letter(s) retried"
        return _back(admin, request, "dashboard_dead", message)


def _static_route(router: APIRouter) -> None:
    @router.get("/static/{name}", name="dashboard_static")
    async def static(name: str) -> Response:
        media_type = STATIC_TYPES.get(name)
        if media_type is None:  # only the files listed: never a path from the request
            raise HTTPException(404)
        body = resources.files("taskward.web").joinpath("static", name).read_bytes()
        return Response(body, media_type=media_type, headers={"cache-control": "max-age=3600"})


SCHEDULE_FIRES_SHOWN = 10
"""Fire records the schedules page shows per schedule (the API serves up to 100)."""


async def _schedule_fires(tw: TaskManager, schedule: Schedule) -> dict[str, Any]:
    """The schedule's policies and its newest fire records, for the schedules page."""
    # Given the listed Schedule, not its name: the page listed them once already, and a
    # schedule without history must not list them all again (N schedules, N listings).
    # One deleted since the page listed it reads as no records.
    fires = await tw.cron_history(schedule, limit=SCHEDULE_FIRES_SHOWN)
    return {
        "catch_up": str(schedule.catch_up),
        "overlap": str(schedule.overlap),
        "fires": [
            {
                "planned_at": f.planned_at,
                "outcome": str(f.outcome),
                "job_id": f.job_id,
                "count": f.count,
                "reason": f.reason,
            }
            for f in fires
        ],
    }


def _schedule_row(schedule: Any, next_run: datetime | None) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "task": schedule.task,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "queue": schedule.queue,
        "next_run_at": next_run,
    }
