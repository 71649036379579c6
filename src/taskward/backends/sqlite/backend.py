"""SqliteBackend: the default, zero-setup durable store, on the standard library's ``sqlite3``.

One backend owns one connection on one dedicated thread (a single-worker executor): every call
submits *one* function to that thread (:class:`~taskward.backends.sqlite.store.SqliteStore`
does all the SQL of the call there), so a call costs one thread hop however many statements it
runs, and the connection never crosses threads. SQL lives in ``queries.sql`` and
``migrations/`` beside this module.

Durability and concurrency: WAL journal, ``synchronous`` as configured (FULL by default),
``BEGIN IMMEDIATE`` for every write so that claims, unique checks and leases are serialised
across processes by SQLite's single writer lock. Several worker processes may share one file on
one machine (not over a network file system).

Sync producers insert from their own threads on a small pool of connections
(:class:`~taskward.backends.sqlite.blocking.BlockingInserts`, a mixin of this class).

Files: a new database file is created 0600 (less the umask) before SQLite opens it, and SQLite
gives its ``-wal`` and ``-shm`` files the same mode; an existing file keeps its mode.

Wake-ups (:mod:`~taskward.backends.sqlite.waiters`): jobs this instance inserts, promotes,
retries or resumes, workflow steps it releases (ending their last dependency, or the sweep), a
queue limit it sets, a hold it releases, and a job it finishes in a queue
with a global limit (a slot came free) wake its own waiters at once, and other processes'
waiters through a :class:`~taskward.backends.sqlite.wake.WakeChannel` (one Unix datagram per
waiting process, sub-millisecond). A claim held back by a hold or a full rate window wakes
this process's waiters of its queue when that ends (a timer). Polling ``PRAGMA data_version``
(it changes when another connection commits) every 50 ms while waiting stays as the fallback,
for writers that send no wake-up and for platforms without Unix sockets.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final, TypeVar, TypeVarTuple

from taskward.backends.base import Capability, MigrationReport
from taskward.backends.sql.migrate import migration_report
from taskward.backends.sqlite import cron_history
from taskward.backends.sqlite.blocking import BlockingInserts
from taskward.backends.sqlite.connection import (
    MEMORY_PATH,
    forked_message,
    refuse_caller_transaction,
    unavailable,
)
from taskward.backends.sqlite.ends import Ends
from taskward.backends.sqlite.health import health_figures as sqlite_health
from taskward.backends.sqlite.migrate import SQLITE_SQL
from taskward.backends.sqlite.store import SqliteStore
from taskward.backends.sqlite.waiters import POLL_SECONDS, Waiters, newly_pending_queues
from taskward.errors import BackendUnavailable, InvalidOptions
from taskward.graph import NewWorkflow, WorkflowRecord
from taskward.health.figures import HealthFigures, HealthQuery
from taskward.jobs import (
    CRON_HISTORY_KEEP,
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
from taskward.limits import QueueFlow, QueueLimits

__all__ = ["SqliteBackend", "parse_sqlite_url"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
SYNCHRONOUS_LEVELS: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
_PREFIX: Final = "sqlite:///"
ENDS: Final = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.DISCARDED, JobState.CANCELLED}
)  # the states an outcome waiter is told of


def parse_sqlite_url(url: str) -> str:
    """Return the database path of a ``sqlite:///`` URL (absolute), or ``":memory:"``.

    ``sqlite:///relative/path.db`` is relative to the current directory,
    ``sqlite:////absolute/path.db`` is absolute, ``sqlite:///:memory:`` is a private
    in-memory database (gone on close, not shared between processes).
    """
    if url[: len(_PREFIX)].lower() != _PREFIX:
        raise InvalidOptions(
            f"invalid SQLite URL {url!r}: use sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or sqlite:///:memory:"
        )
    path = url[len(_PREFIX) :]
    if path == MEMORY_PATH:
        return path
    if not path or path.endswith("/") or "?" in path:
        raise InvalidOptions(f"invalid SQLite URL {url!r}: it must end with a file name")
    return os.path.abspath(path)


class SqliteBackend(BlockingInserts):
    """Jobs in one SQLite file, shared by every process on the machine that opens it.

    ``synchronous`` is SQLite's durability level: FULL (default) loses no acknowledged write
    on power failure; NORMAL is faster and may lose the last transactions on power failure.
    The connection opens lazily on first use if :meth:`open` was not called.
    """

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        level = synchronous.upper() if isinstance(synchronous, str) else ""
        if level not in SYNCHRONOUS_LEVELS:
            raise InvalidOptions(
                f"invalid SQLite synchronous level {synchronous!r}: use one of "
                f"{sorted(SYNCHRONOUS_LEVELS)}"
            )
        self.url = url
        self.path = parse_sqlite_url(url)
        self.synchronous = level
        self._executor: ThreadPoolExecutor | None = None
        self._store = SqliteStore(self.path, synchronous=level)
        self._waiters = Waiters(self.path, shared=self.path != MEMORY_PATH)
        self._ends = Ends(self.path, shared=self.path != MEMORY_PATH)  # wait_for_ends
        self.poll_seconds = POLL_SECONDS
        """How often a waiter looks for commits of other processes (the fallback)."""
        self._connected_pid: int | None = None  # a process that has had a connection open
        self._init_pool()  # sync producers' connections (BlockingInserts)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Persistent, shared between processes, with workflows.

        A private in-memory database (``sqlite:///:memory:``) keeps jobs and workflows only.
        """
        if self.path == MEMORY_PATH:
            # (Ends are noticed in this process all the same: it is the only one there is.)
            return frozenset({Capability.STORES_JOBS, Capability.WORKFLOWS})
        return frozenset(
            {
                Capability.PERSISTENT,
                Capability.MULTI_PROCESS,
                Capability.STORES_JOBS,
                Capability.BLOCKING_INSERT,
                Capability.WORKFLOWS,
                Capability.END_NOTICES,
            }
        )

    # -- the database thread ---------------------------------------------------------------
    async def _call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run ``fn(*args)`` on the database thread, mapping lock/open errors."""
        pid = os.getpid()
        if self._connected_pid not in (None, pid):
            raise BackendUnavailable(forked_message(self.path))
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskward-sqlite")
        self._connected_pid = pid
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.DatabaseError as exc:
            error = unavailable(exc, self.path)
            if error is None:
                raise
            raise error from exc

    def __repr__(self) -> str:
        return f"<SqliteBackend {self.path} synchronous={self.synchronous}>"

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the connection on its thread (idempotent).

        Creates missing parent folders, and a missing database file readable by its owner only.
        An open that starts the database thread and then fails or is cancelled leaves nothing
        behind: its connection is closed and its thread ends, as after :meth:`close`.
        """
        starting = self._executor is None
        try:
            await self._call(self._store.open)
        except BaseException:
            if starting:
                self._abandon()
            raise

    async def close(self) -> None:
        """Close the connection and stop its thread (idempotent); wakes any waiter.

        In a process forked while this backend was open it does nothing: the connections,
        the database thread and the wake-up socket are the parent's (closing or unlinking
        them would break the parent), and the backend stays refused there.
        """
        if self._connected_pid not in (None, os.getpid()):
            return
        executor, store = self._detach()
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, store.close)
        finally:
            executor.shutdown(wait=False)

    def _abandon(self) -> None:
        """:meth:`close` without waiting (for an open that failed or was cancelled).

        The thread closes the connection after what it is running (an open cannot be
        interrupted), then ends.
        """
        if self._connected_pid not in (None, os.getpid()):
            return
        executor, store = self._detach()
        if executor is not None:
            executor.submit(store.close)
            executor.shutdown(wait=False)

    def _detach(self) -> tuple[ThreadPoolExecutor | None, SqliteStore]:
        """Hand over the database thread and its store, wake the waiters, close the pool.

        The backend is closed from then on: a later call opens a new thread and connection.
        """
        executor, self._executor = self._executor, None
        store, self._store = self._store, SqliteStore(self.path, synchronous=self.synchronous)
        self._waiters.close()
        self._ends.close()
        self._close_idle_stores()
        return executor, store

    async def migrate(self) -> MigrationReport:
        """Apply pending migrations (safe when several processes start at once)."""
        return migration_report(SQLITE_SQL, await self._call(self._store.migrate))

    async def pragmas(self) -> dict[str, Any]:
        """The connection's ``journal_mode``, ``synchronous`` (0-3) and ``busy_timeout`` (ms)."""
        return await self._call(self._store.pragmas)

    # -- produce ---------------------------------------------------------------------------
    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs in one transaction; a unique clash returns the existing job as duplicate.

        ``connection`` (joining the caller's own transaction) is not supported for SQLite yet:
        the backend's connection lives on its own thread, so it cannot share the caller's
        ``sqlite3`` transaction. Passing one raises :class:`NotSupported`.
        """
        refuse_caller_transaction(connection)
        if not jobs:
            return []
        out = await self._call(self._store.insert, jobs, now)
        ready = newly_pending_queues(out)
        if ready:
            self._waiters.jobs_ready(ready)
        return out

    # -- work ------------------------------------------------------------------------------
    async def fetch(
        self, *, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Claim up to ``limit`` pending jobs of ``queue`` in priority, then schedule order.

        Limits and holds apply in the claim's transaction. When a hold or a full rate window
        held the claim back, this process's waiters are woken when it ends (other processes'
        by their own claims' timers, or their poll).
        """
        self._waiters.fetching(queue)
        if limit <= 0:
            return []
        jobs, retry_at = await self._call(
            self._store.fetch, queue, limit, worker_id, now, lease_until
        )
        if retry_at is not None:
            self._waiters.wake_at(queue, now=now, at=retry_at)
        return jobs

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Extend this worker's leases; report jobs lost or with a cancel request."""
        if not job_ids:
            return LeaseReport()
        return await self._call(self._store.extend_leases, job_ids, worker_id, lease_until)

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        """Write each outcome only if the job is still running at that attempt, owned by us.

        A job that leaves a queue with a global limit frees a slot: that queue's waiters (here
        and in other processes) are woken, so a worker held back by the limit claims at once.
        An update with ``dependents`` that ends its job releases or cancels the workflow steps
        waiting for it in the same transaction; a released step wakes its queue's waiters too.
        """
        if not updates:
            return []
        written, freed = await self._call(self._store.finish, updates, worker_id)
        if freed:
            self._waiters.jobs_ready(freed)
        self._ends.ended(
            u.job_id for u, ok in zip(updates, written, strict=True) if ok and u.state in ENDS
        )
        return written

    async def set_progress(self, job_id: int, progress: Any, *, worker_id: str) -> bool:
        """Store progress of a running job this worker owns."""
        return await self._call(self._store.set_progress, job_id, progress, worker_id)

    async def wait_for_jobs(self, queues: Collection[str], *, timeout: float) -> None:
        """Return when jobs may be pending in ``queues``, or after ``timeout`` seconds.

        Returns at once if this instance woke waiters since its last fetch of one of
        ``queues`` (so a wake-up between that fetch and this wait is not lost).
        """
        names = list(queues)
        store = self._store
        seen = {store.versions.get(q) for q in names} if names else {store.last_version}

        def committed_elsewhere() -> Awaitable[bool]:
            return self._call(store.jobs_may_be_pending, names, seen)

        await self._waiters.wait(
            names, timeout=timeout, poll_seconds=self.poll_seconds, poll=committed_elsewhere
        )

    async def wait_for_ends(self, job_ids: Collection[int], *, timeout: float) -> None:
        """Return when a watched job ended (here, or in a process that told us), or at timeout.

        This process binds a socket in the ``ends`` folder while it watches jobs
        (``sqlite/ends.py``); jobs ended without a notice are found by the caller's fallback read.
        """
        await self._ends.wait(job_ids, timeout=timeout)

    # -- maintain --------------------------------------------------------------------------
    async def promote_due(self, *, now: datetime) -> int:
        """Move due scheduled/retryable jobs to pending; return how many."""
        promoted = await self._call(self._store.promote_due, now)
        if promoted:
            self._waiters.jobs_ready()
        return promoted

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        """Return running jobs whose lease expired before ``now``, by id."""
        return await self._call(self._store.expired_leases, now, limit)

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Count jobs finished since ``since`` per UTC minute and state (index range scans)."""
        return await self._call(self._store.finished_per_minute, since)

    async def health_figures(self, query: HealthQuery) -> HealthFigures:
        """The health check's figures, in one read snapshot (``sqlite/health.py``)."""
        return await self._call(sqlite_health, self._store, query)

    async def prune(self, *, before: Mapping[JobState, datetime]) -> int:
        """Delete finished jobs of each given state last changed before its cutoff."""
        if not before:
            return 0
        return await self._call(self._store.prune, before)

    # -- admin -----------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job:
        """Return one job; raise ``JobNotFound``."""
        return await self._call(self._store.get, job_id)

    async def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """Return one page of jobs matching ``filter``."""
        return await self._call(self._store.list_jobs, filter)

    async def cancel(self, job_id: int, *, reason: str, now: datetime) -> Job:
        """Cancel a waiting job, or ask the worker of a running one to stop.

        Cancelling a workflow step releases or cancels its dependents (same transaction); one
        that became pending wakes its queue's waiters.
        """
        job, ready = await self._call(self._store.cancel, job_id, reason, now)
        self._ready(ready)
        if job.state is JobState.CANCELLED:
            self._ends.ended((job_id,))
        return job

    async def retry(self, job_id: int, *, now: datetime, edit: JobEdit | None = None) -> Job:
        """Make a failed, discarded or cancelled job pending again with a fresh attempt.

        With ``edit``, its changes and record in the same transaction.
        """
        job, moved = await self._call(self._store.retry, job_id, now, edit)
        if moved and job.state is not JobState.BLOCKED:
            self._waiters.jobs_ready([job.queue])
        return job

    async def reseal(self, rewrites: Sequence[Reseal]) -> list[bool]:
        """Write re-sealed values of jobs still as they were read (key rotation)."""
        return await self._call(self._store.reseal, list(rewrites)) if rewrites else []

    async def delete(self, job_id: int, *, states: Collection[JobState] | None = None) -> bool:
        """Delete a job unless it is running (or, given ``states``, in none of them).

        False if there was none. A workflow step that had not ended is an end its dependents
        see (same transaction).
        """
        allowed = None if states is None else frozenset(states)
        deleted, ready = await self._call(self._store.delete, job_id, allowed)
        self._ready(ready)
        if deleted:
            self._ends.ended((job_id,))
        return deleted

    # -- workflows (taskward.graph; the store's flows.py) ----------------------------------
    async def insert_workflow(self, flow: NewWorkflow, *, now: datetime) -> WorkflowRecord:
        """Store every step of ``flow`` in one transaction (none on error); return it."""
        record, ready = await self._call(self._store.insert_workflow, flow, now)
        self._ready(ready)
        return record

    async def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """Return a workflow with its steps in insert order, or raise ``WorkflowNotFound``."""
        return await self._call(self._store.get_workflow, workflow_id)

    async def cancel_workflow(
        self, workflow_id: int, *, reason: str, now: datetime
    ) -> WorkflowRecord:
        """Cancel every step that has not ended, except finalizers; ask running ones to stop."""
        record, ready = await self._call(self._store.cancel_workflow, workflow_id, reason, now)
        self._ready(ready)
        self._ends.ended(s.job.id for s in record.steps if s.job.state in ENDS)
        return record

    async def release_blocked(
        self, *, now: datetime, limit: int, after: int = 0
    ) -> tuple[int, int]:
        """Recount blocked steps after id ``after``; release those nothing holds back."""
        if limit <= 0:
            return 0, after
        released, cursor, ready = await self._call(self._store.release_blocked, now, limit, after)
        self._ready(ready)
        return released, cursor

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """The stored jobs of these ids that exist, in the order given."""
        if not job_ids:
            return []
        return await self._call(self._store.get_jobs, list(job_ids))

    def _ready(self, queues: set[str]) -> None:
        """Wake the waiters of ``queues`` (here and elsewhere), where steps became pending."""
        if queues:
            self._waiters.jobs_ready(sorted(queues))

    async def stats(self) -> Stats:
        """Count jobs by queue and state; paused queues are listed even when empty."""
        return await self._call(self._store.stats)

    async def pause_queue(self, queue: str) -> None:
        """Stop ``fetch`` from handing out jobs of ``queue``, in every process."""
        await self._call(self._store.pause_queue, queue)

    async def resume_queue(self, queue: str) -> None:
        """Undo :meth:`pause_queue`."""
        await self._call(self._store.resume_queue, queue)
        self._waiters.jobs_ready([queue])

    async def paused_queues(self) -> set[str]:
        """Return the names of paused queues."""
        return await self._call(self._store.paused_queues)

    async def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Store ``queue``'s limits for every process; empty limits clear them.

        A new or changed ``partition_by`` keys the queue's waiting jobs by it in the same
        transaction. Wakes the queue's waiters: a raised (or cleared) limit may let them claim.
        """
        await self._call(self._store.set_queue_limits, queue, limits)
        self._waiters.jobs_ready([queue])

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """Return the limits of every queue that has one (a hold is not a limit)."""
        return await self._call(self._store.queue_limits)

    async def hold_queue(
        self, queue: str, *, until: datetime | None, key: str | None = None
    ) -> None:
        """Let no job of ``queue`` (or of its ``key``) start before ``until``; None releases.

        In every process. A hold only grows (the later of the stored and the new time wins).
        A release wakes the queue's waiters, here and in other processes.
        """
        await self._call(self._store.hold_queue, queue, until, key)
        if until is None:
            self._waiters.jobs_ready([queue])

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """The queue's limits with ``key``'s hold, rate window and running jobs.

        ``running``: at most ``RUNNING_SHOWN`` ids of the key's running jobs, ascending.
        """
        return await self._call(self._store.partition_flow, queue, key)

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """Limits, hold and rate window of every queue with limits or a hold.

        An ended hold stays listed, with its past time, until it is released or replaced.
        """
        return await self._call(self._store.queue_flow)

    # -- schedules -------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> None:
        """Create or replace a recurring schedule by name."""
        await self._call(self._store.save_schedule, schedule)

    async def delete_schedule(self, name: str) -> bool:
        """Delete a recurring schedule; False if there was none."""
        return await self._call(self._store.delete_schedule, name)

    async def list_schedules(self) -> list[Schedule]:
        """Return every recurring schedule, by name."""
        return await self._call(self._store.list_schedules)

    async def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume a recurring schedule; False if there is none."""
        return await self._call(self._store.set_schedule_paused, name, paused)

    async def record_cron_fires(
        self, name: str, fires: Sequence[CronFire], *, now: datetime, keep: int = CRON_HISTORY_KEEP
    ) -> None:
        """Append fire records and advance the schedule's state, in one transaction."""
        await self._call(cron_history.record, self._store, name, fires, now, keep)

    async def cron_history(self, name: str, *, limit: int = CRON_HISTORY_KEEP) -> list[CronFire]:
        """Return the newest ``limit`` fire records of ``name``, newest first."""
        return await self._call(cron_history.history, self._store, name, limit)

    # -- coordination ----------------------------------------------------------------------
    async def acquire_lease(
        self, name: str, *, holder: str, now: datetime, until: datetime
    ) -> bool:
        """Take or renew the named lease unless another holder has it until after ``now``."""
        return await self._call(self._store.acquire_lease, name, holder, now, until)

    async def record_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker's liveness record."""
        await self._call(self._store.record_worker, info)

    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's liveness record."""
        await self._call(self._store.remove_worker, worker_id)

    async def list_workers(self, *, alive_since: datetime) -> list[WorkerInfo]:
        """Return workers that heartbeated at or after ``alive_since``, by id."""
        return await self._call(self._store.list_workers, alive_since)
