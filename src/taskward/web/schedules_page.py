"""The dashboard's schedules page: each schedule's policies, last fires and next runs.

Next runs are shown on the schedule's own clock and in UTC (struck through, "paused", while
the schedule is paused); "run now", "pause", "resume" and "delete" are form POSTs (the name
quoted whole, as it may hold "/"). A run now that the schedule's ``overlap="skip"`` refuses
comes back as a message on the page, naming the run still active.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from taskward.errors import BackendUnavailable, ScheduleNotFound, ScheduleOverlap, TaskwardError
from taskward.jobs import Schedule
from taskward.manager import TaskManager
from taskward.web.pages import Pages, back
from taskward.web.schedule_api import run_schedule

__all__ = ["schedule_routes"]


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
        "paused": schedule.paused,
        "next_run_at": next_runs[0] if next_runs else None,
        "next_runs": [_next_run(at, schedule.timezone) for at in next_runs],
    }


SCHEDULE_ACTIONS = ("run", "pause", "resume", "delete")
"""The schedules page's form actions (the last segment of their POST path)."""


async def _act(tw: TaskManager, name: str, action: str) -> str:
    """Do ``action`` (one of :data:`SCHEDULE_ACTIONS`) to schedule ``name``; the message."""
    if action == "run":
        inserted = await run_schedule(tw, name)
        job = inserted.job
        how = "already run this second: job" if inserted.duplicate else "run now: job"
        return f"schedule {name} {how} {job.id} ({job.state})"
    if action in ("pause", "resume"):
        # Said as it stood: a stale page's second click must not claim a change it did not make.
        was = {s.name: s.paused for s in await tw.list_recurring_tasks()}.get(name)
        if action == "pause":
            await tw.pause_schedule(name)
            if was:
                return f"schedule {name} was paused already"
            return f"schedule {name} paused: no fire time runs until it is resumed"
        schedule = await tw.resume_schedule(name)
        if was is False:
            return f"schedule {name} was not paused: {_resumed_from(tw, schedule)}"
        return f"schedule {name} resumed: {_resumed_from(tw, schedule)}"
    await tw.cancel_recurring_task(name)
    return f"schedule {name} deleted"


def _resumed_from(tw: TaskManager, schedule: Schedule) -> str:
    """When a resumed schedule fires next (the times it missed while paused are not run)."""
    runs = _next_runs(tw, schedule)
    if not runs:
        return "its cron or time zone no longer parses"
    return f"next run {runs[0].isoformat(timespec='seconds')}; missed fire times not caught up"


def schedule_routes(router: APIRouter, pages: Pages) -> None:
    """The schedules page, and its forms: run a schedule's job now, pause, resume, delete."""
    admin = pages.admin
    reader, writer = [Depends(admin.access.read)], [Depends(admin.access.write)]
    tw = admin.manager

    @router.get("/schedules", name="dashboard_schedules", dependencies=reader)
    async def schedules(request: Request) -> HTMLResponse:
        rows = []
        for s in await tw.list_recurring_tasks():
            row = _schedule_row(s, _next_runs(tw, s))
            row.update(await _schedule_fires(tw, s))
            row["jobs_url"] = _schedule_jobs_url(request, tw, s)
            # The name quoted: it may hold "?", "#", "%". Nothing kept safe: a "." or ".."
            # segment would be removed by the browser, and the action would reach another
            # schedule ("a/../b" → "b").
            for action in SCHEDULE_ACTIONS:
                quoted = quote(s.name, safe="")
                path = request.url_for("dashboard_schedule_action", name=quoted, action=action)
                row[f"{action}_url"] = path.path
            rows.append(row)
        return pages.render(request, "schedules.html", nav="schedules", schedules=rows)

    # The name is a path (it may hold "/"); the action is the last segment.
    @router.post(
        "/schedules/{name:path}/{action}", name="dashboard_schedule_action", dependencies=writer
    )
    async def schedule_action(request: Request, name: str, action: str) -> RedirectResponse:
        if action not in SCHEDULE_ACTIONS:
            raise HTTPException(404, f"unknown action {action!r}")
        try:
            message = await _act(tw, name, action)
        except ScheduleNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except ScheduleOverlap as exc:  # refused by the schedule's own policy: say so
            return back(admin, request, "dashboard_schedules", str(exc))
        except BackendUnavailable as exc:  # the store is away: not the request's fault
            raise HTTPException(503, str(exc)) from exc
        except TaskwardError as exc:  # e.g. arguments its task no longer takes
            raise HTTPException(400, str(exc)) from exc
        return back(admin, request, "dashboard_schedules", message)
