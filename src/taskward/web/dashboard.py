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
from urllib.parse import quote, urlencode
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskward.errors import (
    BackendUnavailable,
    InvalidOptions,
    JobNotFound,
    JobRunning,
    ScheduleNotFound,
    TaskwardError,
    WorkflowNotFound,
)
from taskward.graph import step_marker, workflow_of
from taskward.health import HealthReason, HealthReport, HealthVerdict, QueueHealth
from taskward.jobs import JobState, Schedule
from taskward.manager import TaskManager
from taskward.sealing import ENCRYPTED_PLACEHOLDER, masked
from taskward.web.api import MAX_PAGE, Admin, JobId, job_detail, job_query, run_schedule
from taskward.web.guard import GuardedRoute
from taskward.web.headers import RouteHandler
from taskward.web.job_health import ReportCache
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
    _schedule_action_routes(router, admin)
    replay_route(router, admin, _back)
    _static_route(router)
    return router


OVERVIEW_HEALTH_MAX_AGE = 1.0
"""Seconds the overview reuses a health report: a page polled every 2 s by several browsers
costs the store about one check per second, as the probes of ``/health/jobs`` do."""
OVERVIEW_HEALTH_TIMEOUT = 2.0
"""Seconds the overview waits for the health check before it shows the counts without it."""

_health_caches: WeakKeyDictionary[Admin, ReportCache] = WeakKeyDictionary()

VERDICT_BADGES = {
    HealthVerdict.OK: "s-completed",
    HealthVerdict.DEGRADED: "s-retryable",
    HealthVerdict.FAILING: "s-failed",
}
"""The badge colour of each verdict (the state badges' green, amber and red)."""
STUCK_IDS_LINKED = 3
"""Stuck jobs of a queue linked by id on the overview (all of them are counted)."""
WAITING_STATES = ("blocked", "scheduled", "pending", "retryable")


async def _overview_health(admin: Admin) -> tuple[HealthReport | None, str | None]:
    """The manager's health report (one source with ``/health/jobs``), cached about 1 s.

    A check that fails or takes too long leaves the overview up: it says why, once.
    """
    cache = _health_caches.get(admin)
    if cache is None:
        # A short bound: the page polls every 2 s, and a store that hangs must not hold it.
        cache = _health_caches[admin] = ReportCache(
            admin.manager, OVERVIEW_HEALTH_MAX_AGE, timeout=OVERVIEW_HEALTH_TIMEOUT
        )
    try:
        return await cache.get(), None
    except Exception as exc:  # the counts still show; the health cell says it is unknown
        text = str(exc) if isinstance(exc, BackendUnavailable) else type(exc).__name__
        return None, text


def _number(value: int) -> str:
    """``1,070``: thousands separators everywhere on the overview."""
    return f"{value:,}"


def _plural(count: int, one: str, many: str | None = None) -> str:
    """``1 worker``, ``3 workers``."""
    return one if count == 1 else (many or one + "s")


def _age(seconds: float | None) -> str:
    """A waiting time in the largest unit that reads well: ``45 s``, ``3 min``, ``2 h``."""
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h {minutes} min" if hours < 10 and minutes else f"{hours} h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _count(queue: dict[str, Any], *states: str) -> dict[str, Any]:
    """A count of ``states`` in one queue: its value, text ("~" when estimated) and flag."""
    n = sum(queue["counts"].get(s, 0) for s in states)
    estimated = any(s in queue["estimated"] for s in states)
    return {"n": n, "text": ("~" if estimated else "") + _number(n), "estimated": estimated}


def _reason_text(reason: HealthReason) -> str:
    """A reason without its queue (the row names it): ``oldest due job waited 412 s (...)``."""
    message = reason.message
    prefix = f"queue {reason.queue!r}"
    if message.startswith(prefix):
        message = message[len(prefix) :].lstrip(",: ")
    return message


def _reason_short(reason: HealthReason) -> str:
    """A reason in a few words for the queue table (the full message is its tooltip)."""
    value, limit = reason.value, reason.limit
    match reason.threshold:
        case "max_oldest_due_age":
            return f"waited {_age(value)} (over {_age(limit)})"
        case "max_backlog":
            return f"backlog {value:,.0f} (over {limit:,.0f})"
        case "max_stuck":
            return f"{value:,.0f} stuck (over {limit:,.0f})"
        case "max_failure_rate_5m" | "max_failure_rate_60m":
            window = "5 min" if reason.threshold.endswith("5m") else "1 h"
            return f"{reason.task}: {value:.0%} failed in {window} (over {limit:.0%})"
        case "min_workers":
            if value == 0:
                return "no live worker while jobs wait"
            return f"{value:,.0f} {_plural(int(value), 'worker')} (under {limit:,.0f})"
    return _reason_text(reason)


def _health_row(health: QueueHealth | None, checked: bool) -> dict[str, Any]:
    """One queue's health figures as the overview shows them (``checked``: a report exists)."""
    if health is None:  # nothing due, running or ended lately: ok, when the check ran
        verdict = HealthVerdict.OK.value if checked else "unknown"
        return {
            "verdict": verdict,
            "verdict_class": VERDICT_BADGES[HealthVerdict.OK] if checked else "",
            "reasons": [],
            "reasons_short": [],
            "oldest_due_age": None,
            "oldest_due": "—",
            "backlog": 0,
            "backlog_text": "0",
            "stuck": 0,
            "stuck_ids": [],
            "failure_rate": None,
            "failure_rate_text": "—",
            "failure_title": "no run ended in the last hour",
        }
    runs = sum(t.last_60m.runs for t in health.tasks)
    failures = sum(t.last_60m.failures for t in health.tasks)
    rate = failures / runs if runs else None
    title = (
        f"{_number(failures)} of {_number(runs)} {_plural(runs, 'run')} failed in the last hour"
        if runs
        else "no run ended in the last hour"
    )
    return {
        "verdict": health.verdict.value,
        "verdict_class": VERDICT_BADGES[health.verdict],
        "reasons": [_reason_text(r) for r in health.reasons],
        "reasons_short": [_reason_short(r) for r in health.reasons],
        "oldest_due_age": health.oldest_due_age,
        "oldest_due": _age(health.oldest_due_age),
        "backlog": health.backlog,
        "backlog_text": _number(health.backlog),
        "stuck": health.stuck,
        "stuck_ids": list(health.stuck_ids[:STUCK_IDS_LINKED]),
        "failure_rate": rate,
        "failure_rate_text": "—" if rate is None else f"{rate:.0%}",
        "failure_title": title,
    }


def _overview_rows(
    queues: list[dict[str, Any]], report: HealthReport | None
) -> list[dict[str, Any]]:
    """Per queue: the stats' counts and limits with the health report's figures and verdict."""
    by_name = {q["name"]: q for q in queues}
    if report is not None:  # a queue only the report knows (no job counted yet) gets a row
        for health in report.queues:
            by_name.setdefault(
                health.queue,
                {
                    "name": health.queue,
                    "counts": {},
                    "estimated": [],
                    "paused": health.paused,
                    "concurrency": 0,
                    "workers": health.workers,
                    "global_limit": None,
                    "rate_limit": None,
                    "rate_used": None,
                    "rate_full": False,
                    "held_until": None,
                    "waits": {},
                },
            )
    rows = []
    for name in sorted(by_name):
        queue = by_name[name]
        judged = report.queue(name) if report is not None else None
        rows.append(
            {
                **queue,
                **_health_row(judged, report is not None),
                "waiting": _count(queue, *WAITING_STATES),
                "running": _count(queue, "running"),
                "completed": _count(queue, "completed"),
                "failed": _count(queue, "failed"),
                "discarded": _count(queue, "discarded"),
                "workers_text": f"{_number(queue['workers'])} "
                + _plural(queue["workers"], "worker"),
            }
        )
    return rows


TASKS_SHOWN = 30
"""Tasks the overview lists (most failures in the last hour first); the report has them all."""


def _rate_text(failures: int, runs: int) -> str:
    return f"{failures / runs:.0%}" if runs else "—"


def _task_rows(report: HealthReport | None) -> list[dict[str, Any]]:
    """Per (queue, task) with a run in the last hour: runs, failures and rates.

    Over 5 and 60 minutes, as the health report counts them; ``flagged`` when a rate tripped
    a threshold.
    """
    if report is None:
        return []
    flagged = {(r.queue, r.task) for r in report.reasons if r.task is not None}
    rows: list[dict[str, Any]] = [
        {
            "queue": t.queue,
            "task": t.task,
            "runs": _number(t.last_60m.runs),
            "failures": _number(t.last_60m.failures),
            "rate": _rate_text(t.last_60m.failures, t.last_60m.runs),
            "runs_5m": _number(t.last_5m.runs),
            "failures_5m": _number(t.last_5m.failures),
            "rate_5m": _rate_text(t.last_5m.failures, t.last_5m.runs),
            "flagged": (t.queue, t.task) in flagged,
            "order": (-t.last_60m.failures, -t.last_60m.runs, t.queue, t.task),
        }
        for q in report.queues
        for t in q.tasks
    ]
    rows.sort(key=lambda row: row["order"])
    return rows[:TASKS_SHOWN]


async def _overview_context(admin: Admin, request: Request) -> dict[str, Any]:
    tw = admin.manager
    stats = await tw.get_statistics()
    queues = await queue_overview(tw, stats)
    report, health_error = await _overview_health(admin)

    def total(*states: str) -> str:
        """The sum over every queue, "~" first when a part of it is an estimate."""
        n = sum(q["counts"].get(s, 0) for q in queues for s in states)
        estimated = any(s in q["estimated"] for q in queues for s in states)
        return f"~{_number(n)}" if estimated else _number(n)

    def dead_total() -> int:
        return sum(q["counts"].get(s, 0) for q in queues for s in ("failed", "discarded"))

    jobs = request.url_for("dashboard_jobs").path
    dead = request.url_for("dashboard_dead").path
    workers = stats["workers"]["total"]
    if report is not None:
        verdict = report.verdict.value
        tone = {HealthVerdict.OK: "ok", HealthVerdict.FAILING: "bad"}.get(report.verdict, "")
        verdict_class = f"v-{verdict} {tone}".strip()
        verdict_title = "; ".join(r.message for r in report.reasons) or "every queue is ok"
    else:
        verdict, verdict_class = "unknown", "v-unknown"
        verdict_title = f"the health check failed: {health_error}"
    totals = [
        ("health", verdict, verdict_class, "#queues", verdict_title),
        (
            "waiting",
            total(*WAITING_STATES),
            "",
            f"{jobs}?state=waiting",
            "",
        ),
        ("running", total("running"), "run", f"{jobs}?state=running", ""),
        ("completed", total("completed"), "ok", f"{jobs}?state=completed", ""),
        (
            _plural(dead_total(), "dead letter"),
            total("failed", "discarded"),
            "bad",
            dead,
            "",
        ),
        (_plural(workers, "worker"), _number(workers), "", "#workers", ""),
    ]
    return {
        "queues": _overview_rows(queues, report),
        "tasks": _task_rows(report),
        "any_estimate": any(q["estimated"] for q in queues),
        "health_error": health_error,
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
            row = _schedule_row(s, _next_runs(tw, s))
            row.update(await _schedule_fires(tw, s))
            row["jobs_url"] = _schedule_jobs_url(request, tw, s)
            for action in ("run", "delete"):  # the name quoted: it may hold "?", "#", "%"
                # Nothing kept safe: a "." or ".." segment would be removed by the browser,
                # and the action would reach another schedule ("a/../b" → "b").
                quoted = quote(s.name, safe="")
                path = request.url_for("dashboard_schedule_action", name=quoted, action=action)
                row[f"{action}_url"] = path.path
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


SCHEDULE_NEXT_RUNS = 3
"""Upcoming fire times the schedules page shows per schedule."""


def _next_runs(tw: TaskManager, schedule: Schedule) -> list[datetime]:
    """The schedule's next fire times (none if its cron or time zone no longer parses)."""
    runs: list[datetime] = []
    after: datetime | None = None
    try:
        for _ in range(SCHEDULE_NEXT_RUNS):
            after = tw.next_fire(schedule, after)
            runs.append(after)
    except (TaskwardError, ValueError):
        pass  # no (further) fire time: show what there is
    return runs


def _next_run(at: datetime, timezone: str) -> dict[str, Any]:
    """One fire time in UTC and on the schedule's own clock, with its zone's UTC offset.

    "—" on the schedule's clock for a zone this system does not know.
    """
    try:
        local = at.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return {"utc": at, "local": "—", "offset": ""}
    offset = local.strftime("%z")
    return {
        "utc": at,
        "local": local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "offset": f"UTC{offset[:3]}:{offset[3:]}",
    }


def _schedule_jobs_url(request: Request, tw: TaskManager, schedule: Schedule) -> str:
    """The jobs page filtered to the schedule's task and the queue its jobs go to."""
    try:  # the queue a fire would use (the schedule's, else its task's, else the default)
        queue = tw.schedule_job(schedule, tw.clock.now()).queue
    except TaskwardError:
        queue = schedule.queue or tw.settings.default_queue
    query = urlencode({"task": schedule.task, "queue": queue})
    return f"{request.url_for('dashboard_jobs').path}?{query}"


def _schedule_row(schedule: Schedule, next_runs: list[datetime]) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "task": schedule.task,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "queue": schedule.queue,
        "next_run_at": next_runs[0] if next_runs else None,
        "next_runs": [_next_run(at, schedule.timezone) for at in next_runs],
    }


def _schedule_action_routes(router: APIRouter, admin: Admin) -> None:
    """Run a schedule's job now, or delete the schedule (forms with the CSRF token)."""
    writer = [Depends(admin.access.write)]
    tw = admin.manager

    # The name is a path (it may hold "/"); the action is the last segment.
    @router.post(
        "/schedules/{name:path}/{action}", name="dashboard_schedule_action", dependencies=writer
    )
    async def schedule_action(request: Request, name: str, action: str) -> RedirectResponse:
        try:
            if action == "run":
                inserted = await run_schedule(tw, name)
                job = inserted.job
                how = "already run this second: job" if inserted.duplicate else "run now: job"
                message = f"schedule {name} {how} {job.id} ({job.state})"
            elif action == "delete":
                await tw.cancel_recurring_task(name)
                message = f"schedule {name} deleted"
            else:
                raise HTTPException(404, f"unknown action {action!r}")
        except ScheduleNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except BackendUnavailable as exc:  # the store is away: not the request's fault
            raise HTTPException(503, str(exc)) from exc
        except TaskwardError as exc:  # e.g. arguments its task no longer takes
            raise HTTPException(400, str(exc)) from exc
        return _back(admin, request, "dashboard_schedules", message)
