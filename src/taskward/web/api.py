"""The JSON admin API: jobs, queues, schedules, statistics; mount it into your FastAPI app.

```python
from taskward.web import AdminAuth, create_admin_router
app.include_router(create_admin_router(tw, auth=AdminAuth(token=os.environ["ADMIN_TOKEN"])))
```

Reads: ``GET /api/jobs``, ``/api/jobs/{id}``, ``/api/jobs/{id}/explain``,
``/api/jobs/{id}/wait`` (a long poll until the job ends, at most 30 s), ``/api/queues``,
``/api/queues/limits``, ``/api/schedules``, ``/api/stats``, ``/api/events``. Changes (auth
required, see :mod:`taskward.web.auth`): ``POST /api/jobs/{id}/retry|cancel``,
``DELETE /api/jobs/{id}``, ``POST /api/jobs/bulk/retry|cancel|delete`` (a retry may carry
edits: :mod:`taskward.web.replays`),
``POST /api/queues/{name}/pause|resume``, ``PUT /api/queues/{name}/limits``,
``POST /api/schedules/{name}/run|pause|resume``, ``DELETE /api/schedules/{name}``. The bulk
routes are in :mod:`taskward.web.bulk_api`, the schedule changes in
:mod:`taskward.web.schedule_api`.
Nothing in a request is ever executed: jobs are only retried, cancelled or deleted by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from taskward.errors import (
    TaskwardError,
    WaitTimeout,
)
from taskward.explain import Explanation
from taskward.jobs import CRON_HISTORY_KEEP
from taskward.limits import QueueLimits
from taskward.manager import TaskManager
from taskward.web.admin import (
    MAX_JOB_ID,
    MAX_PAGE,
    SEARCH_CONCURRENCY,
    Admin,
    JobId,
    SearchSlots,
    edge_errors,
    job_detail,
    job_query,
)
from taskward.web.auth import AdminAuth
from taskward.web.bulk_api import bulk_routes
from taskward.web.guard import JsonRoute
from taskward.web.models import (
    CronFireOut,
    DeletedOut,
    EventOut,
    ExplanationOut,
    JobDetailOut,
    JobListOut,
    JobOut,
    QueueHoldIn,
    QueueLimitsIn,
    QueueLimitsOut,
    QueueOut,
    ReasonOut,
    ScheduleOut,
    StatsOut,
    TimelineOut,
    WorkerOut,
    WorkflowOut,
)
from taskward.web.queries import (
    queue_overview,
)
from taskward.web.replays import (
    RetryIn,
    operator,
    retry_one,
)
from taskward.web.schedule_api import run_schedule, schedule_routes

__all__ = [
    "MAX_JOB_ID",
    "MAX_PAGE",
    "SEARCH_CONCURRENCY",
    "Admin",
    "JobId",
    "SearchSlots",
    "create_admin_router",
    "explanation_out",
    "job_detail",
    "limits_out",
    "run_schedule",
]

MAX_WAIT_SECONDS = 30.0
"""The longest ``GET /api/jobs/{id}/wait`` holds a request (proxies often cut at 60 s)."""


def explanation_out(explanation: Explanation) -> ExplanationOut:
    """An explanation as the API shows it (its job as ``GET /api/jobs/{id}`` shows one)."""
    return ExplanationOut(
        job=JobOut.model_validate(explanation.job),
        running=explanation.running,
        reasons=[ReasonOut(**r.to_dict()) for r in explanation.reasons],
        at=explanation.at,
    )


def limits_out(
    queue: str,
    limits: QueueLimits,
    held_until: datetime | None = None,
    waits: Mapping[str, int] | None = None,
) -> QueueLimitsOut:
    """A queue's stored limits (and hold, and how often they held jobs back) for the API."""
    rate, rule = limits.rate_limit, limits.partition_by
    return QueueLimitsOut(
        queue=queue,
        global_limit=limits.global_limit,
        rate_limit=None if rate is None else str(rate),
        partition_by=None if rule is None else str(rule),
        held_until=held_until,
        waits={r: n for r, n in sorted((waits or {}).items()) if n},
    )


def create_admin_router(
    manager: TaskManager | Admin,
    *,
    auth: AdminAuth | None = None,
    read_only: bool = False,
) -> APIRouter:
    """Build the JSON admin router (paths under ``/api``) for ``manager``.

    Without ``auth`` the API is read-only and reads are public: give an :class:`AdminAuth`
    to allow changes (and protect reads). ``read_only=True`` refuses every change.
    """
    admin = (
        manager if isinstance(manager, Admin) else Admin(manager, auth=auth, read_only=read_only)
    )
    router = APIRouter(prefix="/api", tags=["taskward admin"], route_class=JsonRoute)
    _job_reads(router, admin)
    bulk_routes(router, admin)  # before /jobs/{id}/...: "bulk" is not a job id
    _job_changes(router, admin)
    _limit_routes(router, admin)  # before /queues/{name}: "limits" is not a queue
    _queue_routes(router, admin)
    _info_routes(router, admin)
    schedule_routes(router, admin)
    _workflow_routes(router, admin)
    return router


def _workflow_routes(router: APIRouter, admin: Admin) -> None:
    tw = admin.manager

    @router.get("/workflows/{workflow_id}", dependencies=[Depends(admin.access.read)])
    async def workflow(workflow_id: JobId) -> WorkflowOut:
        """A workflow's state and each step's job, state and dependencies."""
        async with edge_errors():
            return WorkflowOut.of(await tw.get_workflow(workflow_id))

    @router.post("/workflows/{workflow_id}/cancel", dependencies=[Depends(admin.access.write)])
    async def cancel_workflow(workflow_id: JobId) -> WorkflowOut:
        """Cancel every step not ended (running ones are asked to stop); finalizers run."""
        async with edge_errors():
            record = await tw.cancel_workflow(workflow_id, reason="cancelled in the admin API")
            return WorkflowOut.of(record)


def _job_reads(router: APIRouter, admin: Admin) -> None:
    tw = admin.manager
    reader = [Depends(admin.access.read)]

    @router.get("/jobs", dependencies=reader)
    async def jobs(
        request: Request,
        state: Annotated[str | None, Query(description="state, comma list, dead, waiting")] = None,
        queue: str | None = None,
        task: str | None = None,
        q: Annotated[str | None, Query(description="text in args, kwargs, errors")] = None,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        per_page: Annotated[int, Query(ge=1, le=500)] = 25,
        sort_by: str = "-id",
        workflow: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> JobListOut:
        """List jobs, newest first, filtered; ``q`` searches the newest 5,000 matches.

        A search needs credentials even when reads are public, answers 429 while too many
        run, and stops after a few seconds (``search_timed_out``: the matches are partial).
        """
        async with edge_errors():
            query = job_query(state, queue, task, q, page, per_page, sort_by, workflow)
            return JobListOut.of(await admin.list_jobs(request, query))

    @router.get("/jobs/{job_id}", dependencies=reader)
    async def job(job_id: JobId) -> JobDetailOut:
        """One job: args, errors with tracebacks, attempts, timings, history."""
        async with edge_errors():
            return job_detail(admin, await tw.get_task_status(job_id))

    @router.get(
        "/jobs/{job_id}/wait",
        dependencies=reader,
        responses={202: {"description": "not ended within the timeout: the job as it stands"}},
    )
    async def wait(
        job_id: JobId,
        response: Response,
        timeout: Annotated[
            float, Query(ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait, at most 30")
        ] = MAX_WAIT_SECONDS,
    ) -> JobOut:
        """Long poll: answer once the job ends (200), or after ``timeout`` seconds (202).

        200: the job ended (completed, failed, discarded or cancelled; its ``state``, result
        and errors say how). 202: it has not ended yet; the body is the job as it stands, and
        the client asks again. 404: no such job (or deleted while waiting). All waiting
        requests of this process share one watcher of the store (``TaskManager.wait_for``).
        """
        async with edge_errors():
            try:
                return JobOut.of(await tw.wait_for_end(job_id, timeout=timeout))
            except WaitTimeout:
                response.status_code = 202
                return JobOut.of(await tw.get_task_status(job_id))

    @router.get("/jobs/{job_id}/explain", dependencies=reader)
    async def explain(job_id: JobId) -> ExplanationOut:
        """Why the job is not running right now: every reason, in plain words and as data."""
        async with edge_errors():
            return explanation_out(await tw.explain(job_id))


def _job_changes(router: APIRouter, admin: Admin) -> None:
    tw = admin.manager
    writer = [Depends(admin.access.write)]

    @router.post("/jobs/{job_id}/retry", dependencies=writer)
    async def retry(job_id: JobId, request: Request, body: RetryIn | None = None) -> JobOut:
        """Move a failed, discarded or cancelled job back to pending, with the body's changes.

        The optional JSON body (``RetryIn``): new args, kwargs, queue, priority and a note,
        validated as at enqueue (400 and nothing changed when bad, or when the job is in
        another state); see ``taskward.web.replays``.
        """
        async with edge_errors():
            by = operator(admin.access, request)
            return JobOut.of(await retry_one(tw, job_id, body, by))

    @router.post("/jobs/{job_id}/cancel", dependencies=writer)
    async def cancel(job_id: JobId) -> JobOut:
        """Cancel a waiting job, or ask the worker running it to stop."""
        async with edge_errors():
            return JobOut.of(await tw.cancel_task(job_id, reason="cancelled in the admin API"))

    @router.delete("/jobs/{job_id}", dependencies=writer)
    async def delete(job_id: JobId) -> DeletedOut:
        """Delete a job that is not running."""
        async with edge_errors():
            await tw.delete_task(job_id)
            return DeletedOut(deleted=True)


def _queue_routes(router: APIRouter, admin: Admin) -> None:
    tw = admin.manager
    reader = [Depends(admin.access.read)]
    writer = [Depends(admin.access.write)]

    @router.get("/queues", dependencies=reader)
    async def queues() -> list[QueueOut]:
        """Every queue: counts by state, paused, live workers and concurrency."""
        return [QueueOut(**q) for q in await queue_overview(tw)]

    @router.post("/queues/{name}/pause", dependencies=writer)
    async def pause(name: str) -> QueueOut:
        """Stop every worker from fetching jobs of this queue."""
        async with edge_errors():
            await tw.pause_queue(name)
        return await _queue(name)

    @router.post("/queues/{name}/resume", dependencies=writer)
    async def resume(name: str) -> QueueOut:
        """Let workers fetch from this queue again."""
        async with edge_errors():
            await tw.resume_queue(name)
        return await _queue(name)

    async def _queue(name: str) -> QueueOut:
        found = [q for q in await queue_overview(tw) if q["name"] == name]
        empty: dict[str, Any] = {"name": name, "counts": {}, "paused": False}
        return QueueOut(**(found[0] if found else {**empty, "concurrency": 0, "workers": 0}))


def _limit_routes(router: APIRouter, admin: Admin) -> None:
    """Queue limits and holds, which every worker obeys at its next claim."""
    tw = admin.manager
    reader = [Depends(admin.access.read)]
    writer = [Depends(admin.access.write)]

    @router.get("/queues/limits", dependencies=reader)
    async def limits() -> list[QueueLimitsOut]:
        """The limits (and holds) of every queue that has one, which every worker obeys."""
        async with edge_errors():
            flows = await tw.queue_flow()
        now = tw.clock.now()
        out = []
        for name in sorted(flows):
            flow = flows[name]
            held = flow.held_until if flow.held_until and flow.held_until > now else None
            if not flow.limits.is_empty or held is not None:
                out.append(limits_out(name, flow.limits, held, flow.waits))
        return out

    @router.put("/queues/{name}/limits", dependencies=writer)
    async def configure(name: str, body: QueueLimitsIn) -> QueueLimitsOut:
        """Replace this queue's limits (null clears one); workers obey them at their next claim."""
        async with edge_errors():
            stored = await tw.configure_queue(
                name,
                global_limit=body.global_limit,
                rate_limit=body.rate_limit,
                partition_by=body.partition_by,
            )
        return limits_out(name, stored)

    @router.post("/queues/{name}/hold", dependencies=writer)
    async def hold(name: str, body: QueueHoldIn) -> QueueLimitsOut:
        """Hold this queue (or one ``key`` of it) back on every node for ``seconds``.

        A hold only grows. The answer shows the queue's own hold, not a key's.
        """
        async with edge_errors():
            await tw.hold_queue(name, seconds=body.seconds, key=body.key)
            flow = (await tw.queue_flow()).get(name)
        return (
            limits_out(name, flow.limits, flow.held_until)
            if flow
            else limits_out(name, QueueLimits())
        )

    @router.delete("/queues/{name}/hold", dependencies=writer)
    async def release(name: str, key: str | None = None) -> QueueLimitsOut:
        """End this queue's hold (or one ``key``'s) now."""
        async with edge_errors():
            await tw.hold_queue(name, seconds=None, key=key)
            stored = (await tw.queue_limits()).get(name, QueueLimits())
        return limits_out(name, stored)


def _info_routes(router: APIRouter, admin: Admin) -> None:
    tw = admin.manager
    reader = [Depends(admin.access.read)]

    @router.get("/schedules", dependencies=reader)
    async def schedules() -> list[ScheduleOut]:
        """Recurring schedules with their next run time (None if the cron no longer parses)."""
        out = []
        for s in await tw.list_recurring_tasks():
            try:
                next_run = tw.next_fire(s)
            except TaskwardError:
                next_run = None
            out.append(ScheduleOut.of(s, next_run))
        return out

    # A path parameter: schedule names may hold "/" (any 1-200 characters).
    @router.get("/schedules/{name:path}/history", dependencies=reader)
    async def schedule_history(
        name: str, limit: Annotated[int, Query(ge=1, le=CRON_HISTORY_KEEP)] = CRON_HISTORY_KEEP
    ) -> list[CronFireOut]:
        """The schedule's fire history, newest planned time first (404 for no such schedule).

        ``name`` may contain ``/`` (``/api/schedules/reports/daily/history``).
        """
        async with edge_errors():
            records = await tw.cron_history(name, limit=limit)
        return [
            CronFireOut(
                planned_at=r.planned_at,
                outcome=str(r.outcome),
                job_id=r.job_id,
                count=r.count,
                reason=r.reason,
                recorded_at=r.recorded_at,
            )
            for r in records
        ]

    @router.get("/stats", dependencies=reader)
    async def stats() -> StatsOut:
        """Queues, live workers and jobs finished per minute over the last hour."""
        data = await tw.get_statistics()
        workers = [WorkerOut(**n) for n in data["workers"]["nodes"]]
        queues = [QueueOut(**q) for q in await queue_overview(tw, data)]
        return StatsOut(
            queues=queues, workers=workers, timeline=TimelineOut.of(await admin.timeline.get())
        )

    @router.get("/events", dependencies=reader)
    async def events(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        job_id: Annotated[int | None, Query(ge=1, le=MAX_JOB_ID)] = None,
    ) -> list[EventOut]:
        """Recent events seen by this process, newest first."""
        found = tw.recent_events.recent(limit=limit, job_id=job_id)
        return [EventOut(**e.to_dict()) for e in found]
