"""The dashboard's "Edit and retry" form on a job page, and the replays in the job's history.

Owns what the job page shows of replays (:func:`replay_context`: the form's pre-filled
values and the job's replay records) and the form's handler (``POST
/dashboard/replay/{id}``, :func:`replay_route`). The form pre-fills the arguments as the
page shows them: a sensitive value is ``"***"``, and a ``"***"`` left in its place keeps the
stored value (``taskward.replays.restore_hidden``), so a secret is never sent to the browser
and never needs retyping. A field left as shown changes nothing; an empty note records none.
``static/dashboard.js`` checks the JSON before the form is sent; the server checks it again
and answers a bad value with a message on the job page, changing nothing. A hidden field
(:func:`fingerprint`) carries what the page showed: a form older than the job's last change
is refused, so it never undoes another operator's replay.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from taskward.edits import CHANGED, replays_of
from taskward.errors import JobNotFound, TaskwardError
from taskward.jobs import RETRIABLE_BY_OPERATOR, Job
from taskward.web.admin import Admin, JobId
from taskward.web.formatting import clock_text
from taskward.web.queries import shown_arguments
from taskward.web.replays import operator

__all__ = ["replay_context", "replay_route"]

Back = Callable[..., RedirectResponse]
"""The dashboard's redirect with a signed message (``back(admin, request, name, text)``)."""


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def replay_context(job: Job) -> dict[str, Any]:
    """The job page's replay values: the form's, and the job's replay records.

    ``replay``: the form's values (None when the job cannot be retried or its arguments
    cannot be read); ``replays``: its records, oldest first.
    """
    form = None
    shown = shown_arguments(job)
    if job.state in RETRIABLE_BY_OPERATOR and shown.problem is None:
        form = {
            "args": _pretty(shown.args),
            "kwargs": _pretty(shown.kwargs),
            "queue": job.queue,
            "priority": job.priority,
            "shown": fingerprint(job),
        }
    rows = []
    for record in replays_of(job.meta):
        was = {k: v for k, v in record.items() if k in CHANGED or k.endswith("_omitted_bytes")}
        rows.append(
            {
                "at": str(record.get("at", "")),
                "by": record.get("by"),
                "note": record.get("note"),
                "state": record.get("state"),
                "was": json.dumps(was, ensure_ascii=False, default=str) if was else None,
            }
        )
    return {"replay": form, "replays": rows}


def fingerprint(job: Job) -> str:
    """What the form showed of ``job``, as a short hash (its hidden ``shown`` field).

    The shown (redacted) arguments, queue, priority and the last replay's id: the handler
    compares the job as it is now against it, so a form left open while another operator
    replayed the job cannot silently undo their edit. A hash of shown values only: no secret
    goes into it.
    """
    shown = shown_arguments(job)
    records = replays_of(job.meta)
    last = records[-1].get("id") if records else None
    text = json.dumps(
        [last, shown.args, shown.kwargs, job.queue, job.priority],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def changes_from_form(job: Job, form: Mapping[str, Any]) -> dict[str, Any]:
    """The changes the form asks for (only the fields edited); raise ValueError when bad.

    The fields are compared with the job as it is now, so the form must have shown that same
    job (its ``shown`` field, :func:`fingerprint`): a stale form is refused, not applied.
    """
    if form.get("shown") != fingerprint(job):
        raise ValueError(
            "the job changed since this page was shown (another operator's edit?): reload "
            "the page and edit it again"
        )
    shown = shown_arguments(job)
    changes: dict[str, Any] = {}
    for name, kind, current in (("args", list, shown.args), ("kwargs", dict, shown.kwargs)):
        value = _json_field(form, name, kind)
        if value is not None and value != current:
            changes[name] = value
    queue = form.get("queue")
    if isinstance(queue, str) and queue.strip() and queue.strip() != job.queue:
        changes["queue"] = queue.strip()
    priority = form.get("priority")
    if isinstance(priority, str) and priority.strip():
        try:
            number = int(priority)
        except ValueError:
            raise ValueError(f"priority must be a whole number 0..9, got {priority!r}") from None
        if number != job.priority:
            changes["priority"] = number
    note = form.get("note")
    if isinstance(note, str) and note.strip():
        changes["note"] = note.strip()
    return changes


def _json_field(form: Mapping[str, Any], name: str, kind: type) -> Any:
    """The JSON value of a form field (None when empty); ValueError unless a ``kind``."""
    text = form.get(name)
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a JSON {'list' if kind is list else 'object'}")
    return value


def replay_route(router: APIRouter, admin: Admin, back: Back) -> None:
    """Add ``POST /dashboard/replay/{id}``: the "Edit and retry" form's target."""
    writer = [Depends(admin.access.write)]

    @router.post("/replay/{job_id}", name="dashboard_job_replay", dependencies=writer)
    async def replay(request: Request, job_id: JobId) -> RedirectResponse:
        tw = admin.manager
        try:
            job = await tw.get_task_status(job_id)
            was = job.state
            if job.state not in RETRIABLE_BY_OPERATOR:
                raise ValueError(f"it is {job.state}: only a failed, discarded or cancelled job")
            changes = changes_from_form(job, await request.form())
            job = await tw.retry_task(job_id, **changes, by=operator(admin.access, request))
        except JobNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except (TaskwardError, ValueError) as exc:
            message = f"job {job_id} not retried, nothing changed: {exc}"
            return back(admin, request, "dashboard_job", message, job_id=job_id)
        edited = ", ".join(k for k in changes if k != "note") or "no argument"
        # What was done and when, never "now <state>": the job may run again before the page
        # is read, and the page shows the state it reads then.
        at = clock_text(tw.clock.now())
        message = (
            f"job {job_id} retried ({edited} changed) at {at}: moved from {was} to {job.state}"
        )
        return back(admin, request, "dashboard_job", message, job_id=job_id)
