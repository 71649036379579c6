"""The operator's half of the facade: inspecting and changing jobs, statistics and cleanup.

:class:`Operations` is mixed into :class:`~taskward.manager.TaskManager`; every method here is
one of its public methods (``list_tasks``, ``get_statistics``, ``retry_task``…). It needs
from the manager only what is declared at the top of the class. Recurring schedules are
:mod:`taskward.cron_ops`'s, queue controls :mod:`taskward.queue_ops`'s.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from taskward.backends.base import Backend, Capability
from taskward.building import JobBuilder, TaskRef
from taskward.clock import Clock
from taskward.edits import CHANGED, replays_of
from taskward.encryption import KeyRing
from taskward.errors import (
    InvalidJob,
    InvalidOptions,
    JobRunning,
    NotSupported,
)
from taskward.explain import Explanation, explain_job
from taskward.jobs import (
    EncodedPayload,
    Job,
    JobFilter,
    JobState,
    NewJob,
    Page,
    validate_seconds,
)
from taskward.limits import (
    QueueFlow,
)
from taskward.observe.events import Event, EventBus
from taskward.replays import (
    MAX_BULK_REPLAY,
    DeadLetterFilter,
    ReplayReport,
    build_edit,
    not_retriable,
    replay_dead_letters,
)
from taskward.rotation import RotationReport, rotate_keys
from taskward.runtime.maintenance import cutoffs
from taskward.sealing import is_sealed, masked, open_job, seal_payload, still_sealed
from taskward.settings import Settings

__all__ = ["Operations"]

logger = logging.getLogger("taskward")


class Operations:
    """Inspection, operator actions on jobs and cleanup (mixed into the TaskManager)."""

    builder: JobBuilder
    events: EventBus
    settings: Settings
    clock: Clock
    keyring: KeyRing | None

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

    async def get_task_status(self, job_id: int) -> Job:
        """Return the job ``job_id``; raise ``JobNotFound``."""
        return self.unsealed(await (await self._backend()).get(job_id))

    async def rotate_encryption_keys(self, *, batch_size: int = 500) -> RotationReport:
        """Seal every stored encrypted value again with the first of ``encryption_keys``.

        Put the new key first and keep the old ones after it; run this until the report is
        ``done`` (jobs that changed while it ran are left for the next pass); then drop the
        old keys. Raises ``InvalidOptions`` without keys. See :mod:`taskward.rotation`.
        """
        if self.keyring is None:
            raise InvalidOptions("rotating keys needs encryption_keys (the new key first)")
        return await rotate_keys(await self._backend(), self.keyring, batch_size=batch_size)

    def unsealed(self, job: Job) -> Job:
        """``job`` with its encrypted values opened where this manager's keys open them.

        A job that is not sealed comes back as is; a value no key opens stays sealed (shown
        as ``"encrypted"``; see ``taskward.sealing``).
        """
        return open_job(self.keyring, job)

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
        return await explain_job(
            await self._backend(),
            job_id,
            now=now,
            alive_since=alive_since,
            view=lambda job: masked(self.unsealed(job)),
        )

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
        found = await backend.list_jobs(flt)
        if self.keyring is None:
            return found
        return dataclasses.replace(found, items=[self.unsealed(job) for job in found.items])

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

    async def retry_task(
        self,
        job_id: int,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        note: str | None = None,
        by: str | None = None,
    ) -> Job:
        """Move a failed, discarded or cancelled job back to pending; return the job.

        With changes (new ``args``/``kwargs``, validated as at enqueue, another ``queue`` or
        ``priority``) or a ``note`` (``by``: the operator, if known), the job must be in one of
        those states (else ``InvalidJob``) and the changes are written with the retry, in one
        atomic step, with a record of what they replaced in ``meta["taskward.replays"]``
        (``taskward.replays``; ``"***"`` for a hidden value keeps it). Without any, a job in
        another state is returned unchanged.
        """
        backend = await self._backend()
        changes = (args, kwargs, queue, priority, note, by)
        told: dict[str, Any] = {}  # what the event says of a replay: names, never values
        if all(value is None for value in changes):
            job = await backend.retry(job_id, now=self.clock.now())
            logger.info("job %s retried by an operator (now %s)", job_id, job.state)
        else:
            now = self.clock.now()
            stored = await backend.get(job_id)
            edit = build_edit(
                self._openable(stored, edits_arguments=args is not None or kwargs is not None),
                self.builder.registry,
                max_payload_bytes=self.settings.max_payload_bytes,
                at=now,
                args=args,
                kwargs=kwargs,
                queue=queue,
                priority=priority,
                note=note,
                by=by,
                seal=self._sealer(stored),
            )
            job = self.unsealed(await backend.retry(job_id, now=now, edit=edit))
            if not any(r.get("id") == edit.replay["id"] for r in replays_of(job.meta)[-1:]):
                raise InvalidJob(not_retriable(job))  # it changed state since it was read
            changed = [n for n in CHANGED if getattr(edit, n) is not None]
            # Names only: the values may be secrets.
            logger.info(
                "job %s retried by an operator with changes to %s (now %s)",
                job_id,
                ", ".join(changed) or "nothing",
                job.state,
            )
            told = {"changed": changed, "note": edit.replay["note"]}
        if job.state in (JobState.PENDING, JobState.BLOCKED):
            self._emit("job.retried", job, by="operator", **told)
        return job

    def _openable(self, job: Job, *, edits_arguments: bool) -> Job:
        """``job`` opened for an edit; ``InvalidJob`` if its arguments stay encrypted."""
        opened = self.unsealed(job)
        if edits_arguments and still_sealed(opened):
            raise InvalidJob(
                f"job {job.id}'s arguments are encrypted and this process holds no key that "
                "opens them: they cannot be edited here (its queue, priority and note can)"
            )
        return opened

    def _sealer(self, job: Job) -> Callable[[EncodedPayload], EncodedPayload] | None:
        """How new arguments of ``job`` are stored: sealed again if it is encrypted at rest."""
        keyring = self.keyring
        if keyring is None or not is_sealed(job):
            return None
        return lambda payload: seal_payload(keyring, payload, job.task)

    async def retry_dead_letters(
        self,
        flt: DeadLetterFilter | None = None,
        *,
        note: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        set_kwargs: Mapping[str, Any] | None = None,
        by: str | None = None,
        dry_run: bool = False,
        limit: int = MAX_BULK_REPLAY,
    ) -> ReplayReport:
        """Replay every dead letter ``flt`` matches (failed ones by default), oldest first.

        Each with the same ``note``, ``queue``/``priority`` change and ``set_kwargs`` merged
        into its kwargs, validated per job: a job refused (bad arguments, or no longer dead)
        is reported with the reason and left unchanged; the rest proceed. ``dry_run``: only
        count (``matched``). At most ``limit`` (up to ``MAX_BULK_REPLAY``) jobs per call, the
        oldest first (``capped``: more matched, or the 50,000 rows a replay reads were read).
        """
        return await replay_dead_letters(
            self,
            flt or DeadLetterFilter(),
            note=note,
            queue=queue,
            priority=priority,
            set_kwargs=set_kwargs,
            by=by,
            dry_run=dry_run,
            limit=limit,
        )

    async def delete_task(self, job_id: int, *, states: Collection[JobState] | None = None) -> bool:
        """Delete a job that is not running; raise ``JobNotFound`` or ``JobRunning``.

        With ``states``, only a job in one of them, checked in the delete's own atomic step
        (a bulk delete never takes a job retried since it was confirmed): False, and nothing
        deleted, for a job in another state. True once deleted.
        """
        backend = await self._backend()
        if await backend.delete(job_id, states=states):
            return True
        job = await backend.get(job_id)  # JobNotFound when there is none
        if job.state is JobState.RUNNING:
            raise JobRunning(job_id)
        if states is not None and job.state not in states:
            return False
        # It was running at the delete and has finished since: delete it now.
        if not await backend.delete(job_id, states=states):
            raise JobRunning(job_id)  # running again (retried meanwhile), or already gone
        return True

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
