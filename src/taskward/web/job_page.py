"""The dashboard's job page: one job's state, error, arguments, history and actions.

The top of the page is what an operator opens it for: the state, the newest error with its
traceback (above the arguments), why a waiting job does not run, the times that fit the state
and the progress; then the arguments, the meta the application wrote, the history. A fragment
of it is polled while the job is not finished, recomputing its times with the manager's clock.

Each action is a form POST that comes back to the page with a signed message. The message
says what was done and when (``job 12 retried at 11:31:02 UTC: moved from failed to
pending``), never what the job is "now": by the time the page is read the job may have moved
on (a worker ran it and it failed again), and the page, read at render, says where it is and
since when, so the two cannot contradict each other.

A job deleted (or cleaned up) while its page is open is said so in place of the page, and
polling stops: the polled fragment answers 200 with a line and a link back, since htmx swaps
no 4xx answer, and an action on it goes back to the job list saying it no longer exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from taskward.errors import JobNotFound, JobRunning, TaskwardError
from taskward.graph import step_marker, workflow_of
from taskward.jobs import DEAD_STATES, RETRIABLE_BY_OPERATOR, ErrorRecord, Job, JobState
from taskward.sealing import masked
from taskward.serialize import UnreadablePayload
from taskward.web.admin import Admin, JobId, job_detail
from taskward.web.formatting import clock_text, pretty
from taskward.web.job_view import (
    actions_for,
    internal_notes,
    progress_of,
    schedule_note,
    times_of,
    user_meta,
)
from taskward.web.pages import Pages, back
from taskward.web.queries import shown_arguments
from taskward.web.replay_page import replay_context

__all__ = ["job_routes", "retry_message", "timeout_of"]

ERROR_FIRST = DEAD_STATES | {JobState.RETRYABLE}
"""States whose newest error heads the page: it is why the job is where it is."""
UNSHOWN_ARGUMENTS = "arguments not shown: the meta that says which are sensitive is unreadable"
"""Said in place of the arguments of a job whose stored meta cannot be read."""
RETRIED_STATES = frozenset({JobState.PENDING, JobState.SCHEDULED})
"""Where a retry puts a job: one returned in another state was not retried by this click."""


def timeout_of(admin: Admin, job: Job) -> tuple[float | None, str | None]:
    """The run-time limit a worker of this manager gives ``job`` and where it is set.

    The job's own, else its task's, else the manager's default: ``(600.0, "task")``.
    """
    if job.timeout is not None:
        return job.timeout, "job"
    task = admin.manager.registry.get(job.task)  # registered here only: never imports a name
    if task is not None and task.options.timeout is not None:
        return task.options.timeout, "task"
    default = admin.manager.settings.default_timeout
    return default, "default" if default is not None else None


def _readable_meta(job: Job) -> tuple[Job, str | None]:
    """``job`` with meta it can be shown with, and what was stored instead if it was not.

    A store hands back meta it cannot read as a dict (planted in the store, or another
    version's) as :class:`UnreadablePayload`: the page shows the job without it.
    """
    found: object = job.meta  # typed a dict; a store may hand back anything
    if isinstance(found, dict):
        return job, None
    problem = found.problem if isinstance(found, UnreadablePayload) else type(found).__name__
    return dataclasses.replace(job, meta={}), f"its stored meta is unreadable ({problem})"


async def _job_context(admin: Admin, job_id: int) -> dict[str, Any]:
    """What the page shows of job ``job_id`` (raises JobNotFound when there is none)."""
    stored, meta_problem = _readable_meta(await admin.manager.get_task_status(job_id))
    job = masked(stored)
    now = admin.manager.clock.now()  # read after the job: no time shown is later than "now"
    shown = shown_arguments(job)
    # Why a waiting job does not run (or where it runs); a finished job's history says it all.
    why = None
    # explain() reads the job's meta itself, and cannot read meta that is not a dict.
    if not job.is_finished and meta_problem is None:
        try:
            why = await admin.manager.explain(job_id)
        except TaskwardError:  # deleted since, or the store is away: the page goes without it
            why = None
    step_of = step_marker(job.meta) if workflow_of(job.meta) is not None else None
    newest = job.last_error if job.state in ERROR_FIRST else None
    older = [e for e in reversed(job.errors) if e is not newest]
    meta = user_meta(job.meta)
    meta_json = pretty(meta) if meta else None
    notes = internal_notes(job.meta) + ([meta_problem] if meta_problem else [])
    timeout, timeout_from = timeout_of(admin, job)
    arguments = {
        "args_json": pretty({"args": shown.args, "kwargs": shown.kwargs}),
        "payload_error": shown.problem,
        **replay_context(job),
    }
    if meta_problem is not None:  # the meta says which arguments are sensitive: none shown
        arguments |= {"args_json": "", "payload_error": UNSHOWN_ARGUMENTS, "replay": None}
    return {
        "job": job,
        "now": now,
        "as_of": clock_text(now),
        "why": why,
        "workflow": step_of,
        "detail": job_detail(admin, job),
        "times": times_of(job, now, timeout, timeout_from),
        "progress": progress_of(job.progress),
        "newest_error": newest,
        "newest_error_id": _content_id("job-error", _error_key(newest)) if newest else "",
        "older_errors": older,
        "older_errors_id": _content_id("job-errors", _errors_key(job, newest)),
        "actions": actions_for(job),
        "result_json": pretty(job.result),
        "meta_json": meta_json,
        # A poll swaps the page: an element with the same id and hx-preserve is kept as the
        # operator left it (opened, scrolled); the id changes when its content does.
        "meta_id": _content_id("job-meta", meta_json or ""),
        "schedule_note": schedule_note(job.meta),
        "internal_notes": notes,
        **arguments,
    }


def _content_id(prefix: str, text: str) -> str:
    """An element id that changes with ``text`` (a short hash of it)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{prefix}-{digest}"


def _error_key(error: ErrorRecord) -> str:
    """What identifies one error (an attempt ends once): its attempt and time."""
    return f"{error.attempt}|{error.at.isoformat()}"


def _errors_key(job: Job, newest: ErrorRecord | None) -> str:
    """What the list of earlier errors holds: the newest error (apart or in it) and the count.

    A retry moves the newest error from the top into this list without a new error: the id
    changes with it, so a poll or the swap after the click does not keep the old list.
    """
    last = _error_key(job.errors[-1]) if job.errors else ""
    return f"{newest is not None}|{len(job.errors)}|{last}"


def job_routes(router: APIRouter, pages: Pages) -> None:
    """Add this page's routes (the page, its polled fragment, its forms) to ``router``."""
    reader = [Depends(pages.admin.access.read)]

    @router.get("/jobs/{job_id}", name="dashboard_job", dependencies=reader)
    async def job(request: Request, job_id: JobId) -> HTMLResponse:
        try:
            context = await _job_context(pages.admin, job_id)
        except JobNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        return pages.render(request, "job.html", nav="jobs", **context)

    @router.get("/fragments/jobs/{job_id}", name="dashboard_job_fragment", dependencies=reader)
    async def job_fragment(request: Request, job_id: JobId) -> HTMLResponse:
        try:
            context = await _job_context(pages.admin, job_id)
        except JobNotFound:  # a 200 htmx swaps in, without a poll: the page says it is gone
            return pages.render(request, "_job_gone.html", job_id=job_id)
        return pages.render(request, "_job.html", **context)

    admin = pages.admin
    writer = [Depends(admin.access.write)]

    @router.post("/jobs/{job_id}/{action}", name="dashboard_job_action", dependencies=writer)
    async def job_action(request: Request, job_id: JobId, action: str) -> RedirectResponse:
        message, gone = await _change_job(admin, job_id, action)
        if gone:
            return back(admin, request, "dashboard_jobs", message)
        return back(admin, request, "dashboard_job", message, job_id=job_id)


async def _change_job(admin: Admin, job_id: int, action: str) -> tuple[str, bool]:
    """Do ``action``; what was done and when (never what the job is now), and if it is gone."""
    if action not in ("retry", "cancel", "delete"):
        raise HTTPException(404, f"unknown action {action!r}")
    tw = admin.manager
    try:
        if action == "retry":
            return await _retry(admin, job_id), False
        if action == "cancel":
            return await _cancel(admin, job_id), False
        try:
            await tw.delete_task(job_id)
        except JobRunning as exc:  # it started since the page was shown: say so
            return str(exc), False
        return f"job {job_id} deleted at {clock_text(tw.clock.now())}", True
    except JobNotFound:  # deleted by someone else since the page was shown
        return f"job {job_id} no longer exists", True


async def _retry(admin: Admin, job_id: int) -> str:
    tw = admin.manager
    before = await tw.get_task_status(job_id)
    if before.state not in RETRIABLE_BY_OPERATOR:  # a second click, or another operator's
        at = clock_text(tw.clock.now())
        return f"job {job_id} not retried: it was {before.state} at {at}"
    job = await tw.retry_task(job_id)
    return retry_message(job_id, before.state, job.state, clock_text(tw.clock.now()))


def retry_message(job_id: int, before: JobState, after: JobState, at: str) -> str:
    """What a retry did: moved the job from ``before`` to ``after`` at ``at``, or nothing.

    A job that changed state between the read and the retry (another operator's retry, then a
    worker) comes back as it is, unchanged: it was not retried by this click.
    """
    if before not in RETRIABLE_BY_OPERATOR or after not in RETRIED_STATES:
        return f"job {job_id} not retried: it was {after} at {at}"
    return f"job {job_id} retried at {at}: moved from {before} to {after}"


async def _cancel(admin: Admin, job_id: int) -> str:
    tw = admin.manager
    job = await tw.cancel_task(job_id, reason="cancelled in the dashboard")
    at = clock_text(tw.clock.now())
    if job.state is JobState.CANCELLED:
        return f"job {job_id} cancelled at {at}"
    if job.cancel_requested:
        return f"job {job_id} asked to stop at {at}: its worker stops it at its next heartbeat"
    return f"job {job_id} not cancelled: it was already {job.state} at {at}"
