"""The job lists' bulk actions: confirm the exact count, then change exactly those jobs.

``POST /dashboard/{jobs,dead}/bulk`` (the action bar: a selection of ids, or all matching
the list's filters) answers a confirmation page: "Retry 37 jobs?", the jobs it would take
(the first :data:`~taskward.web.queries.BULK_LIMIT` of more, said so) and those left out
(discarded ones unless asked, running ones for a delete), with those ids in hidden fields.
``POST /dashboard/{jobs,dead}/bulk/run`` changes those ids only, each only from a state its
action takes (:mod:`taskward.web.bulk`), and redirects to the list, with its filters, saying
how many changed and how many were skipped and why. Plain forms with the CSRF token: it all
works without JavaScript. A form that cannot be read (too many fields) or bad ids answer the
400 page.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskward.errors import TaskwardError
from taskward.jobs import JobState
from taskward.web.admin import MAX_JOB_ID, Admin
from taskward.web.bulk import (
    Applied,
    Targets,
    action_states,
    apply,
    collect_matching,
    collect_selected,
)
from taskward.web.error_kinds import KindCache
from taskward.web.formatting import plural
from taskward.web.jobs_filters import FILTERS, list_query
from taskward.web.pages import Pages, back
from taskward.web.queries import BULK_LIMIT, JobQuery, is_scan

__all__ = ["BUTTONS", "bulk_page_routes"]

BUTTONS: dict[str, tuple[str, bool]] = {
    "retry": ("retry", False),
    "cancel": ("cancel", False),
    "delete": ("delete", False),
    "retry-all": ("retry", True),
    "delete-all": ("delete", True),
}
"""What each button of the action bar asks: the action, and whether for all matching jobs."""
LIST_ACTIONS = {True: ("retry", "delete"), False: ("retry", "cancel", "delete")}
"""The actions each list offers (dead letters: no cancel, they are not waiting)."""
DONE = {"retry": "Retried", "cancel": "Cancelled", "delete": "Deleted"}
JOB_ID = re.compile(r"[0-9]{1,19}")
"""A job id as a form sends it: ASCII digits only (no sign, ``_`` or other scripts' digits)."""
WHOLE_NUMBERS = f"ids are whole numbers from 1 to {MAX_JOB_ID}"


async def read_form(request: Request) -> FormData:
    """The request's form, or the 400 page when it cannot be read (too many fields, say).

    A dependency listed before the CSRF check, which reads the form too: Starlette's own
    error would answer JSON. The form is kept on the request, so it is parsed once.
    """
    try:
        return await request.form()
    except StarletteHTTPException as exc:
        raise HTTPException(400, f"the form cannot be read: {exc.detail}") from None


def _choice(form: FormData, *, dead: bool) -> tuple[str, bool]:
    """The action asked for and whether it is for all matching jobs (400 when unknown)."""
    button = form.get("action")
    if not isinstance(button, str) or button not in BUTTONS:
        raise HTTPException(400, "choose an action: retry, cancel or delete")
    action, everything = BUTTONS[button]
    if action not in LIST_ACTIONS[dead]:
        raise HTTPException(400, f"the dead letters cannot be {DONE[action].lower()}")
    return action, everything or form.get("all") == "1"


def _ids(form: FormData) -> list[int]:
    """The job ids of the form, each a job id, at most :data:`BULK_LIMIT` (400 otherwise).

    Ticked rows send one ``id`` field each; a confirmation sends its ids in one ``ids`` field
    (comma-separated), which keeps 1,000 ids under the form parser's limit on fields. The
    commas are counted before anything is split, so a huge field costs one pass.
    """
    values = [str(v) for v in form.getlist("id")]
    for joined in form.getlist("ids"):
        text = str(joined)
        if len(values) + text.count(",") >= BULK_LIMIT + 1:
            raise HTTPException(400, f"at most {BULK_LIMIT:,} jobs at a time")
        values += [part for part in text.split(",") if part.strip()]
    if len(values) > BULK_LIMIT:
        raise HTTPException(400, f"at most {BULK_LIMIT:,} jobs at a time, got {len(values):,}")
    ids: list[int] = []
    for value in values:
        if not JOB_ID.fullmatch(value.strip()):
            raise HTTPException(
                400, f"{value[:40]!r} is not a job id: ids are whole numbers from 1"
            )
        job_id = int(value)
        if not 1 <= job_id <= MAX_JOB_ID:
            raise HTTPException(400, f"{job_id} is not a job id: {WHOLE_NUMBERS}")
        ids.append(job_id)
    if not ids:
        raise HTTPException(400, "select at least one job, or choose all matching")
    return list(dict.fromkeys(ids))


def _filters(form: FormData) -> dict[str, str]:
    return {k: v for k in (*FILTERS, "sort") if isinstance(v := form.get(k), str) and v}


async def _matching(
    admin: Admin, request: Request, query: JobQuery, action: str, states: frozenset[JobState]
) -> Targets:
    """All jobs matching ``query`` the action takes, and those it leaves out by state."""
    left_alone = {"retry": {JobState.DISCARDED}, "delete": {JobState.RUNNING}}.get(action, set())
    if query.states is not None:
        left_alone &= query.states
    scan = is_scan(query)  # a search or an error kind: read by a capped scan
    if scan:
        admin.access.search(request)
    async with admin.searches.slot() if scan else nullcontext():
        targets = await collect_matching(admin.manager, query, states)
        left_out: dict[str, int] = {}
        for state in sorted(left_alone - states):
            found = await collect_matching(admin.manager, query, frozenset({state}), limit=0)
            if found.matched:
                left_out[state.value] = found.matched
    return Targets(
        ids=targets.ids,
        matched=targets.matched,
        approximate=targets.approximate,
        left_out=left_out,
    )


async def _confirm_context(admin: Admin, request: Request, *, dead: bool) -> dict[str, Any]:
    form = await read_form(request)
    action, everything = _choice(form, dead=dead)
    include = form.get("include_discarded") == "1"
    states = action_states(action, dead=dead, include_discarded=include)
    filters = _filters(form)
    if everything:
        try:
            query = list_query(filters, dead=dead)
        except (TaskwardError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        targets = await _matching(admin, request, query, action, states)
    else:
        targets = await collect_selected(admin.manager, _ids(form), states)
    list_route = "dashboard_dead" if dead else "dashboard_jobs"
    back_url = request.url_for(list_route).path
    return {
        "action": action,
        "verb": action.capitalize(),
        "past": DONE[action].lower(),
        "everything": everything,
        "filters": filters,
        "include_discarded": include,
        "targets": targets,
        "shown": targets.ids[:40],
        "joined_ids": ",".join(str(i) for i in targets.ids),
        "dead": dead,
        "run_url": request.url_for(f"{list_route}_bulk_run").path,
        "back_url": f"{back_url}?{urlencode(filters)}" if filters else back_url,
        "heading": "Dead letters" if dead else "Jobs",
        "nav": "dead" if dead else "jobs",
    }


SKIPPED = {
    "gone": ("because it no longer exists", "because they no longer exist"),
    "discarded": (
        "because it is discarded (tick “include discarded” to retry it)",
        "because they are discarded (tick “include discarded” to retry them)",
    ),
    "moved": ("because it is in another state now", "because they are in other states now"),
    "running": ("because it is running", "because they are running"),
}
"""How the flash message says each reason of :data:`taskward.web.bulk.SKIP_REASONS`."""


def _message(action: str, result: Applied) -> str:
    changed = len(result.changed)
    parts = [f"{DONE[action]} {changed:,} {plural(changed, 'job')}"]
    for reason, (one, many) in SKIPPED.items():
        count = result.count(reason)
        if count:
            parts.append(f"{count:,} skipped {one if count == 1 else many}")
    return "; ".join(parts)


def _list_url(admin: Admin, request: Request, name: str, message: str, form: FormData) -> str:
    """The list the form came from, with its filters, and the signed message."""
    answer = back(admin, request, name, message)
    filters = _filters(form)
    location = answer.headers["location"]
    return f"{location}&{urlencode(filters)}" if filters else location


def bulk_page_routes(router: APIRouter, pages: Pages, kinds: KindCache | None = None) -> None:
    """Add the confirmation and the action of both lists (before ``/jobs/{id}/...``).

    ``kinds``: the dead letters' error-kind counts, forgotten after each bulk action so the
    list it redirects to shows the new ones.
    """
    admin = pages.admin
    # The form is read (or refused with the 400 page) before the CSRF check reads it.
    writer = [Depends(read_form), Depends(admin.access.write)]

    async def confirm(request: Request, *, dead: bool) -> HTMLResponse:
        context = await _confirm_context(admin, request, dead=dead)
        return pages.render(request, "jobs_confirm.html", **context)

    async def run(request: Request, *, dead: bool) -> RedirectResponse:
        form = await read_form(request)
        action, _ = _choice(form, dead=dead)
        include = form.get("include_discarded") == "1"
        states = action_states(action, dead=dead, include_discarded=include)
        result = await apply(admin.manager, _ids(form), action, states)
        if kinds is not None:
            kinds.clear()
        name = "dashboard_dead" if dead else "dashboard_jobs"
        target = _list_url(admin, request, name, _message(action, result), form)
        return RedirectResponse(target, status_code=303)

    @router.post("/jobs/bulk", name="dashboard_jobs_bulk", dependencies=writer)
    async def jobs_confirm(request: Request) -> HTMLResponse:
        return await confirm(request, dead=False)

    @router.post("/dead/bulk", name="dashboard_dead_bulk", dependencies=writer)
    async def dead_confirm(request: Request) -> HTMLResponse:
        return await confirm(request, dead=True)

    @router.post("/jobs/bulk/run", name="dashboard_jobs_bulk_run", dependencies=writer)
    async def jobs_run(request: Request) -> RedirectResponse:
        return await run(request, dead=False)

    @router.post("/dead/bulk/run", name="dashboard_dead_bulk_run", dependencies=writer)
    async def dead_run(request: Request) -> RedirectResponse:
        return await run(request, dead=True)
