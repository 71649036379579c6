"""The operator's half of the facade: recurring schedules, and inspecting and changing jobs.

:class:`Operations` is mixed into :class:`~taskward.manager.TaskManager`; every method here is
one of its public methods (``list_tasks``, ``get_statistics``, ``retry_task``…). It needs
from the manager only what is declared at the top of the class.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from taskward.backends.base import Backend, Capability
from taskward.building import JobBuilder, TaskRef
from taskward.clock import Clock
from taskward.cron import CronExpression
from taskward.errors import InvalidOptions, JobRunning, NotSupported, ScheduleNotFound
from taskward.explain import Explanation, explain_job
from taskward.jobs import (
    Job,
    JobFilter,
    JobState,
    NewJob,
    Page,
    Schedule,
    validate_queue_name,
    validate_seconds,
)
from taskward.limits import (
    UNSET,
    PartitionBy,
    QueueFlow,
    QueueLimits,
    Rate,
    Unset,
    parse_rate,
    validate_global_limit,
)
from taskward.observe.events import Event, EventBus
from taskward.runtime.maintenance import cutoffs
from taskward.settings import Settings

__all__ = ["Operations"]

logger = logging.getLogger("taskward")


class Operations:
    """Schedules, inspection, operator actions and cleanup (mixed into the TaskManager)."""

    builder: JobBuilder
    events: EventBus
    settings: Settings
    clock: Clock

    async def _backend(self) -> Backend:
        raise NotImplementedError

    def build_job(
        self,
        ref: TaskRef,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> NewJob:
        """Validate a job (see :meth:`taskward.building.JobBuilder.build_job`)."""
        return self.builder.build_job(ref, args, kwargs, **options)

    def _emit(self, name: str, job: Job, **data: Any) -> None:
        self.events.emit(Event.for_job(name, job, self.clock.now(), **data))

    # -- recurring -------------------------------------------------------------------------
    async def schedule_recurring_task(
        self,
        name: str,
        task: TaskRef,
        *,
        cron: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
    ) -> Schedule:
        """Create or replace the recurring schedule ``name``: ``task`` at every ``cron`` time."""
        if not name or len(name) > 200:
            raise InvalidOptions("a recurring schedule needs a name of 1-200 characters")
        CronExpression.parse(cron, timezone)
        probe = self.build_job(
            task, args, kwargs, queue=queue, priority=priority, max_attempts=max_attempts
        )
        schedule = Schedule(
            name=name,
            task=probe.task,
            cron=cron,
            timezone=timezone,
            args=probe.args,
            kwargs=probe.kwargs,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            created_at=self.clock.now(),
        )
        await (await self._backend()).save_schedule(schedule)
        logger.info("recurring schedule %r saved: %s %s (%s)", name, probe.task, cron, timezone)
        return schedule

    async def cancel_recurring_task(self, name: str) -> None:
        """Delete the recurring schedule ``name``; raise ``ScheduleNotFound`` if there is none."""
        if not await (await self._backend()).delete_schedule(name):
            raise ScheduleNotFound(name)

    async def list_recurring_tasks(self) -> list[Schedule]:
        """Return every recurring schedule."""
        return await (await self._backend()).list_schedules()

    def next_fire(self, schedule: Schedule, after: datetime | None = None) -> datetime:
        """Return the next fire time of ``schedule`` after ``after`` (default: now)."""
        cron = CronExpression.parse(schedule.cron, schedule.timezone)
        return cron.next_fire(after or self.clock.now())

    # -- admin -----------------------------------------------------------------------------
    async def get_task_status(self, job_id: int) -> Job:
        """Return the job ``job_id``; raise ``JobNotFound``."""
        return await (await self._backend()).get(job_id)

    async def explain(self, job_id: int) -> Explanation:
        """Why job ``job_id`` is not running right now: every reason, in words and as data.

        Waiting: ``scheduled`` (due later), ``backoff`` (retry after a failed attempt),
        ``paused`` (its queue), ``global_limit`` (full, with the ids of the jobs holding it),
        ``no_worker`` (no live worker serves its queue, with the queues they do serve), or
        ``waiting`` for a worker when nothing blocks it. Otherwise ``running`` (worker, since,
        lease) or ``finished`` (state, when, why). Raise ``JobNotFound``. See
        :mod:`taskward.explain`.
        """
        now = self.clock.now()
        alive_since = now - timedelta(seconds=self.settings.lease_seconds * 2)
        return await explain_job(await self._backend(), job_id, now=now, alive_since=alive_since)

    async def list_tasks(
        self,
        *,
        state: JobState | str | Sequence[JobState | str] | None = None,
        queue: str | None = None,
        task: TaskRef | None = None,
        page: int = 1,
        per_page: int = 50,
        sort_by: str = "-id",
        workflow: int | None = None,
    ) -> Page[Job]:
        """Return one page of jobs, filtered by state(s), queue, task and workflow."""
        task_name = None if task is None else self.builder.task_name(task)
        flt = JobFilter(
            states=_states(state),
            queue=queue,
            task=task_name,
            workflow=workflow,
            page=page,
            per_page=per_page,
            sort_by=sort_by,
        )
        backend = await self._backend()
        if workflow is not None and Capability.WORKFLOWS not in backend.capabilities:
            raise NotSupported(f"{backend.url} keeps no workflows")
        return await backend.list_jobs(flt)

    async def get_statistics(self) -> dict[str, Any]:
        """Return counts by queue and state, which of them are estimates, and the workers.

        ``{"queues": {queue: {state: count}}, "estimated": {queue: [state, ...]},
        "paused": [...], "limits": {queue: {...}}, "workers": {...}}``.
        ``estimated`` names the counts that are estimates (empty when every count is exact):
        PostgreSQL estimates a queue's jobs in one finished state past 10,000 of them.
        ``limits``: the queues that have limits (:meth:`configure_queue`) or a hold, each
        ``{"global_limit": N|None, "rate_limit": "100/s"|None, "rate_used": starts in the
        current window|None, "rate_full": bool, "held_until": ISO time|None, "waits":
        {reason: claims a limit turned away while jobs were due}}``.
        """
        backend = await self._backend()
        stats = await backend.stats()
        flows = await backend.queue_flow()
        alive_since = self.clock.now() - timedelta(seconds=self.settings.lease_seconds * 2)
        workers = await backend.list_workers(alive_since=alive_since)
        queues = {
            q: {s.value: stats.counts.get(q, {}).get(s, 0) for s in JobState}
            for q in sorted(stats.counts)
        }
        estimated = {
            q: [s.value for s in JobState if (q, s) in stats.estimated]
            for q in sorted({q for q, _ in stats.estimated})
        }
        return {
            "queues": queues,
            "estimated": estimated,
            "paused": sorted(stats.paused),
            "limits": _limits_now(flows, self.clock.now()),
            "workers": {
                "total": len(workers),
                "busy_slots": sum(w.running for w in workers),
                "total_slots": sum(sum(w.queues.values()) for w in workers),
                "nodes": [
                    {
                        "id": w.id,
                        "queues": w.queues,
                        "running": w.running,
                        "heartbeat_at": w.heartbeat_at.isoformat(),
                    }
                    for w in workers
                ],
            },
        }

    async def cancel_task(self, job_id: int, *, reason: str = "cancelled by an operator") -> Job:
        """Cancel a waiting job now, or ask the worker running it to stop; return the job."""
        job = await (await self._backend()).cancel(job_id, reason=reason, now=self.clock.now())
        logger.info("job %s cancel requested: %s (now %s)", job_id, reason, job.state)
        if job.state is JobState.CANCELLED:
            self._emit("job.cancelled", job, reason=reason, by="operator")
        return job

    async def retry_task(self, job_id: int) -> Job:
        """Move a failed, discarded or cancelled job back to pending; return the job."""
        job = await (await self._backend()).retry(job_id, now=self.clock.now())
        logger.info("job %s retried by an operator (now %s)", job_id, job.state)
        if job.state in (JobState.PENDING, JobState.BLOCKED):
            self._emit("job.retried", job, by="operator")
        return job

    async def delete_task(self, job_id: int) -> None:
        """Delete a job that is not running; raise ``JobNotFound`` or ``JobRunning``."""
        backend = await self._backend()
        if await backend.delete(job_id):
            return
        job = await backend.get(job_id)  # JobNotFound when there is none
        if job.state is JobState.RUNNING:
            raise JobRunning(job_id)
        # It was running at the delete and has finished since: delete it now.
        if not await backend.delete(job_id):
            raise JobRunning(job_id)  # running again (retried meanwhile), or already gone

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Jobs that finished at or after ``since``: ``(UTC minute, final state, count)`` rows.

        One aggregate query over the stored jobs (what cleanup has not pruned yet).
        """
        return await (await self._backend()).finished_per_minute(since=since)

    async def cleanup_old_tasks(
        self, *, completed_days: float | None = None, failed_days: float | None = None
    ) -> int:
        """Delete finished jobs past retention; return how many.

        Completed and cancelled jobs older than ``completed_days``, failed and discarded ones
        older than ``failed_days`` (defaults from the settings).
        """
        done = self.settings.retention_completed_days if completed_days is None else completed_days
        dead = self.settings.retention_failed_days if failed_days is None else failed_days
        validate_seconds("completed_days", done)
        validate_seconds("failed_days", dead)
        deleted = await (await self._backend()).prune(before=cutoffs(self.clock, done, dead))
        logger.info("cleanup deleted %d job(s)", deleted)
        return deleted

    async def pause_queue(self, queue: str) -> None:
        """Stop every worker from fetching jobs of ``queue``."""
        await (await self._backend()).pause_queue(validate_queue_name(queue))
        logger.info("queue %r paused", queue)
        self.events.emit(Event(name="queue.paused", at=self.clock.now(), queue=queue))

    async def resume_queue(self, queue: str) -> None:
        """Let workers fetch from ``queue`` again."""
        await (await self._backend()).resume_queue(validate_queue_name(queue))
        logger.info("queue %r resumed", queue)
        self.events.emit(Event(name="queue.resumed", at=self.clock.now(), queue=queue))

    async def configure_queue(
        self,
        queue: str,
        *,
        global_limit: int | Unset | None = UNSET,
        rate_limit: str | tuple[int, float] | Rate | Unset | None = UNSET,
        partition_by: str | int | PartitionBy | Unset | None = UNSET,
    ) -> QueueLimits:
        """Set ``queue``'s limits on every node, at run time; return them as stored.

        ``global_limit=N``: at most N jobs of the queue run at once across every worker and
        host (each worker's own concurrency still applies). ``rate_limit="100/s"`` (or
        ``"5000/m"``, ``"2/h"``, ``"10/5s"``, ``(count, seconds)``): at most that many jobs of
        the queue start per fixed window aligned to the epoch, across every node.
        ``partition_by="tenant_id"`` (a kwarg name) or ``0`` (an args position): each job's key
        is read from that argument; both limits then apply to each key on its own, and keys
        take turns at every claim (a task may compute keys itself: ``@task(partition_key=fn)``).
        ``None`` removes a limit; a limit not passed keeps its stored value. Workers see the
        change at their next claim, without a restart.
        """
        name = validate_queue_name(queue)
        # Validate before reading the store: bad input changes nothing.
        new_global = (
            global_limit if isinstance(global_limit, Unset) else validate_global_limit(global_limit)
        )
        new_rate = rate_limit if isinstance(rate_limit, Unset) else parse_rate(rate_limit)
        new_rule = (
            partition_by if isinstance(partition_by, Unset) else PartitionBy.parse(partition_by)
        )
        backend = await self._backend()
        current = (await backend.queue_limits()).get(name, QueueLimits())
        limits = QueueLimits(
            global_limit=current.global_limit if isinstance(new_global, Unset) else new_global,
            rate_limit=current.rate_limit if isinstance(new_rate, Unset) else new_rate,
            partition_by=current.partition_by if isinstance(new_rule, Unset) else new_rule,
        )
        await backend.set_queue_limits(name, limits)
        logger.info(
            "queue %r configured: global_limit=%s rate_limit=%s partition_by=%s",
            name,
            limits.global_limit,
            limits.rate_limit,
            limits.partition_by,
        )
        self.events.emit(Event(name="queue.configured", at=self.clock.now(), queue=name))
        return limits

    async def hold_queue(
        self, queue: str, *, seconds: float | None, key: str | None = None
    ) -> None:
        """Hold back ``queue`` on every node for ``seconds`` (what ``RateLimited`` does).

        A hold only grows: a shorter one than the hold in place changes nothing.
        ``seconds=None`` releases the hold at once. ``key``: hold only that key of a
        partitioned queue.
        """
        if key is not None and not isinstance(key, str):
            raise InvalidOptions(f"key must be a str, got {key!r}")
        name = validate_queue_name(queue)
        if seconds is None:
            until = None
        else:
            delay = validate_seconds("seconds", seconds)
            until = self.clock.now() + timedelta(seconds=delay or 0.0)
        await (await self._backend()).hold_queue(name, until=until, key=key)
        what = repr(name) if key is None else f"{name!r} key {key!r}"
        logger.info("queue %s %s", what, "released" if until is None else f"held until {until}")

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """Where each queue with limits or a hold stands (limits, hold, rate window)."""
        return await (await self._backend()).queue_flow()

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """Where one key of a partitioned queue stands (hold, rate window, running jobs)."""
        return await (await self._backend()).partition_flow(validate_queue_name(queue), key)

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """The limits of every queue that has one, by queue name."""
        return await (await self._backend()).queue_limits()


def _limits_now(flows: Mapping[str, QueueFlow], now: datetime) -> dict[str, dict[str, Any]]:
    """Each queue's limits and where it stands at ``now``; queues with none left out."""
    out: dict[str, dict[str, Any]] = {}
    for queue in sorted(flows):
        flow = flows[queue]
        held = flow.held_until if flow.held_until is not None and flow.held_until > now else None
        if flow.limits.is_empty and held is None:
            continue
        rate = flow.limits.rate_limit
        used = None if rate is None else flow.used_in(rate.window_of(now))
        rule = flow.limits.partition_by
        out[queue] = {
            "partition_by": None if rule is None else str(rule),
            "global_limit": flow.limits.global_limit,
            "rate_limit": None if rate is None else str(rate),
            "rate_used": used,
            "rate_full": rate is not None and used is not None and used >= rate.count,
            "held_until": None if held is None else held.isoformat(),
            "waits": {r: n for r, n in sorted(flow.waits.items()) if n},
        }
    return out


def _states(state: Any) -> frozenset[JobState] | None:
    if state is None:
        return None
    items = [state] if isinstance(state, str | JobState) else list(state)
    try:
        return frozenset(JobState(s) for s in items)
    except ValueError:
        raise InvalidOptions(
            f"unknown state in {state!r}; choose from {[s.value for s in JobState]}"
        ) from None
