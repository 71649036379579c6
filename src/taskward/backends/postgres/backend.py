"""PostgresBackend: many worker processes on many hosts against one PostgreSQL database.

Built on psycopg 3 with its async connection pool (one driver for the async worker *and* sync
callers such as Django views, the CLI and transactional enqueue from a plain ``psycopg``
connection; pipeline, COPY and ``notifies()`` included). Every statement lives in
``queries.sql`` beside this module.

This module is the facade: it wires the parts of the package together and delegates each
call of the :class:`~taskward.backends.base.Backend` protocol to the one that owns it.

- **Claims** use ``FOR UPDATE SKIP LOCKED`` in batches, so workers never block each other;
  outcomes of a batch are written by *one* fenced ``UPDATE … FROM unnest(…)`` (``work``).
- **Wake-ups**: every insert statement notifies (``pg_notify``) the queues of the pending jobs it
  inserted (so a job enqueued inside the application's own transaction wakes workers when, and
  only if, it commits); promotions, retries and resumes notify too. One dedicated listening
  connection per backend wakes local waiters; polling stays as the fallback when it is down
  (``listener``). Idle workers may take a job straight from its insert (``dispatch``).
- **Queue limits and holds**: a queue's ``global_limit``, ``rate_limit`` (with its current
  window's count) and hold are a row of ``taskward_queue_limits``; its claims take turns on
  that row, apply the hold and the rate, count its running jobs after their turn came and
  write the window's count in the same transaction, so claims from every process and host
  never exceed the limits together; its jobs are never dispatched (``work``, ``dispatch``).
  A claim held back by time arms a timer that wakes this process's waiters when it ends.
- **Partitioned queues**: the row's ``partition_by`` rule keys each job as it is inserted (in
  the insert statement, or by the client for a COPY, from the rules read in its transaction);
  a claim of the queue is one call of a PL/pgSQL function that takes the row's turn, walks
  the keys with pending jobs from the queue's cursor, applies the limits to each key (its own
  hold and rate window are rows of ``taskward_partitions``) and claims the keys' jobs in turns.
- **Uniqueness** is race-free across processes: inserts of one unique key serialise on a
  transaction-scoped advisory lock before the check (``inserts``).
- **Migrations** run under an advisory lock, so several processes may start at once
  (``schema``).

URL: ``postgresql://user:pass@host:port/db?schema=myapp&pool_max_size=10``. taskward's own
query parameters (``schema``, ``pool_min_size``, ``pool_max_size``, ``prepare``) are removed
before connecting; all others go to libpq. ``schema`` lets several applications share one
database; ``prepare=false`` is for a transaction pooler (PgBouncer in transaction mode): no
server-side prepared statements and no startup options, so the database's time zone must be
UTC (``ALTER DATABASE … SET timezone TO 'UTC'``; checked at connect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from taskward.backends.base import Capability, MigrationReport
from taskward.backends.postgres import admin, bulk, cron_history, flows, schema, work
from taskward.backends.postgres.admin import EXACT_COUNT_CAP
from taskward.backends.postgres.config import PostgresConfig, parse_postgres_url
from taskward.backends.postgres.connections import Connections
from taskward.backends.postgres.control import ControlConnection
from taskward.backends.postgres.dispatch import Offers
from taskward.backends.postgres.health import health_figures as postgres_health
from taskward.backends.postgres.inserts import Inserter
from taskward.backends.postgres.listener import Listener
from taskward.backends.postgres.watches import Watches
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
    NewJobBatch,
    Page,
    Reseal,
    Schedule,
    Stats,
    WorkerInfo,
)
from taskward.limits import QueueFlow, QueueLimits

__all__ = ["EXACT_COUNT_CAP", "PostgresBackend", "parse_postgres_url"]


class PostgresBackend:
    """Jobs in PostgreSQL tables, shared by every process and host that connects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = PostgresConfig.from_url(url)
        _check_conninfo(self.config.conninfo)
        self._connections = Connections(self.config)
        self.q = self._connections.q  # every statement, by name, filled in for the schema
        self._control = ControlConnection(self._connections)
        self._listener = Listener(self._connections)
        self._offers = Offers(self._connections, self._listener)
        self._watches = Watches(self._connections, self._listener)  # wait_for_ends (0012)
        self._inserter = Inserter(self._connections, self._offers)
        # Queues whose last claim found a row of limits or a hold: claimed the limited way first.
        # What that row held: a global limit only is claimed in one round trip (work.Seen).
        self._limited: dict[str, work.Seen] = {}

    def __repr__(self) -> str:
        config = self.config
        return f"<PostgresBackend schema={config.schema} pool={config.min_size}..{config.max_size}>"

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this backend's tables."""
        return self.config.schema

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Persistent, multi-process, transactional enqueue, NOTIFY wake-ups and workflows."""
        return frozenset(
            {
                Capability.PERSISTENT,
                Capability.MULTI_PROCESS,
                Capability.STORES_JOBS,
                Capability.TRANSACTIONAL_ENQUEUE,
                Capability.NOTIFY,
                Capability.BLOCKING_INSERT,
                Capability.STREAMED_INSERT,
                Capability.DISPATCH,
                Capability.WORKFLOWS,
                Capability.END_NOTICES,
            }
        )

    @property
    def _pool(self) -> AsyncConnectionPool[Any] | None:
        """The async pool, None until opened (tests check what a sync producer opens)."""
        return self._connections.pool

    @property
    def _sync_pool(self) -> ConnectionPool[Any] | None:
        """The sync pool, None until opened (tests check that shutdown closes it)."""
        return self._connections.sync_pool

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the connection pool (idempotent); the listener opens on the first wait."""
        await self._connections.open_pool()

    async def close(self) -> None:
        """Close the listener, the control connection and the pools (idempotent).

        Wakes any waiter. The backend opens again on its next use. Each step runs even if
        the call is cancelled during an earlier one, and the cancel goes through once all
        have: a part left open would keep its connection.
        """
        cancelled: asyncio.CancelledError | None = None
        for step in (self._listener.stop, self._control.close, self._connections.close):
            try:
                await step()
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            raise cancelled

    async def migrate(self) -> MigrationReport:
        """Apply pending migrations in one transaction, under an advisory lock; say which."""
        return await schema.migrate(self._connections)

    def migrate_blocking(self) -> None:
        """:meth:`migrate` from the calling thread, on the sync pool (sync producers)."""
        schema.migrate_blocking(self._connections)

    # -- produce ---------------------------------------------------------------------------
    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs in one transaction; a unique clash returns the existing job as duplicate.

        With ``connection`` (a psycopg ``AsyncConnection`` or ``Connection`` in an open
        transaction) the jobs are written inside the caller's transaction, as a savepoint: they
        exist if, and only if, the caller commits.
        """
        return await self._inserter.insert(jobs, now=now, connection=connection)

    async def insert_stream(
        self, batches: Iterable[NewJobBatch], *, count: int, now: datetime
    ) -> list[Job]:
        """Insert ``count`` jobs without unique keys by one COPY, written batch by batch.

        One transaction: the rows take their ids from the identity as the server reads them
        (COPY has no RETURNING; ``bulk_ids`` finds them after). Each batch is sent as soon
        as it is built, so the server stores rows while the caller builds the next one. An
        exception from ``batches`` cancels the COPY: no job is stored. The queues given
        pending jobs are notified after the commit.
        """
        return await bulk.insert_stream(self._connections, batches, count=count, now=now)

    def insert_blocking(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs from the calling thread; as :meth:`insert`, for sync producers.

        Without ``connection`` the jobs go through a second, thread-safe pool of sync
        connections (opened on first use, up to ``pool_max_size``), not through the event
        loop: a sync caller then costs one round trip and no thread hop. With a psycopg
        ``Connection`` in an open transaction, the jobs join that transaction.
        """
        return self._inserter.insert_blocking(jobs, now=now, connection=connection)

    # -- work ------------------------------------------------------------------------------
    async def fetch(
        self, *, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Claim up to ``limit`` pending jobs of ``queue`` in priority, then schedule order."""
        self._listener.note_fetch(queue)
        return await work.fetch(
            self._connections,
            queue=queue,
            limit=limit,
            worker_id=worker_id,
            now=now,
            lease_until=lease_until,
            limited=self._limited,
            held_back=self._listener.wake_at,
        )

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Extend this worker's leases; report jobs lost or with a cancel request."""
        return await work.extend_leases(
            self._control, job_ids, worker_id=worker_id, lease_until=lease_until
        )

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        """Write each outcome only if the job is still running at that attempt, owned by us."""
        return await work.finish(
            self._connections, updates, worker_id=worker_id, limited=self._limited
        )

    async def set_progress(self, job_id: int, progress: Any, *, worker_id: str) -> bool:
        """Store progress of a running job this worker owns."""
        return await work.set_progress(self._connections, job_id, progress, worker_id=worker_id)

    async def wait_for_jobs(self, queues: Collection[str], *, timeout: float) -> None:
        """Return on a NOTIFY for one of ``queues``, or after ``timeout`` seconds (polling).

        Returns at once if a notification for one of ``queues`` arrived since this
        instance's last fetch of it, so a wake-up between that fetch and this wait is not lost.
        """
        await self._listener.wait(queues, timeout=timeout)

    async def wait_for_ends(self, job_ids: Collection[int], *, timeout: float) -> None:
        """Return on a NOTIFY that a watched job ended, or after ``timeout`` seconds.

        The ids are stored in ``taskward_watches`` before it returns for new ones, so only
        their ends cost a NOTIFY (``watches.py``).
        """
        await self._watches.wait(job_ids, timeout=timeout)

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (otherwise waits fall back to polling)."""
        return self._listener.listening

    # -- dispatch --------------------------------------------------------------------------
    async def offer(
        self,
        *,
        worker_id: str,
        queue: str,
        lease_seconds: float,
        now: datetime,
        receive: Callable[[Job], None],
    ) -> bool:
        """Offer one slot of ``queue`` to producers while the LISTEN connection is up."""
        return await self._offers.offer(
            worker_id=worker_id, queue=queue, lease_seconds=lease_seconds, now=now, receive=receive
        )

    async def withdraw(self, *, worker_id: str, queue: str) -> bool:
        """Take the offer back; False if a producer took it (its job is on its way)."""
        return await self._offers.withdraw(worker_id=worker_id, queue=queue)

    async def dispatched_to(
        self, *, worker_id: str, queue: str, known: Collection[int]
    ) -> list[Job]:
        """The running jobs of ``queue`` leased to ``worker_id`` but not in ``known``."""
        return await self._offers.dispatched_to(worker_id=worker_id, queue=queue, known=known)

    # -- maintain --------------------------------------------------------------------------
    async def promote_due(self, *, now: datetime) -> int:
        """Move due scheduled/retryable jobs to pending (notifying their queues); how many."""
        return await work.promote_due(self._connections, now=now)

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        """Return running jobs whose lease expired before ``now``, by id."""
        return await work.expired_leases(self._connections, now=now, limit=limit)

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Count jobs finished since ``since`` per UTC minute and state (one index scan)."""
        return await work.finished_per_minute(self._connections, since=since)

    async def health_figures(self, query: HealthQuery) -> HealthFigures:
        """The health check's figures, from the partial indexes (``postgres/health.py``)."""
        return await postgres_health(self._connections, query)

    async def prune(self, *, before: Mapping[JobState, datetime]) -> int:
        """Delete finished jobs of each given state that finished before its cutoff."""
        return await work.prune(self._connections, before=before)

    # -- admin -----------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job:
        """Return one job; raise ``JobNotFound``."""
        return await admin.get(self._connections, job_id)

    def close_blocking(self) -> None:
        """Close the connections sync producers opened (reopened by the next sync call).

        For a caller whose sync calls go through its own connection from now on (Django's
        backend, when the store is the Django database): it then leaves no idle session.
        """
        self._connections.close_sync_pool()

    def get_blocking(self, job_id: int, *, connection: Any) -> Job:
        """Return one job read through ``connection``, a caller's sync psycopg ``Connection``.

        Inside the caller's open transaction, its own uncommitted jobs are visible (Django's
        ``get_result`` after an enqueue in the same ``atomic()`` block). Raise ``JobNotFound``.
        """
        return admin.get_blocking(self._connections, connection, job_id)

    async def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """Return one page of jobs matching ``filter``, with the total count."""
        return await admin.list_jobs(self._connections, filter)

    async def cancel(self, job_id: int, *, reason: str, now: datetime) -> Job:
        """Cancel a waiting job, or ask the worker of a running one to stop."""
        job = await flows.cancel(self._connections, job_id, reason=reason, now=now)
        if job.state is JobState.CANCELLED:
            await self._watches.notify([job_id])  # its outcome waiters, if any
        return job

    async def retry(self, job_id: int, *, now: datetime, edit: JobEdit | None = None) -> Job:
        """Make a failed, discarded or cancelled job pending again (with ``edit``'s changes)."""
        return await flows.retry(self._connections, job_id, now=now, edit=edit)

    async def reseal(self, rewrites: Sequence[Reseal]) -> list[bool]:
        """Write re-sealed values of jobs still as they were read (key rotation)."""
        return await admin.reseal(self._connections, rewrites)

    async def delete(self, job_id: int, *, states: Collection[JobState] | None = None) -> bool:
        """Delete a job unless it is running (or, given ``states``, in none of them)."""
        deleted = await flows.delete(self._connections, job_id, states)
        if deleted:
            await self._watches.notify([job_id])  # its outcome waiters, if any
        return deleted

    # -- workflows (migration 0009; the rules are taskward.graph's, run in the database) ---
    async def insert_workflow(self, flow: NewWorkflow, *, now: datetime) -> WorkflowRecord:
        """Store every step of ``flow`` in one transaction (none on error); return it."""
        return await flows.insert_workflow(self._connections, flow, now=now)

    async def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """Return a workflow with its steps in insert order, or raise ``WorkflowNotFound``."""
        return await flows.get_workflow(self._connections, workflow_id)

    async def cancel_workflow(
        self, workflow_id: int, *, reason: str, now: datetime
    ) -> WorkflowRecord:
        """Cancel every step not ended but the finalizers; ask running ones to stop."""
        record = await flows.cancel_workflow(self._connections, workflow_id, reason=reason, now=now)
        cancelled = [s.job.id for s in record.steps if s.job.state is JobState.CANCELLED]
        await self._watches.notify(cancelled)  # their outcome waiters, if any
        return record

    async def release_blocked(
        self, *, now: datetime, limit: int, after: int = 0
    ) -> tuple[int, int]:
        """Recount blocked steps after id ``after``; release those nothing holds back."""
        return await flows.release_blocked(self._connections, now=now, limit=limit, after=after)

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """The stored jobs of these ids that exist, in the order given."""
        return await flows.get_jobs(self._connections, job_ids)

    async def stats(self) -> Stats:
        """Count jobs by queue and state; paused queues are listed even when empty."""
        return await admin.stats(self._connections)

    async def pause_queue(self, queue: str) -> None:
        """Stop ``fetch`` from handing out jobs of ``queue``, on every node."""
        await admin.pause_queue(self._connections, queue)

    async def resume_queue(self, queue: str) -> None:
        """Undo :meth:`pause_queue` (and wake that queue's workers everywhere)."""
        await admin.resume_queue(self._connections, queue)

    async def paused_queues(self) -> set[str]:
        """Return the names of paused queues."""
        return await admin.paused_queues(self._connections)

    async def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Store ``queue``'s limits, replacing any; empty limits clear them (every node).

        A limited queue's claims take turns on its row and count its running jobs after
        their turn came (``work``); its jobs are never dispatched. Wakes its workers. Clearing
        the limits keeps a hold.
        """
        await admin.set_queue_limits(self._connections, queue, limits)
        if limits.is_empty:
            return
        # This process's next claim goes the limited way at once (a hold, if any, it finds).
        if limits.partition_by is not None:
            self._limited[queue] = (
                work.Seen.PARTITIONED
                if limits.global_limit is None
                else work.Seen.PARTITIONED_GLOBAL
            )
        elif limits.global_limit is None:
            self._limited[queue] = work.Seen.NO_GLOBAL_LIMIT
        elif limits.rate_limit is None:
            self._limited[queue] = work.Seen.GLOBAL_LIMIT
        else:
            self._limited[queue] = work.Seen.GLOBAL_AND_MORE

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """Return the limits of every queue that has one (a hold is not a limit)."""
        return await admin.queue_limits(self._connections)

    async def hold_queue(
        self, queue: str, *, until: datetime | None, key: str | None = None
    ) -> None:
        """Hold back ``queue`` on every node until ``until`` (the later hold wins); None releases.

        Its claims then take the limited way, which yields nothing before ``until``; a release
        wakes the queue's workers on every host. With ``key``: only that key of the queue (a
        row of ``taskward_partitions``, which the partitioned claim reads).
        """
        await admin.hold_queue(self._connections, queue, until=until, key=key)
        if until is not None and key is None:
            # A global limit set elsewhere: the next claim finds it.
            self._limited.setdefault(queue, work.Seen.NO_GLOBAL_LIMIT)

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """The queue's limits with one key's hold, rate window and running jobs."""
        return await admin.partition_flow(self._connections, queue, key)

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """Limits, hold and rate window of every queue that has a row of them."""
        return await admin.queue_flow(self._connections)

    # -- schedules -------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> None:
        """Create or replace a recurring schedule by name."""
        await admin.save_schedule(self._connections, schedule)

    async def delete_schedule(self, name: str) -> bool:
        """Delete a recurring schedule; False if there was none."""
        return await admin.delete_schedule(self._connections, name)

    async def list_schedules(self) -> list[Schedule]:
        """Return every recurring schedule, by name."""
        return await admin.list_schedules(self._connections)

    async def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume a recurring schedule; False if there is none."""
        return await admin.set_schedule_paused(self._connections, name, paused)

    async def record_cron_fires(
        self, name: str, fires: Sequence[CronFire], *, now: datetime, keep: int = CRON_HISTORY_KEEP
    ) -> None:
        """Append fire records and advance the schedule's state, in one transaction."""
        await cron_history.record(self._connections, name, fires, now=now, keep=keep)

    async def cron_history(self, name: str, *, limit: int = CRON_HISTORY_KEEP) -> list[CronFire]:
        """Return the newest ``limit`` fire records of ``name``, newest first."""
        return await cron_history.history(self._connections, name, limit=limit)

    # -- coordination ----------------------------------------------------------------------
    async def acquire_lease(
        self, name: str, *, holder: str, now: datetime, until: datetime
    ) -> bool:
        """Take or renew the named lease unless another holder has it past ``now``."""
        return await work.acquire_lease(self._control, name, holder=holder, now=now, until=until)

    async def record_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker's liveness record."""
        await work.record_worker(self._control, info)

    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's liveness record, and any slot it still offers."""
        await admin.remove_worker(self._connections, worker_id)
        await self._offers.forget(worker_id)

    async def list_workers(self, *, alive_since: datetime) -> list[WorkerInfo]:
        """Return workers that heartbeated at or after ``alive_since``, by id."""
        return await admin.list_workers(self._connections, alive_since=alive_since)


def _check_conninfo(conninfo: str) -> None:
    """Refuse a URL libpq cannot parse now, with one clear error, not at the first connect.

    libpq's own message is left out: it may quote the URL, password included.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    from taskward.errors import InvalidOptions

    try:
        conninfo_to_dict(conninfo)
    except ProgrammingError:
        raise InvalidOptions(
            "invalid PostgreSQL URL: libpq cannot parse it (check the percent-encoding of "
            "the user and password, and the query parameters' names)"
        ) from None
