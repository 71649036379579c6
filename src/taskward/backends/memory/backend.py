"""MemoryBackend: the reference implementation of the backend contract, in dicts.

Its workflow half is in ``flows.py``.

It is what the contract suite compares other backends with, and the store for tests
(``memory://``). Nothing survives the process. One event loop drives it: all state changes happen
between awaits, so each method is atomic without locks.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from taskward.backends.base import Capability, MigrationReport
from taskward.backends.memory.cron_history import MemoryCronHistory
from taskward.backends.memory.flows import MemoryWorkflows, cancelled
from taskward.backends.memory.health import health_figures as memory_health
from taskward.backends.memory.limits import MemoryFlow
from taskward.backends.sql.rows import evolve_job
from taskward.backends.waiters import EndWaits, WakeTimers
from taskward.edits import edited_job
from taskward.errors import JobNotFound, NotSupported
from taskward.graph import workflow_of
from taskward.health.figures import HealthFigures, HealthQuery
from taskward.jobs import (
    CRON_HISTORY_KEEP,
    FINISHED_STATES,
    RETRIABLE_BY_OPERATOR,
    UNIQUE_BLOCKING_STATES,
    WAITING_STATES,
    CronFire,
    Inserted,
    Job,
    JobEdit,
    JobFilter,
    JobState,
    JobUpdate,
    LeaseReport,
    NewJob,
    Page,
    Reseal,
    Schedule,
    Stats,
    WorkerInfo,
)
from taskward.limits import (
    QueueLimits,
    allowance,
)

S = JobState


def _sorted(jobs: list[Job], field: str, descending: bool) -> list[Job]:
    """Sort by ``field`` then id, both in the requested direction; None last either way."""
    present = [j for j in jobs if getattr(j, field) is not None]
    missing = [j for j in jobs if getattr(j, field) is None]
    present.sort(key=lambda j: (getattr(j, field), j.id), reverse=descending)
    missing.sort(key=lambda j: j.id, reverse=descending)
    return present + missing


class MemoryBackend(MemoryWorkflows, MemoryFlow):
    """An in-process, non-persistent store for tests and examples."""

    def __init__(self, url: str = "memory://") -> None:
        MemoryWorkflows.__init__(self)
        MemoryFlow.__init__(self)
        self.url = url
        self._jobs: dict[int, Job] = {}
        self._next_id = 1
        self._pending: dict[str, list[tuple[int, float, int]]] = {}
        self._later: list[tuple[float, int]] = []  # scheduled/retryable, by due time
        self._unique: dict[str, int] = {}
        self._paused: set[str] = set()
        self._timers = WakeTimers(lambda _queue: self._wake())
        self._schedules: dict[str, Schedule] = {}
        self._cron = MemoryCronHistory()
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self._ends = EndWaits()  # wait_for_ends: told wherever a job ends (_store, _forget)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Memory keeps jobs readable but neither persistent nor shared between processes."""
        return frozenset({Capability.STORES_JOBS, Capability.WORKFLOWS, Capability.END_NOTICES})

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Wake waiters so that nobody sleeps on a closed store."""
        self._timers.cancel()
        self._wake()
        self._ends.close()

    async def migrate(self) -> MigrationReport:
        """No schema: nothing to apply, no version."""
        return MigrationReport()

    # -- produce ---------------------------------------------------------------------------
    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs, answering duplicates of unique keys with the existing job."""
        if connection is not None:
            raise NotSupported("the memory backend has no transactions to join")
        out = [self._insert_one(new, now) for new in jobs]
        if any(not i.duplicate and i.job.state is S.PENDING for i in out):
            self._wake()
        return out

    def _insert_one(self, new: NewJob, now: datetime) -> Inserted:
        existing = self._find_unique(new, now)
        if existing is not None:
            return Inserted(job=existing, duplicate=True)
        job = self._new_job(new, now)
        self._store(job)
        if new.unique_key is not None:
            self._unique[new.unique_key] = job.id
        return Inserted(job=job)

    def _new_job(self, new: NewJob, now: datetime) -> Job:
        """The job ``new`` becomes, with the next id (not stored yet)."""
        job = Job(
            id=self._next_id,
            task=new.task,
            queue=new.queue,
            # Copies, as a real store would keep: the caller may mutate what it passed in.
            args=copy.deepcopy(new.args),
            kwargs=copy.deepcopy(new.kwargs),
            state=new.state,
            priority=new.priority,
            attempt=0,
            max_attempts=new.max_attempts,
            scheduled_at=new.scheduled_at,
            inserted_at=now,
            unique_key=new.unique_key,
            tags=new.tags,
            meta=copy.deepcopy(new.meta),
            depends_on=new.depends_on,
            timeout=new.timeout,
            partition_key=self._key_for(new),
        )
        self._next_id += 1
        return job

    def _key_for(self, new: NewJob) -> str | None:
        if new.partition_key is not None:
            return new.partition_key
        rule = self._limits.get(new.queue, QueueLimits()).partition_by
        return None if rule is None else rule.key_of(new.args, new.kwargs)

    def _find_unique(self, new: NewJob, now: datetime) -> Job | None:
        if new.unique_key is None or new.unique_key not in self._unique:
            return None
        job = self._jobs.get(self._unique[new.unique_key])
        if job is None:
            return None
        if new.unique_window is None:
            return job
        fresh = job.inserted_at >= now - timedelta(seconds=new.unique_window)
        return job if fresh and job.state in UNIQUE_BLOCKING_STATES else None

    def _store(self, job: Job) -> None:
        self._jobs[job.id] = job
        if job.state in FINISHED_STATES:
            self._ends.ended((job.id,))  # finish, a propagated or a workflow's cancel
        if job.state is S.PENDING:
            heapq.heappush(self._pending.setdefault(job.queue, []), _heap_entry(job))
        elif job.state in (S.SCHEDULED, S.RETRYABLE):
            heapq.heappush(self._later, (job.scheduled_at.timestamp(), job.id))

    # -- work ------------------------------------------------------------------------------
    async def fetch(
        self, *, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Claim up to ``limit`` pending jobs of ``queue`` in priority, then schedule order."""
        if queue in self._paused:
            return []
        flow = self._flow_of(queue)
        if flow is not None and flow.limits.partition_by is not None:
            return self._fetch_by_key(queue, flow, limit, worker_id, now, lease_until)
        reason = None
        if flow is not None:
            running = sum(
                1 for j in self._jobs.values() if j.queue == queue and j.state is S.RUNNING
            )
            allowed = allowance(flow, wanted=limit, running=running, now=now)
            limit = allowed.count
            if allowed.retry_at is not None:
                self._timers.wake_at(queue, now=now, at=allowed.retry_at)
            reason = allowed.reason
        heap = self._pending.get(queue, [])
        claimed: list[Job] = []
        while heap and len(claimed) < limit:
            entry = heapq.heappop(heap)
            job = self._jobs.get(entry[2])
            if job is None or job.state is not S.PENDING or entry != _heap_entry(job):
                continue  # stale entry: the job moved on (or was re-queued) since it was pushed
            claimed.append(self._claim(job, worker_id, now, lease_until))
        if flow is not None and flow.limits.rate_limit is not None and claimed:
            window = flow.limits.rate_limit.window_of(now)
            self._windows[queue] = (window, flow.used_in(window) + len(claimed))
        if reason is not None and self._has_pending(queue):
            self._note_waits(queue, {reason})  # a limit left jobs waiting
        return claimed

    def _has_pending(self, queue: str) -> bool:
        """True when ``queue`` has a pending job (stale heap entries skipped)."""
        for entry in self._pending.get(queue, ()):
            job = self._jobs.get(entry[2])
            if job is not None and job.state is S.PENDING and entry == _heap_entry(job):
                return True
        return False

    def _claim(self, job: Job, worker_id: str, now: datetime, lease_until: datetime) -> Job:
        job = evolve_job(
            job,
            state=S.RUNNING,
            attempt=job.attempt + 1,
            attempted_at=now,
            attempted_by=worker_id,
            lease_until=lease_until,
        )
        self._jobs[job.id] = job
        return job

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Extend this worker's leases; report jobs lost or with a cancel request."""
        lost: set[int] = set()
        cancel: set[int] = set()
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is None or job.state is not S.RUNNING or job.attempted_by != worker_id:
                lost.add(job_id)
                continue
            self._jobs[job_id] = evolve_job(job, lease_until=lease_until)
            if job.cancel_requested:
                cancel.add(job_id)
        return LeaseReport(lost=frozenset(lost), cancel_requested=frozenset(cancel))

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        """Write each outcome only if the job is still running at that attempt, owned by us."""
        return [self._finish_one(u, worker_id) for u in updates]

    def _finish_one(self, update: JobUpdate, worker_id: str) -> bool:
        job = self._jobs.get(update.job_id)
        if job is None or not _fence_holds(job, update, worker_id):
            return False
        self._store(_apply(job, update))
        if job.queue in self._limits:
            self._wake()  # a slot of a limited queue came free
        if update.dependents and update.state in FINISHED_STATES:
            self._step_ended(job.id, update.state, update.at)
        return True

    async def set_progress(self, job_id: int, progress: Any, *, worker_id: str) -> bool:
        """Store progress of a running job this worker owns."""
        job = self._jobs.get(job_id)
        if job is None or job.state is not S.RUNNING or job.attempted_by != worker_id:
            return False
        self._jobs[job_id] = evolve_job(job, progress=copy.deepcopy(progress))
        return True

    async def wait_for_jobs(self, queues: Collection[str], *, timeout: float) -> None:
        """Sleep until a job becomes pending (in this process) or ``timeout`` passes."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(future)

    async def wait_for_ends(self, job_ids: Collection[int], *, timeout: float) -> None:
        """Return when a watched job ended in this process, or after ``timeout`` seconds."""
        self._ends.update(job_ids)
        await self._ends.wait(job_ids, timeout=timeout)

    def _wake(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)

    # -- maintain --------------------------------------------------------------------------
    async def promote_due(self, *, now: datetime) -> int:
        """Move due scheduled/retryable jobs to pending."""
        promoted = 0
        cutoff = now.timestamp()
        while self._later and self._later[0][0] <= cutoff:
            due_at, job_id = heapq.heappop(self._later)
            job = self._jobs.get(job_id)
            if job is None or job.state not in (S.SCHEDULED, S.RETRYABLE):
                continue  # stale entry: the job moved on since it was pushed
            if job.scheduled_at.timestamp() != due_at:
                continue  # re-scheduled: a newer entry stands for it
            self._store(evolve_job(job, state=S.PENDING))
            promoted += 1
        if promoted:
            self._wake()
        return promoted

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        """Return running jobs whose lease ran out."""
        expired = [
            j
            for j in self._jobs.values()
            if j.state is S.RUNNING and j.lease_until is not None and j.lease_until < now
        ]
        return sorted(expired, key=lambda j: j.id)[:limit]

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Count jobs finished since ``since`` per UTC minute and state."""
        counts: dict[tuple[datetime, JobState], int] = {}
        for job in self._jobs.values():
            finished = _finished_at(job)
            if job.state in FINISHED_STATES and finished >= since:
                key = (finished.replace(second=0, microsecond=0), job.state)
                counts[key] = counts.get(key, 0) + 1
        return sorted(
            ((minute, state, n) for (minute, state), n in counts.items()),
            key=lambda row: (row[0], row[1].value),
        )

    async def health_figures(self, query: HealthQuery) -> HealthFigures:
        """The health check's figures: one pass over the jobs (``memory/health.py``)."""
        return memory_health(self._jobs.values(), frozenset(self._paused), query)

    async def prune(self, *, before: Mapping[JobState, datetime]) -> int:
        """Delete finished jobs older than their state's cutoff."""
        doomed = [
            j.id
            for j in self._jobs.values()
            if j.state in before
            and j.state in FINISHED_STATES
            and _finished_at(j) < before[j.state]
        ]
        for job_id in doomed:
            self._forget_step(job_id, datetime.now(UTC), deleted=False)
            self._forget(job_id)
        return len(doomed)

    def _forget(self, job_id: int) -> None:
        job = self._jobs.pop(job_id)
        self._ends.ended((job_id,))  # deleted or pruned: its waiters learn it is gone
        if job.unique_key is not None and self._unique.get(job.unique_key) == job_id:
            del self._unique[job.unique_key]

    # -- admin -----------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job:
        """Return one job or raise ``JobNotFound``."""
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(job_id) from None

    async def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """Filter, sort and page the jobs."""
        matching = [j for j in self._jobs.values() if _matches(j, filter)]
        rows = _sorted(matching, filter.sort_field, filter.descending)
        items = rows[filter.offset : filter.offset + filter.per_page]
        return Page(
            items=items,
            total_entries=len(rows),
            page_number=filter.page,
            page_size=filter.per_page,
        )

    async def cancel(self, job_id: int, *, reason: str, now: datetime) -> Job:
        """Cancel a waiting job, or ask the worker of a running one to stop."""
        job = await self.get(job_id)
        if job.state in WAITING_STATES:
            job = cancelled(job, now, "Cancelled", reason)
            self._jobs[job_id] = job
            self._ends.ended((job_id,))
            if job_id in self._steps:
                self._step_ended(job_id, S.CANCELLED, now)
        elif job.state is S.RUNNING:
            job = evolve_job(job, cancel_requested=True)
            self._jobs[job_id] = job
        return job

    async def retry(self, job_id: int, *, now: datetime, edit: JobEdit | None = None) -> Job:
        """Make a dead or cancelled job pending again with a fresh attempt budget.

        With ``edit``, its changes and their record in the same step (``taskward.edits``).
        """
        job = await self.get(job_id)
        if job.state in RETRIABLE_BY_OPERATOR:
            if edit is not None:
                job = self._edited(job, edit)
            job = evolve_job(
                job,
                state=S.PENDING,
                scheduled_at=now,
                max_attempts=max(job.max_attempts, job.attempt + 1),
                completed_at=None,
                cancelled_at=None,
                discarded_at=None,
                cancel_requested=False,
            )
            if job_id in self._steps:
                job = self._step_retried(job, now)
            else:
                self._store(job)
            self._wake()
        return job

    def _edited(self, job: Job, edit: JobEdit) -> Job:
        """``job`` with ``edit`` applied; a queue change drops its entry from the old heap."""
        queue = job.queue if edit.queue is None else edit.queue
        edited = edited_job(job, edit, self._limits.get(queue, QueueLimits()).partition_by)
        if edited.queue != job.queue:
            # A cancelled job may still have its entry there (cancel leaves it, stale).
            heap = [e for e in self._pending.get(job.queue, []) if e[2] != job.id]
            heapq.heapify(heap)
            self._pending[job.queue] = heap
        return edited

    async def reseal(self, rewrites: Sequence[Reseal]) -> list[bool]:
        """Write re-sealed values of jobs still as they were read (key rotation)."""
        flags = []
        for r in rewrites:
            job = self._jobs.get(r.job_id)
            fence = (r.state, r.attempt, r.errors_count)
            same = (
                job is not None
                and (job.state, job.attempt, len(job.errors)) == fence
                and (r.envelope is None or job.kwargs.get("taskward.sealed") == r.envelope)
            )
            if job is not None and same:
                self._jobs[r.job_id] = evolve_job(
                    job,
                    kwargs=job.kwargs if r.kwargs is None else dict(r.kwargs),
                    result=job.result if r.result is None else r.result,
                    errors=job.errors if r.errors is None else r.errors,
                )
            flags.append(same)
        return flags

    async def delete(self, job_id: int, *, states: Collection[JobState] | None = None) -> bool:
        """Delete a job unless it is running (or, given ``states``, in none of them)."""
        job = self._jobs.get(job_id)
        if job is None or job.state is S.RUNNING:
            return False
        if states is not None and job.state not in states:
            return False
        self._forget_step(job_id, datetime.now(UTC), deleted=True)
        self._forget(job_id)
        return True

    async def stats(self) -> Stats:
        """Count jobs by queue and state."""
        counts: dict[str, dict[JobState, int]] = {q: {} for q in self._paused}
        for job in self._jobs.values():
            per_queue = counts.setdefault(job.queue, {})
            per_queue[job.state] = per_queue.get(job.state, 0) + 1
        return Stats(counts=counts, paused=frozenset(self._paused))

    async def pause_queue(self, queue: str) -> None:
        """Pause a queue."""
        self._paused.add(queue)

    async def resume_queue(self, queue: str) -> None:
        """Resume a queue."""
        self._paused.discard(queue)
        self._wake()

    async def paused_queues(self) -> set[str]:
        """Return the paused queues."""
        return set(self._paused)

    # -- schedules -------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> None:
        """Create or replace a schedule."""
        self._schedules[schedule.name] = schedule

    async def delete_schedule(self, name: str) -> bool:
        """Delete a schedule (and its fire history)."""
        self._cron.forget(name)
        return self._schedules.pop(name, None) is not None

    async def list_schedules(self) -> list[Schedule]:
        """Return schedules sorted by name, with their last fire time and job."""
        return [self._cron.with_state(self._schedules[n]) for n in sorted(self._schedules)]

    async def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume a schedule (kept beside its definition, so a save keeps it)."""
        if name not in self._schedules:
            return False
        self._cron.set_paused(name, paused)
        return True

    async def record_cron_fires(
        self, name: str, fires: Sequence[CronFire], *, now: datetime, keep: int = CRON_HISTORY_KEEP
    ) -> None:
        """Append fire records (a recorded planned time is kept) and advance the state."""
        if name in self._schedules:
            self._cron.record(name, fires, now=now, keep=keep)

    async def cron_history(self, name: str, *, limit: int = CRON_HISTORY_KEEP) -> list[CronFire]:
        """Return the newest ``limit`` fire records of ``name``, newest first."""
        return self._cron.history(name, limit)

    # -- coordination ----------------------------------------------------------------------
    async def acquire_lease(
        self, name: str, *, holder: str, now: datetime, until: datetime
    ) -> bool:
        """Take the lease if it is free, expired or already ours."""
        current = self._leases.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._leases[name] = (holder, until)
        return True

    async def record_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker record."""
        self._workers[info.id] = info

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker."""
        self._workers.pop(worker_id, None)

    async def list_workers(self, *, alive_since: datetime) -> list[WorkerInfo]:
        """Return workers that heartbeated recently."""
        alive = [w for w in self._workers.values() if w.heartbeat_at >= alive_since]
        return sorted(alive, key=lambda w: w.id)


def _heap_entry(job: Job) -> tuple[int, float, int]:
    return (job.priority, job.scheduled_at.timestamp(), job.id)


def _fence_holds(job: Job, update: JobUpdate, worker_id: str) -> bool:
    if job.state is not S.RUNNING or job.attempt != update.attempt:
        return False
    if job.attempted_by != worker_id:
        return False
    if update.lease_expired_before is not None:
        return job.lease_until is not None and job.lease_until < update.lease_expired_before
    return True


def _apply(job: Job, update: JobUpdate) -> Job:
    """Return ``job`` with ``update`` written, as every backend must write it."""
    errors = job.errors if update.error is None else (*job.errors, update.error)
    state = update.state
    return evolve_job(
        job,
        state=state,
        attempt=job.attempt - 1 if update.refund_attempt else job.attempt,
        scheduled_at=update.scheduled_at or job.scheduled_at,
        errors=errors,
        result=update.result if state is S.COMPLETED else job.result,
        completed_at=update.at if state in (S.COMPLETED, S.FAILED) else job.completed_at,
        cancelled_at=update.at if state is S.CANCELLED else job.cancelled_at,
        discarded_at=update.at if state is S.DISCARDED else job.discarded_at,
        lease_until=None,
        cancel_requested=False,
    )


def _finished_at(job: Job) -> datetime:
    return job.completed_at or job.cancelled_at or job.discarded_at or job.inserted_at


def _matches(job: Job, f: JobFilter) -> bool:
    return (
        (f.states is None or job.state in f.states)
        and (f.queue is None or job.queue == f.queue)
        and (f.task is None or job.task == f.task)
        and (f.workflow is None or workflow_of(job.meta) == f.workflow)
    )
