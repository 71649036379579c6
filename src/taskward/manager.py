"""TaskManager: the facade. Validate → build a NewJob → hand it to the backend.

Everything here is async; ``manager.sync`` gives the blocking twins. Errors about bad input are
raised here, at the edge, before anything is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from taskward.backends import open_backend
from taskward.backends.base import Backend, BlockingInserter, Capability, StreamInserter
from taskward.backoff import BackoffSpec, ExponentialBackoff, RetryPolicy, policy_from
from taskward.building import JobBuilder, TaskRef, split_call
from taskward.clock import Clock, SystemClock
from taskward.commits import BlockingGroupCommit, GroupCommit
from taskward.cron_ops import CronOperations
from taskward.encryption import KeyRing
from taskward.errors import (
    InvalidOptions,
    NotSupported,
    PortalClosed,
)
from taskward.health import HealthThresholds
from taskward.health_ops import HealthOperations, check_thresholds
from taskward.jobs import (
    BoundJob,
    Inserted,
    Job,
    NewJob,
    NewJobBatch,
    Schedule,
)
from taskward.observe.events import EVENT_NAMES, Event, EventBus, EventRecorder, Hook
from taskward.operations import Operations
from taskward.outcome_ops import OutcomeOperations
from taskward.queue_ops import QueueOperations
from taskward.registry import TaskRegistry
from taskward.running import maintenance_services, open_for, stop_on_signals, worker_config
from taskward.runtime.drain import drain as drain_jobs
from taskward.runtime.served import tasks_by_queue
from taskward.runtime.settings import DrainResult
from taskward.runtime.worker import Worker
from taskward.settings import Settings
from taskward.tasks import Task, TaskOptions, qualified_name
from taskward.workflow_ops import WorkflowOperations

if TYPE_CHECKING:
    from taskward.sync import SyncTaskManager

# Jobs per chunk of a streamed bulk enqueue: small, so the store starts writing early (10,000
# jobs on PostgreSQL: 31k/s in chunks of 1,000, 41k/s in chunks of 100).
STREAM_CHUNK = 100

logger = logging.getLogger("taskward")
P = ParamSpec("P")
R = TypeVar("R")


class TaskManager(
    Operations,
    CronOperations,
    QueueOperations,
    WorkflowOperations,
    HealthOperations,
    OutcomeOperations,
):
    """The entry point: register tasks, enqueue jobs, inspect them, run workers."""

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        clock: Clock | None = None,
        health_thresholds: HealthThresholds | None = None,
        **settings: Any,
    ) -> None:
        self.settings = Settings.load(url=url, **settings)
        self.health_thresholds = check_thresholds(health_thresholds)
        """What ``health()`` judges against unless a call gives its own (None: the defaults)."""
        self.clock: Clock = clock or SystemClock()
        self._owns_backend = backend is None  # a backend passed in may be shared: never closed here
        self.backend: Backend = backend or open_backend(
            self.settings.effective_url, synchronous=self.settings.sqlite_synchronous
        )
        base = self.settings.default_retry_delay
        self.default_policy: RetryPolicy = (
            ExponentialBackoff() if base is None else ExponentialBackoff(base=base or 1.0)
        )
        self.registry = TaskRegistry(
            task_modules=self.settings.task_modules,
            import_by_path=self.settings.import_by_path,
            make=self._plain_task,
        )
        self.meta_providers: list[Callable[[str, str], Mapping[str, Any]]] = []
        """Called as ``provide(task, queue)`` at each enqueue; what they return joins the
        job's meta (tracing puts its context there, see ``taskward.observe.otel``)."""
        self.keyring: KeyRing | None = (
            KeyRing(self.settings.encryption_keys) if self.settings.encryption_keys else None
        )
        """The encryption keys (``encryption_keys``): sealed jobs are sealed and opened with
        them (``taskward.sealing``); None without keys."""
        self.builder = JobBuilder(registry=self.registry, owner=self)
        """Turns task references, arguments and options into validated jobs."""
        # Names a worker met without a task to run, each logged once (bounded, see _lookup).
        self._unknown_logged: set[str] = set()
        self._opened = False
        self._blocking_open_lock = threading.Lock()
        # Enqueues arriving while a commit is in flight share the next (taskward.commits).
        self._groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit] = (
            weakref.WeakKeyDictionary()
        )
        self._blocking_group: tuple[int, BlockingGroupCommit] | None = None
        self._open_lock: asyncio.Lock | None = None
        self.events = EventBus()
        """Hooks on job, queue and cron events (see :meth:`on`)."""
        self.recent_events = EventRecorder()
        """The latest events of this process: the live half of each job's audit trail."""
        # Every event but job.enqueued, which the row's inserted_at already tells: a bulk
        # enqueue then builds no event at all unless a hook of the user's (or metrics) asks.
        for name in sorted(EVENT_NAMES - {"job.enqueued"}):
            self.events.on(name, self.recent_events)

    def __repr__(self) -> str:
        return f"<TaskManager {self.backend.url}>"

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> TaskManager:
        """Connect to the backend and migrate it if configured (done lazily on first use)."""
        if self._opened:
            return self
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                try:
                    await self.backend.open()
                    if self.settings.migrate_on_start:
                        await self.backend.migrate()
                except BaseException:
                    # Failed or cancelled half-way (a worker task cancelled at start-up):
                    # close what was opened, or its connection or thread outlives the call.
                    # Not a backend passed in (another manager may use it), nor one a sync
                    # producer opened meanwhile.
                    if self._owns_backend and not self._opened:
                        with contextlib.suppress(Exception):
                            await asyncio.shield(self.backend.close())
                    raise
                self._opened = True
        return self

    async def close(self) -> None:
        """Release the backend (idempotent)."""
        await self._close_outcome_watcher()  # every loop's outcome waiters: told, not hung
        if self._opened:
            await self.backend.close()
            self._opened = False
            self._open_lock = None

    async def __aenter__(self) -> TaskManager:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _backend(self) -> Backend:
        if not self._opened:
            await self.open()
        return self.backend

    def on(self, name: str, hook: Hook) -> Hook:
        """Call ``hook(event)`` (sync or async) on each event ``name``, e.g. "job.failed".

        ``"*"`` subscribes to every event. A hook that raises is logged, never propagated.
        """
        return self.events.on(name, hook)

    @cached_property
    def sync(self) -> SyncTaskManager:
        """Blocking twins of every coroutine, for Django, Flask and scripts."""
        from taskward.sync import SyncTaskManager

        return SyncTaskManager(self)

    def run_sync(self, awaitable: Any) -> Any:
        """Run a coroutine of this manager on its loop thread and wait for the result."""
        return self.sync.portal.call(awaitable)

    # -- tasks -----------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        backoff: BackoffSpec = None,
        timeout: float | None = None,
        unique_for: float | None = None,
        sensitive: Sequence[str] = (),
        partition_key: Callable[..., str] | None = None,
        encrypted: bool = False,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        backoff: BackoffSpec = None,
        timeout: float | None = None,
        unique_for: float | None = None,
        sensitive: Sequence[str] = (),
        partition_key: Callable[..., str] | None = None,
        encrypted: bool = False,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: ``@tw.task`` or ``@tw.task(queue="emails", …)``.

        ``backoff`` is seconds between attempts, a callable ``attempt -> seconds``, a
        ``RetryPolicy``, or None for exponential backoff with jitter. ``sensitive`` names
        parameters (and dict keys at any depth of the arguments) whose values the API, the
        dashboard and the CLI show as ``"***"``; the job function still receives them.
        ``partition_key`` is a function called with each job's arguments at enqueue, as the
        task would be, returning the job's key in a partitioned queue (a ``str``); it wins
        over the queue's ``partition_by`` rule. A function that raises or returns something
        else fails that enqueue with ``InvalidOptions``: nothing is stored. ``encrypted``
        stores the jobs' arguments, results and error texts encrypted (the manager needs
        ``encryption_keys``; see ``taskward.sealing``).
        """
        options = TaskOptions(
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            timeout=timeout,
            unique_for=unique_for,
            sensitive=(sensitive,) if isinstance(sensitive, str) else tuple(sensitive),
            partition_key=partition_key,
            encrypted=encrypted,
        )
        policy = self.default_policy if backoff is None else policy_from(backoff)

        def register(f: Callable[P, R]) -> Task[P, R]:
            if not callable(f):
                raise InvalidOptions(f"@task needs a function, got {f!r}")
            task = Task(
                f, name=name or qualified_name(f), options=options, backoff=policy, manager=self
            )
            self.registry.add(task)
            return task

        return register(fn) if fn is not None else register

    def resolve_task(self, ref: TaskRef) -> Task[Any, Any]:
        """Return the Task to enqueue: a Task, a function, a registered name or ``module:function``.

        See :meth:`taskward.building.JobBuilder.resolve_task`.
        """
        return self.builder.resolve_task(ref)

    def _plain_task(self, fn: Callable[..., Any], name: str) -> Task[Any, Any]:
        return self.builder.plain_task(fn, name)

    def schedule_job(self, schedule: Schedule, fire_at: datetime) -> NewJob:
        """Return the job for one fire time of ``schedule`` (unique per name and fire time)."""
        return self.builder.schedule_job(schedule, fire_at)

    def runnable_task(self, name: str) -> Task[Any, Any] | None:
        """The task a worker of this manager runs for a job named ``name``, or None.

        Never imports what a stored name says (see :class:`~taskward.registry.TaskRegistry`).
        """
        return self.registry.runnable(name)

    def _lookup(self, name: str) -> Task[Any, Any] | None:
        try:
            task = self.registry.runnable(name)
        except Exception:  # an opted-in import by path that raised at import time
            logger.exception("looking up task %r failed", name)
            task = None
        if task is None and name not in self._unknown_logged:
            if len(self._unknown_logged) < 1000:  # a flood of forged names stays bounded
                self._unknown_logged.add(name)
            logger.warning(
                "job names task %r, which is not registered here: its jobs fail with "
                "UnknownTask (nothing is imported). Register it with @task, or declare its "
                "module in task_modules, then retry them.",
                name,
                extra={"task": name},
            )
        return task

    # -- produce ---------------------------------------------------------------------------
    async def enqueue_task(
        self,
        task: TaskRef,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """Enqueue one job; return it as stored (for a unique duplicate, the existing job)."""
        new = self.build_job(task, args, kwargs, **options)
        backend = await self._backend()
        if connection is not None and Capability.TRANSACTIONAL_ENQUEUE not in backend.capabilities:
            raise NotSupported(f"{backend.url} cannot enqueue inside the caller's transaction")
        if connection is None and new.unique_key is None and _commits(backend):
            inserted = await self._group_commit(backend).insert(new)
        else:
            (inserted,) = await backend.insert([new], now=self.clock.now(), connection=connection)
        _log_enqueued(inserted.job, inserted.duplicate)
        self._emit_enqueued([inserted])
        # job.wait() works on what we return; a sealed job comes back with its values opened
        return BoundJob.bind(self.unsealed(inserted.job), self)

    def enqueue_task_blocking(
        self,
        task: TaskRef,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """Blocking :meth:`enqueue_task`, for sync code (``manager.sync.enqueue_task``).

        On SQLite and PostgreSQL the insert runs in the calling thread (its own connection,
        or a thread-safe pool), without a round trip through the portal's event loop; other
        backends go through the portal. Same validation, result, log line and events.
        """
        backend = self.backend
        if Capability.BLOCKING_INSERT not in backend.capabilities:
            job: Job = self.run_sync(
                self.enqueue_task(task, args=args, kwargs=kwargs, connection=connection, **options)
            )
            return job
        new = self.build_job(task, args, kwargs, **options)  # bad input: nothing opened
        inserter = cast(BlockingInserter, backend)
        if not self._opened:
            self._open_blocking(inserter)
        if connection is None and new.unique_key is None:
            inserted = self._blocking_group_commit(inserter).insert(new)
        else:
            (inserted,) = inserter.insert_blocking(
                [new], now=self.clock.now(), connection=connection
            )
        _log_enqueued(inserted.job, inserted.duplicate)
        if self.events.wants("job.enqueued"):
            # On the portal's loop, as the async twin did: hooks never run in (or block) the
            # caller's thread, and coroutine hooks get a loop that lives on.
            try:
                self.sync.portal.call_soon(self._emit_enqueued, [inserted])
            except PortalClosed:  # after shutdown(): the job is stored, so never raise now
                self._emit_enqueued([inserted])
        # job.wait_sync() works on what we return; a sealed job's values come back opened
        return BoundJob.bind(self.unsealed(inserted.job), self)

    def _group_commit(self, backend: Backend) -> GroupCommit:
        """The group commit of the running loop (its futures belong to that loop)."""
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is None:
            group = self._groups[loop] = GroupCommit(
                lambda jobs: backend.insert(jobs, now=self.clock.now())
            )
        return group

    def _blocking_group_commit(self, inserter: BlockingInserter) -> BlockingGroupCommit:
        """The group commit of sync producers (every thread of this process)."""
        pid = os.getpid()
        group = self._blocking_group
        if group is None or group[0] != pid:
            with self._blocking_open_lock:
                group = self._blocking_group
                # A forked child starts a group of its own: the parent's may have been busy
                # (its leader is not in this process) when the fork happened.
                if group is None or group[0] != pid:
                    group = self._blocking_group = (
                        pid,
                        BlockingGroupCommit(
                            lambda jobs: inserter.insert_blocking(jobs, now=self.clock.now())
                        ),
                    )
        return group[1]

    @property
    def opened(self) -> bool:
        """True once :meth:`open` (or a sync producer's first call) connected the backend."""
        return self._opened

    def open_blocking(self) -> None:
        """Open from sync code: on SQLite and PostgreSQL, migrate from the calling thread."""
        if Capability.BLOCKING_INSERT in self.backend.capabilities:
            self._open_blocking(cast(BlockingInserter, self.backend))
        else:
            self.run_sync(self.open())

    def _open_blocking(self, inserter: BlockingInserter) -> None:
        """Open for a sync producer: migrate from this thread, start no loop nor async pool.

        The backend's async side opens lazily on its first use, as after :meth:`open`.
        """
        with self._blocking_open_lock:
            if not self._opened:
                if self.settings.migrate_on_start:
                    inserter.migrate_blocking()
                self._opened = True

    async def enqueue_many(
        self,
        task: TaskRef,
        calls: Iterable[Any],
        *,
        batch_size: int = 1000,
        connection: Any = None,
        **options: Any,
    ) -> list[Job]:
        """Enqueue many jobs of one task; bad input in any call stores none of them.

        Returns the jobs as stored, in call order, each one a job to ``wait()`` on (as
        :meth:`enqueue_task` returns).

        Each call is an args list/tuple, or an ``(args, kwargs)`` pair given as a 2-tuple whose
        second item is a dict. ``connection`` joins the caller's open transaction (PostgreSQL).

        On PostgreSQL, jobs without a unique key (and no ``connection``) go in one ``COPY``,
        one transaction: all or none. The server stores each chunk of 100 while the next is
        validated and built, so a very large call is one long statement (mind
        ``statement_timeout``; split such inputs into several calls). Elsewhere every call is
        validated first, then stored ``batch_size`` jobs per round trip.
        """
        template = self.builder.template(task, options)
        try:
            batch_size = operator.index(batch_size)
        except TypeError:
            raise InvalidOptions(f"batch_size must be an integer, got {batch_size!r}") from None
        if batch_size < 1:
            raise InvalidOptions(f"batch_size must be at least 1, got {batch_size}")
        if not isinstance(calls, list | tuple):
            calls = list(calls)  # slicing below; any iterable of calls is accepted

        if (
            connection is None
            and template.unique_window is None
            and not self.builder.keys_by_job(template)  # a stream carries no key per job
            and len(calls) > 1
            and Capability.STREAMED_INSERT in self.backend.capabilities
        ):

            def batch(start: int) -> NewJobBatch:
                return self.builder.batch(template, calls[start : start + STREAM_CHUNK])

            first = batch(0)  # bad input in it: nothing opened
            backend = await self._backend()
            rest = (batch(start) for start in range(STREAM_CHUNK, len(calls), STREAM_CHUNK))
            stored = await cast(StreamInserter, backend).insert_stream(
                itertools.chain([first], rest), count=len(calls), now=self.clock.now()
            )
            self._emit_enqueued((), stored)
            logger.info("enqueued %d job(s) in bulk", len(stored))
            # As enqueue_task's: job.wait() works, a sealed job's values come back opened.
            return [BoundJob.bind(self.unsealed(job), self) for job in stored]
        new_jobs = [self.builder.with_payload(template, *split_call(call)) for call in calls]
        # Bad input anywhere: raised above, nothing opened, nothing stored.
        backend = await self._backend()
        jobs: list[Job] = []
        for start in range(0, len(new_jobs), batch_size):
            inserted = await backend.insert(
                new_jobs[start : start + batch_size], now=self.clock.now(), connection=connection
            )
            jobs.extend(i.job for i in inserted)
            self._emit_enqueued(inserted)
        logger.info("enqueued %d job(s) in bulk", len(jobs))
        return [BoundJob.bind(self.unsealed(job), self) for job in jobs]

    async def schedule_task(
        self,
        task: TaskRef,
        *,
        at: datetime | float,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Enqueue a job to run at ``at``: an aware datetime, or seconds from now (>= 0)."""
        return await self.enqueue_task(task, args=args, kwargs=kwargs, at=at, **options)

    # -- running ---------------------------------------------------------------------------
    def make_worker(self, queues: Mapping[str, int] | None = None, **config: Any) -> Worker:
        """Build a worker for ``queues`` ({name: concurrency}); default ``{default_queue: 10}``."""
        self.registry.load_task_modules()  # a broken task module is reported now, once
        worker = Worker(
            self.backend,
            resolve=self._lookup,
            clock=self.clock,
            config=worker_config(self.settings, queues, **config),
            default_policy=self.default_policy,
            events=self.events,
            keyring=self.keyring,
        )
        # Logged at start, with a warning for the queues of registered tasks not served.
        worker.tasks_by_queue = tasks_by_queue(self.registry, self.settings.default_queue)
        return worker

    def _emit_enqueued(self, inserted: Sequence[Inserted], new: Sequence[Job] = ()) -> None:
        """Emit ``job.enqueued`` for the inserts that stored a new job, and for ``new``."""
        if self.events.wants("job.enqueued"):
            now = self.clock.now()
            for job in itertools.chain((i.job for i in inserted if not i.duplicate), new):
                self.events.emit(Event.for_job("job.enqueued", job, now))

    async def run_worker(
        self,
        queues: Mapping[str, int] | None = None,
        *,
        install_signal_handlers: bool = True,
        worker: Worker | None = None,
        wait_for_backend: float = 60.0,
    ) -> None:
        """Run a worker until SIGINT/SIGTERM or ``worker.stop()``, then shut down gracefully.

        A store that cannot be reached at start-up (a database still booting or restarting)
        is retried with backoff for up to ``wait_for_backend`` seconds, each failure logged
        with its reason, before :class:`BackendUnavailable` is raised (0: fail at once).
        """
        worker = worker or self.make_worker(queues)
        with stop_on_signals(worker, install_signal_handlers):
            if not await open_for(self.open, worker, wait_for_backend):
                return  # asked to stop while the store was still unreachable
            worker.services = maintenance_services(
                worker,
                self.settings,
                resolve=self._lookup,
                make_job=self.schedule_job,
                default_policy=self.default_policy,
                events=self.events,
                # overlap="cancel_running" asks for a cancel exactly as an operator does.
                cancel_job=lambda job_id, reason: self.cancel_task(job_id, reason=reason),
            )
            await worker.run()

    async def drain(
        self,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int | None = None,
        timeout: float | None = None,
        with_scheduled: bool = False,
    ) -> DrainResult:
        """Run jobs in-process until none is due in ``queues`` (default: every queue).

        ``concurrency=1`` runs one job at a time, strictly in priority order. With
        ``with_scheduled`` it also waits for scheduled and retryable jobs to come due.
        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        backend = await self._backend()
        names = list(queues) if queues is not None else sorted((await backend.stats()).counts)
        batch = concurrency or 10
        worker = self.make_worker(dict.fromkeys(names or [self.settings.default_queue], batch))
        async with asyncio.timeout(timeout):
            return await drain_jobs(
                worker, queues=names, batch=batch, with_scheduled=with_scheduled
            )


def _commits(backend: Backend) -> bool:
    """True for stores where a commit is worth sharing (durable ones: SQLite, PostgreSQL)."""
    return Capability.BLOCKING_INSERT in backend.capabilities


def _log_enqueued(job: Job, duplicate: bool) -> None:
    if logger.isEnabledFor(logging.INFO):
        verb = "already enqueued (unique)" if duplicate else "enqueued"
        logger.info(
            "job %s (%s) %s on queue %r",
            job.id,
            job.task,
            verb,
            job.queue,
            extra={"job_id": job.id, "task": job.task, "queue": job.queue},
        )
