"""The dashboard's job page: one job's state, error, arguments, history and actions.

A fragment of it is polled while the job is not finished; each action is a form POST that
comes back to the page with a signed message.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from taskward.errors import JobNotFound, JobRunning, TaskwardError
from taskward.graph import step_marker, workflow_of
from taskward.sealing import masked
from taskward.web.api import Admin, JobId, job_detail
from taskward.web.formatting import pretty
from taskward.web.pages import Pages, back
from taskward.web.queries import shown_arguments
from taskward.web.replay_page import replay_context

__all__ = ["job_routes"]


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
        "args_json": pretty({"args": shown.args, "kwargs": shown.kwargs}),
        "payload_error": shown.problem,
        "result_json": pretty(job.result),
        "progress_json": pretty(job.progress),
        "meta_json": pretty(job.meta),
        **replay_context(job),
    }


def job_routes(router: APIRouter, pages: Pages) -> None:
    """Add this page's routes (the page, its polled fragment, its forms) to ``router``."""
    reader = [Depends(pages.admin.access.read)]

    @router.get("/jobs/{job_id}", name="dashboard_job", dependencies=reader)
    async def job(request: Request, job_id: JobId) -> HTMLResponse:
        context = await _job_context(pages.admin, job_id)
        return pages.render(request, "job.html", nav="jobs", **context)

    @router.get("/fragments/jobs/{job_id}", name="dashboard_job_fragment", dependencies=reader)
    async def job_fragment(request: Request, job_id: JobId) -> HTMLResponse:
        return pages.render(request, "_job.html", **await _job_context(pages.admin, job_id))

    admin = pages.admin
    writer = [Depends(admin.access.write)]

    @router.post("/jobs/{job_id}/{action}", name="dashboard_job_action", dependencies=writer)
    async def job_action(request: Request, job_id: JobId, action: str) -> RedirectResponse:
        message = await _change_job(admin, job_id, action)
        if action == "delete":
            return back(admin, request, "dashboard_jobs", message)
        return back(admin, request, "dashboard_job", message, job_id=job_id)


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
