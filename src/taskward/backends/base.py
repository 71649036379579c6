"""The backend contract: one Protocol that every store implements, and its capabilities.

Backends *persist*; they never decide a state transition (``states.next_update`` does). Every
method is async and keyword-only beyond its first argument; inputs and outputs are values from
``taskward.jobs``. ``tests/contract/`` is the executable form of this contract, and
``memory/`` is the reference implementation.

Times are passed in by the caller (``now``) so that one injected clock rules the whole system.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol, runtime_checkable

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

RELEASE_LOOKUPS: Final = 10_000
"""Dependency lookups one :meth:`Backend.release_blocked` call makes at most (past the first
step it examines): it stops there and returns its cursor, so a step with many dependencies
costs one bounded run, not one long transaction (or script)."""


class Capability(StrEnum):
    """Optional features a backend may offer; the manager raises ``NotSupported`` without them."""

    PERSISTENT = "persistent"
    """Jobs survive a restart of the process."""
    MULTI_PROCESS = "multi_process"
    """Several processes may work the same store."""
    TRANSACTIONAL_ENQUEUE = "transactional_enqueue"
    """``insert(..., connection=conn)`` joins the caller's open transaction."""
    NOTIFY = "notify"
    """``wait_for_jobs`` wakes up on new jobs from other processes, not only by polling."""
    STORES_JOBS = "stores_jobs"
    """Jobs can be read back (the no-op backend drops them)."""
    BLOCKING_INSERT = "blocking_insert"
    """The backend is a :class:`BlockingInserter`: sync callers insert from their own thread."""
    STREAMED_INSERT = "streamed_insert"
    """The backend is a :class:`StreamInserter`: a bulk enqueue is stored while it is built."""
    DISPATCH = "dispatch"
    """The backend is a :class:`Dispatcher`: an idle worker can be handed a new job directly."""
    WORKFLOWS = "workflows"
    """``insert_workflow`` and the rest of the workflow methods work (``taskward.graph``)."""
    END_NOTICES = "end_notices"
    """``wait_for_ends`` is woken by the store when a watched job ends (in any process the
    store serves), not only by its caller's polling (``TaskManager.wait_for``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationReport:
    """What one :meth:`Backend.migrate` call did: the migrations it applied, and where it left.

    The CLI prints it (``taskward migrate``): "applied 6 migrations" on a new store, "up to
    date (version 6)" on one that had them all.
    """

    applied: tuple[int, ...] = ()
    """The versions this call applied, in ascending order; empty when nothing was due."""
    version: int | None = None
    """The schema version the store is at now; None for a store without a schema (memory,
    noop)."""


class BlockingInserter(Protocol):
    """A backend that sync code can write to directly, without the portal's event loop.

    ``manager.sync.enqueue_task`` and ``Task.enqueue_sync`` use it when the backend has
    :attr:`Capability.BLOCKING_INSERT`: the insert runs in the calling thread (a Django view,
    a script), on a connection of that thread or of a small thread-safe pool, instead of
    hopping to the portal thread's loop and back. Same rules as :meth:`Backend.insert`,
    including waking the workers.
    """

    def insert_blocking(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs from the calling thread, blocking it; as :meth:`Backend.insert`."""
        ...

    def migrate_blocking(self) -> None:
        """:meth:`Backend.migrate` from the calling thread (a sync producer opens with it)."""
        ...


class StreamInserter(Protocol):
    """A backend that stores a bulk enqueue while the manager is still building it.

    ``enqueue_many`` (no caller's connection, no unique jobs) hands its jobs over batch by
    batch as it validates and encodes them, and the backend writes each batch while the next
    one is being built: the client's work and the store's overlap instead of taking turns.
    """

    async def insert_stream(
        self, batches: Iterable[NewJobBatch], *, count: int, now: datetime
    ) -> list[Job]:
        """Insert the ``count`` jobs ``batches`` hold, in one transaction: all or none.

        Returns the stored jobs in order. The template of a batch carries no unique key. An
        exception raised by ``batches`` (a job built late with bad input) aborts the insert:
        nothing is stored, and that exception propagates.
        """
        ...


class Dispatcher(Protocol):
    """A backend whose producers can hand a new job straight to an idle worker.

    An idle worker offers one slot of a queue; an insert that takes the offer stores its job
    already claimed by that worker (running, leased, attempt 1) and the store delivers the
    job to the worker's ``receive`` callback: the worker starts it without a claim round
    trip. An offer is taken at most once; a worker that goes away without withdrawing it
    leaves at most one job leased to it, which the rescue of expired leases runs again.
    """

    async def offer(
        self,
        *,
        worker_id: str,
        queue: str,
        lease_seconds: float,
        now: datetime,
        receive: Callable[[Job], None],
    ) -> bool:
        """Offer one slot of ``queue``; False if not possible now (no live notifications).

        ``receive`` is called on the event loop with the job dispatched to this worker.
        Offers of the queue left by workers silent for longer than their lease go too.
        """
        ...

    async def withdraw(self, *, worker_id: str, queue: str) -> bool:
        """Take the offer back: True if it was still standing, False if a job took it."""
        ...

    async def dispatched_to(
        self, *, worker_id: str, queue: str, known: Collection[int]
    ) -> list[Job]:
        """The running jobs of ``queue`` leased to ``worker_id`` but not in ``known``.

        A worker whose offer was taken and whose job never arrived adopts them.
        """
        ...


@runtime_checkable
class Backend(Protocol):
    """A job store. See the module docstring for the rules every implementation follows."""

    url: str

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        """The optional features this backend offers."""
        ...

    async def open(self) -> None:
        """Connect (idempotent)."""
        ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...

    async def migrate(self) -> MigrationReport:
        """Create or upgrade the schema to the current version (idempotent); say what it did."""
        ...

    # -- produce ---------------------------------------------------------------------------
    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs in one round trip; a unique clash returns the existing job as duplicate.

        A job's ``partition_key`` is the one given (``NewJob.partition_key``), else, when its
        queue has a ``partition_by`` rule, the key the rule reads from its arguments
        (:meth:`taskward.limits.PartitionBy.key_of`), read in the insert's own statement (or
        script), else None.
        """
        ...

    # -- work ------------------------------------------------------------------------------
    async def fetch(
        self, *, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Claim up to ``limit`` pending jobs of ``queue`` (priority, then schedule order).

        Atomically: pending → running, ``attempt + 1``, lease to ``worker_id`` until
        ``lease_until``. A paused queue yields nothing. A queue with a ``global_limit``
        (:meth:`set_queue_limits`) yields at most that limit minus its running jobs, counted
        in the same transaction as the claim (so concurrent claims never exceed it; a job
        whose worker died holds its slot until its lease is rescued). A queue with a
        ``rate_limit`` yields at most what is left of the rate window that holds ``now``, and
        counts what it claimed in that window in the same transaction; a held queue
        (:meth:`hold_queue`) yields nothing before its hold ends. The arithmetic is
        :func:`taskward.limits.allowance`. When a hold or a full window held the claim back,
        the backend wakes this process's waiters of the queue when it ends (a window opens).

        A queue with ``partition_by`` is claimed by key, and its limits (and holds given with a
        key) apply to each key on its own. The claim visits the keys that have pending jobs in
        ascending order, starting after the last key the previous claim of the queue visited and
        wrapping around once; it stops after ``limit`` keys that can give a job, or after
        ``limit + MAX_KEYS_PER_CLAIM_EXTRA`` keys in all. Each key may give up to its allowance
        (capped at ``limit``), its jobs in priority, then schedule order; the claim takes them
        in turns, one from each key per turn in visiting order, until ``limit`` are taken. So a
        key with a deep backlog takes no more than its turn, and a key that gets its first job
        is served within one claim of the queue (when no more than ``limit`` keys come before it).
        """
        ...

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Heartbeat: extend the leases this worker still holds; report lost and cancelled ones."""
        ...

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        """Write outcomes, each only if the job is still running at that attempt, owned by us.

        Returns one flag per update: False means the fence refused it (the lease was lost).
        An update with ``dependents`` that ends its job releases or cancels the steps waiting
        for it in the same transaction (``taskward.graph``).
        """
        ...

    async def set_progress(self, job_id: int, progress: Any, *, worker_id: str) -> bool:
        """Store a running job's progress (JSON); False if the job is no longer ours."""
        ...

    async def wait_for_jobs(self, queues: Collection[str], *, timeout: float) -> None:
        """Return when new jobs may be available in ``queues``, or after ``timeout`` seconds."""
        ...

    async def wait_for_ends(self, job_ids: Collection[int], *, timeout: float) -> None:
        """Return when a job of ``job_ids`` may have ended, or after ``timeout`` seconds.

        Ended: completed, failed, discarded, cancelled, or deleted. The caller (one per event
        loop: the manager's outcome watcher, ``taskward.outcomes``) passes every id it waits
        for on each call, then reads them (``get_jobs``). The store watches these ids from the
        time this call returns: it returns at once when ``job_ids`` holds an id the previous
        call did not (so the caller reads after the store watches it), and at once when an
        end was noticed since the previous call returned (a notice that came while the caller
        read is not lost). Ids left out are no longer watched; an empty call drops them all.
        A return may be spurious (the caller reads again). Cancelling the call leaves nothing
        behind but the watch of ids it was given, dropped by the next call.
        With :attr:`Capability.END_NOTICES` the store wakes it when a watched job ends in any
        process; without, it returns at ``timeout`` only (noop).
        """
        ...

    # -- maintain --------------------------------------------------------------------------
    async def promote_due(self, *, now: datetime) -> int:
        """Move scheduled and retryable jobs whose time has come to pending; return how many."""
        ...

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        """Return running jobs whose lease expired before ``now`` (their worker died)."""
        ...

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Count the jobs that finished at or after ``since``, per UTC minute and final state.

        A job's finish time is when it completed, was cancelled or was discarded (what
        ``prune`` goes by). Returns ``(minute start, state, count)`` rows with a count above
        zero, ordered by minute, then state name. One aggregate query: the dashboard's chart.
        """
        ...

    async def health_figures(self, query: HealthQuery) -> HealthFigures:
        """The figures of the health check at ``query.now`` (``taskward.health.figures``).

        Per queue: due jobs (pending, and scheduled or retryable ones due by ``query.now``
        that the Stager has not moved yet), the earliest due time among them, running jobs
        and the stuck ones (``HealthQuery.is_stuck``, up to ``STUCK_IDS_SHOWN`` ids, longest
        running first); per (queue, task): runs and failures that ended in each window, and
        the p50/p95 run time of the runs that completed in the last hour
        (``HealthFigures.run_times``, ``completed_at - attempted_at`` ranked by
        :mod:`taskward.health.run_times`; a store that leaves them out shows none); the
        paused queues. Read-only, from the indexes the statistics and the prune use.
        """
        ...

    async def prune(self, *, before: Mapping[JobState, datetime]) -> int:
        """Delete finished jobs of each given state that finished before its cutoff.

        Only finished states (completed, failed, discarded, cancelled) are ever deleted.
        """
        ...

    # -- admin -----------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job:
        """Return one job; raise ``JobNotFound``."""
        ...

    async def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """Return one page of jobs matching ``filter``."""
        ...

    async def cancel(self, job_id: int, *, reason: str, now: datetime) -> Job:
        """Cancel a waiting job; flag a running one ``cancel_requested``; others are unchanged.

        Cancelling a workflow step is an end its dependents see (``taskward.graph``).
        """
        ...

    async def retry(self, job_id: int, *, now: datetime, edit: JobEdit | None = None) -> Job:
        """Move a failed, discarded or cancelled job back to pending.

        Its attempt count is kept (the history stays true); if no attempt is left,
        ``max_attempts`` grows to allow exactly one more. Other states are returned unchanged.
        A workflow step goes back to ``blocked`` instead while a dependency holds it back, and
        its dependents cancelled because it ended wait again (``taskward.graph``).

        ``edit`` (validated by the manager): its arguments, queue and priority replace the
        job's and its record is appended to ``meta["taskward.replays"]``
        (``taskward.edits.replayed_meta``, made from the job as stored at that moment), in the
        same atomic step as the retry: a job in another state keeps every field. A queue
        change moves the job to the new queue's indexes; the partition key follows
        (``taskward.edits.edited_job``); the unique key is kept.
        """
        ...

    async def reseal(self, rewrites: Sequence[Reseal]) -> list[bool]:
        """Write re-sealed values of jobs (key rotation); one flag per rewrite, in order.

        Each is written only if its job still has the rewrite's ``state``, ``attempt`` and
        number of errors (see :class:`~taskward.jobs.Reseal`); False otherwise, or for a job
        that no longer exists. Nothing else of the job changes.
        """
        ...

    async def delete(self, job_id: int, *, states: Collection[JobState] | None = None) -> bool:
        """Delete a job that is not running; return False if there was none.

        With ``states``, only a job in one of them (checked in the same atomic step as the
        delete: a bulk delete never takes a job retried since it was confirmed). A workflow
        step's dependents count it as ended, not completed (``taskward.graph``).
        """
        ...

    # -- workflows (Capability.WORKFLOWS; the rules are taskward.graph's) ---------------------
    async def insert_workflow(self, flow: NewWorkflow, *, now: datetime) -> WorkflowRecord:
        """Store every step of ``flow`` in one transaction (none on error); return it.

        Assigns the workflow's id, writes it into each step's ``meta`` marker
        (``graph.WORKFLOW_META_KEY``), and each step's ``depends_on`` as job ids. A step with
        dependencies is stored ``blocked``, waiting for all of them.
        """
        ...

    async def get_workflow(self, workflow_id: int) -> WorkflowRecord:
        """Return a workflow with its steps in insert order, or raise ``WorkflowNotFound``."""
        ...

    async def cancel_workflow(
        self, workflow_id: int, *, reason: str, now: datetime
    ) -> WorkflowRecord:
        """Cancel every step that has not ended, except finalizers, as :meth:`cancel` does.

        A running one is asked to stop. Returns the workflow as it stands after.
        """
        ...

    async def release_blocked(
        self, *, now: datetime, limit: int, after: int = 0
    ) -> tuple[int, int]:
        """The safety net: recount blocked steps and release those nothing holds back.

        Walks the blocked steps by id, starting after job id ``after`` (0: from the start), and
        recounts up to ``limit`` of them from their dependencies' states (a deleted one counts
        as done); it stops early once it made :data:`RELEASE_LOOKUPS` dependency lookups (the
        first step it examines is always recounted in full).

        Returns ``(released, cursor)``: how many steps were released, and the id of the last
        job examined, to pass as ``after`` to the next call; 0 when the walk reached the end
        (the next call starts over). Never cancels: a step retried while a dependency is
        failed waits for that dependency's retry.
        """
        ...

    async def get_jobs(self, job_ids: Sequence[int]) -> list[Job]:
        """The stored jobs of these ids that exist, in the order given; missing ids are skipped.

        One round trip (a few for SQLite's parameter limit). Callers pass at most
        ``graph.MAX_RESULTS_PASSED`` ids (a step's dependencies, whose results it receives).
        """
        ...

    async def stats(self) -> Stats:
        """Counts by queue and state (queues with no jobs but paused included) and paused queues."""
        ...

    async def pause_queue(self, queue: str) -> None:
        """Stop ``fetch`` from handing out jobs of ``queue`` (seen by every process)."""
        ...

    async def resume_queue(self, queue: str) -> None:
        """Undo :meth:`pause_queue`."""
        ...

    async def paused_queues(self) -> set[str]:
        """Return the names of paused queues."""
        ...

    async def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Store ``queue``'s limits, replacing any; empty limits clear them (every node).

        A new or changed ``partition_by`` sets the key of every job of the queue by the new rule
        in the same transaction (or script), so no job that may wait again (a retry brings a
        finished one back) lacks a key, and a running one counts against its key; no insert
        running at the same time may store a job by the old rule after it.
        """
        ...

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """Return the limits of every queue that has one."""
        ...

    async def hold_queue(
        self, queue: str, *, until: datetime | None, key: str | None = None
    ) -> None:
        """Hold back ``queue`` on every node: ``fetch`` yields none of its jobs before ``until``.

        A hold only grows (the later of the stored and the new time wins), so two jobs that
        hit an upstream limit at once keep the longer wait. ``until=None`` releases the hold.
        The queue's limits are untouched. With ``key``: only that key of the (partitioned)
        queue is held.
        """
        ...

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """Where one key of a queue stands (limits, the key's hold, window, running jobs).

        The limits are the queue's; the hold, the rate window and ``running`` (the ids of the
        key's running jobs, at most ``RUNNING_SHOWN``) are the key's own.
        """
        ...

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """Where each queue with limits or a hold stands: limits, hold, current rate window.

        A hold that has ended may still be listed (with its past time); a queue whose limits
        were cleared and whose hold ended may be left out.
        """
        ...

    # -- schedules -------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> None:
        """Create or replace a recurring schedule by name."""
        ...

    async def delete_schedule(self, name: str) -> bool:
        """Delete a recurring schedule; False if there was none."""
        ...

    async def list_schedules(self) -> list[Schedule]:
        """Return every recurring schedule, by name."""
        ...

    async def record_cron_fires(
        self, name: str, fires: Sequence[CronFire], *, now: datetime, keep: int = CRON_HISTORY_KEEP
    ) -> None:
        """Append fire records to schedule ``name``'s history, in one atomic step.

        A planned time already recorded for the schedule is left as it was (two schedulers
        handling one slot record it once). The schedule's ``last_fire_at`` becomes the newest
        ``planned_at`` (never moving back) and, if a record carries a job id and that newest
        ``planned_at`` is not older than the stored ``last_fire_at`` (a stale scheduler's late
        call moves nothing back), ``last_job_id`` that of the newest such record. Only the
        newest ``keep`` records are kept. Nothing is written for a schedule that does not
        exist. ``now`` is each record's ``recorded_at``.
        """
        ...

    async def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume schedule ``name``; False if there is none.

        The flag is state, like ``last_fire_at``: ``save_schedule`` keeps it, so an operator's
        pause survives the app saving its schedules again at start. Deleting the schedule
        forgets it.
        """
        ...

    async def cron_history(self, name: str, *, limit: int = CRON_HISTORY_KEEP) -> list[CronFire]:
        """Return up to ``limit`` fire records of schedule ``name``, newest planned time first.

        Empty for a schedule without records or that does not exist; deleting a schedule
        deletes its records.
        """
        ...

    # -- coordination ----------------------------------------------------------------------
    async def acquire_lease(
        self, name: str, *, holder: str, now: datetime, until: datetime
    ) -> bool:
        """Take or renew the named lease (leader election) unless another holder has it."""
        ...

    async def record_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker's liveness record."""
        ...

    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's liveness record (clean shutdown)."""
        ...

    async def list_workers(self, *, alive_since: datetime) -> list[WorkerInfo]:
        """Return workers that heartbeated at or after ``alive_since``."""
        ...
