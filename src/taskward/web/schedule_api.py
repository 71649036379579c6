"""The admin API's changes to one recurring schedule: run its job now, pause, resume, delete.

``POST /api/schedules/{name}/run``, ``POST /api/schedules/{name}/pause``,
``POST /api/schedules/{name}/resume`` and ``DELETE /api/schedules/{name}`` (writers only; the
name may contain ``/``). The reads (``GET /api/schedules``, its history) are with the other
reads in :mod:`taskward.web.api`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from taskward.errors import NotSupported, TaskwardError
from taskward.jobs import Inserted, Schedule
from taskward.manager import TaskManager
from taskward.schedule_ops import find_schedule, run_schedule_now
from taskward.web.admin import Admin, edge_errors
from taskward.web.models import JobOut, ScheduleOut

__all__ = ["run_schedule", "schedule_routes"]


async def run_schedule(tw: TaskManager, name: str) -> Inserted:
    """Insert schedule ``name``'s job now (``ScheduleNotFound`` if there is none).

    The job a fire would insert, with the unique key of the current second's slot: a double
    click makes one job. The schedule's ``overlap`` applies as at a fire time
    (``ScheduleOverlap`` for ``skip`` while its previous run is active; ``cancel_running``
    asks for that run's cancel first). A paused schedule runs too. Nothing is written to the
    fire history (see :mod:`taskward.schedule_ops`).
    """
    backend = (await tw.open()).backend
    schedule = await find_schedule(backend, name)
    if tw.registry.runnable(schedule.task) is None:
        # A stand-in would give the job default options (queue, timeout) and leave the
        # arguments of an encrypted task unsealed: only the app's own tasks run by hand.
        raise NotSupported(
            f"task {schedule.task!r} is not registered in this process: run the dashboard "
            "with the app (--app) to run its schedules now"
        )
    inserted = await run_schedule_now(
        backend,
        schedule,
        tw.schedule_job,
        tw.clock.now(),
        cancel_job=lambda job_id, reason: tw.cancel_task(job_id, reason=reason),
    )
    return Inserted(job=tw.unsealed(inserted.job), duplicate=inserted.duplicate)


def schedule_routes(router: APIRouter, admin: Admin) -> None:
    """Changes to one recurring schedule: run now, pause, resume, delete (writers only)."""
    tw = admin.manager
    writer = [Depends(admin.access.write)]

    @router.post("/schedules/{name:path}/run", dependencies=writer)
    async def run_schedule_now_route(name: str) -> JobOut:
        """Insert the schedule's job now, as a fire would (404 for no such schedule).

        Calls within one second answer the same job (the slot's unique key); the fire
        history is not written. 409 when the schedule's ``overlap`` is ``skip`` and a job of
        its previous run has not ended (the message names it). ``name`` may contain ``/``.
        """
        async with edge_errors():
            return JobOut.of((await run_schedule(tw, name)).job)

    @router.post("/schedules/{name:path}/pause", dependencies=writer)
    async def pause_schedule(name: str) -> ScheduleOut:
        """Stop the schedule firing until it is resumed (404 for no such schedule).

        Kept across the app saving its schedules again at start. Its job can still be run
        now by hand.
        """
        async with edge_errors():
            return _out(tw, await tw.pause_schedule(name))

    @router.post("/schedules/{name:path}/resume", dependencies=writer)
    async def resume_schedule(name: str) -> ScheduleOut:
        """Let the schedule fire again from its next fire time (404 for no such schedule).

        Fire times that passed while it was paused are not caught up: its history records
        them as one skipped summary (reason "paused").
        """
        async with edge_errors():
            return _out(tw, await tw.resume_schedule(name))

    @router.delete("/schedules/{name:path}", dependencies=writer, status_code=204)
    async def delete_schedule(name: str) -> Response:
        """Delete the recurring schedule and its fire history (404 for no such schedule).

        Jobs it inserted already are left as they are.
        """
        async with edge_errors():
            await tw.cancel_recurring_task(name)
        return Response(status_code=204)


def _out(tw: TaskManager, schedule: Schedule) -> ScheduleOut:
    """The schedule as ``GET /api/schedules`` lists it (no next run if its cron fails)."""
    try:
        next_run = tw.next_fire(schedule)
    except (TaskwardError, ValueError):
        next_run = None
    return ScheduleOut.of(schedule, next_run)
