"""Worker: fetch jobs per queue up to its concurrency, run them, acknowledge outcomes in batches.

A worker owns its running jobs through leases that its heartbeat extends. Outcomes go to an
:class:`Acker` that writes them in one ``finish`` call per batch; every write is fenced, so a
worker that lost a lease (it was paused, partitioned, presumed dead) cannot overwrite the
outcome of the rescued run: it learns it lost the job and logs that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any, cast

from taskward.backends.base import Backend, Capability, Dispatcher
from taskward.backoff import RetryPolicy
from taskward.clock import Clock
from taskward.encryption import EncryptionError, KeyRing
from taskward.jobs import Job, JobUpdate, WorkerInfo
from taskward.observe.events import EventBus, emit_outcome, emit_started
from taskward.runtime.acker import Acker
from taskward.runtime.context import JobContext
from taskward.runtime.executor import JobThread, execute
from taskward.runtime.holds import held_key, hold_queue
from taskward.runtime.inputs import with_inputs
from taskward.runtime.logs import log_outcome, log_start
from taskward.runtime.recycle import Recycler
from taskward.runtime.served import log_served_queues
from taskward.runtime.service import PeriodicService
from taskward.runtime.settings import DrainResult, WorkerConfig
from taskward.sealing import open_arguments, seal_update
from taskward.states import Cancelled, Failed, Outcome, Snoozed, next_update
from taskward.tasks import Task

logger = logging.getLogger(__name__)
FETCH_RETRY_SECONDS = 0.5
# With a backlog, wait up to this long for half the slots to be free so one claim fills them
# (a claim is a write transaction: fewer, fuller claims drain faster); idle queues never wait.
BATCH_GATHER_SECONDS = 0.002
# How long a worker whose offer was taken waits for that job's NOTIFY before looking the job
# up itself (the NOTIFY follows the producer's commit by milliseconds).
DISPATCH_ARRIVAL_SECONDS = 1.0
Resolve = Callable[[str], Task[Any, Any] | None]


class Worker:
    """Runs jobs from a backend until stopped (``run``) or until no job is due (``drain``)."""

    def __init__(
        self,
        backend: Backend,
        *,
        resolve: Resolve,
        clock: Clock,
        config: WorkerConfig,
        default_policy: RetryPolicy,
        services: list[PeriodicService] | None = None,
        events: EventBus | None = None,
        keyring: KeyRing | None = None,
    ) -> None:
        self.backend = backend
        self.keyring = keyring
        """Opens sealed jobs' arguments and seals their outcomes (``taskward.sealing``)."""
        self.events = events if events is not None else EventBus()
        self.resolve = resolve
        self.clock = clock
        self.config = config
        self.default_policy = default_policy
        self.services = services or []
        self.id = config.worker_id
        self.acker = Acker(backend, self.id)
        self.running: dict[int, tuple[asyncio.Task[Any], JobContext]] = {}
        """The current run of each job this worker holds, by job id (what the heartbeat keeps)."""
        self._runs: dict[asyncio.Task[None], JobContext] = {}  # every run, superseded ones too
        self._busy = dict.fromkeys(config.queues, 0)
        self._backlog = dict.fromkeys(config.queues, False)
        self._slot_freed = asyncio.Event()
        self._ack_needed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._waits: dict[str, asyncio.Future[None]] = {}  # queue loops idle in the backend's wait
        # Direct dispatch (PostgreSQL): jobs producers handed to this worker, by queue.
        self._dispatcher = (
            cast(Dispatcher, backend) if Capability.DISPATCH in backend.capabilities else None
        )
        self._taken = {queue: asyncio.Event() for queue in config.queues}  # offer consumed
        # Queues with an offer that may still stand, or whose job may still be on its way:
        # one slot stays reserved for it until _settle has settled it.
        self._unsettled: set[str] = set()
        self._settling: dict[str, asyncio.Task[None]] = {}  # a settle running beside the claim
        self._held: list[Job] = []  # dispatched while stopping: started by _shutdown
        # Dispatched jobs already started here (bounded): a NOTIFY arriving after its job was
        # adopted must not start it again.
        self._started_dispatch: dict[int, None] = {}
        self._accepting = True  # False once _shutdown is past starting held jobs
        self._acks_closed = False
        self._threads = ThreadPoolExecutor(
            max_workers=max(4, sum(config.queues.values())), thread_name_prefix="taskward-job"
        )
        self._started_at = clock.now()
        self.result = DrainResult()
        self.started = asyncio.Event()
        """Set once :meth:`run` has started its queue loops (a supervised child's readiness)."""
        self.tasks_by_queue: Mapping[str, Sequence[str]] = {}
        """The app's registered task names by queue, for the start-up log (set by who wires
        the worker: queues of tasks this worker does not serve are warned about)."""
        self.recycler: Recycler | None = None
        """Counts jobs against recycling limits; None: this worker never recycles."""
        self.recycled: str | None = None
        """Why this worker stopped to be recycled, if it did."""

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the worker to stop fetching and shut down gracefully (``reason`` is logged)."""
        if self._stopping.is_set() and self.recycled is not None and self._runs:
            # A stop while a recycle waits for its jobs: the operator's; they may be released.
            logger.info(
                "worker %s: %s while recycling; waiting up to %gs for %d running job(s)",
                self.id,
                reason,
                self.config.shutdown_timeout,
                len(self._runs),
            )
            self.recycled = None
        if not self._stopping.is_set():
            # Logged at once: the shutdown may wait for running jobs for a long while.
            if self._runs:
                logger.info(
                    "worker %s: %s; claiming no more jobs, waiting up to %gs for %d running "
                    "job(s) before releasing them",
                    self.id,
                    reason,
                    self.config.shutdown_timeout,
                    len(self._runs),
                )
            else:
                logger.info("worker %s: %s; no job is running", self.id, reason)
        self._stopping.set()
        self._interrupt_waits()

    def _interrupt_waits(self) -> None:
        # A queue loop idle in the backend's wait stops now, not after a poll interval.
        for waiting in self._waits.values():
            waiting.cancel()

    async def wait_stopped(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :meth:`stop`; True if it was asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout)
        return self._stopping.is_set()

    def close(self) -> None:
        """Release the thread pool of sync jobs (a thread stuck past its timeout is left)."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- running forever -------------------------------------------------------------------
    async def run(self) -> None:
        """Work until :meth:`stop`; then finish or release running jobs."""
        logger.info("worker %s started on queues %s", self.id, dict(self.config.queues))
        log_served_queues(self.id, self.config.queues, self.tasks_by_queue)
        heartbeat = HeartbeatService(self)
        for service in [heartbeat, *self.services]:
            service.start()
        acker = asyncio.create_task(self._ack_loop(), name="taskward-acker")
        loops = [
            asyncio.create_task(self._queue_loop(q, n), name=f"taskward-fetch-{q}")
            for q, n in self.config.queues.items()
        ]
        self.started.set()
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown(loops, acker, [heartbeat, *self.services])

    async def _shutdown(
        self,
        loops: list[asyncio.Task[None]],
        acker: asyncio.Task[None],
        services: list[PeriodicService],
    ) -> None:
        self._stopping.set()
        self._interrupt_waits()
        self._slot_freed.set()
        try:
            await asyncio.gather(*loops, return_exceptions=True)
            await asyncio.gather(*self._settling.values(), return_exceptions=True)
            held, self._held, self._accepting = self._held, [], False
            for job in held:  # dispatched while stopping: finished or released like the rest
                self._start_dispatched(job)
            await self._finish_running(self.config.shutdown_timeout)
            self._acks_closed = True
            self._ack_needed.set()
            await asyncio.gather(acker, return_exceptions=True)
            await self.acker.flush()
        finally:
            # Even if the last outcomes could not be written: a heartbeat left running would
            # keep this worker looking alive and its jobs leased forever.
            try:
                for service in services:
                    await service.stop()
                await self.backend.remove_worker(self.id)
            finally:
                self.close()
        logger.info("worker %s stopped", self.id)

    async def _finish_running(self, timeout: float) -> None:
        # A recycle lets every running job end by itself ("finishes its running jobs first"):
        # cut short and released, a job that grows past a memory limit would be run again by
        # the next process, and again, never spending an attempt. A stop asked meanwhile (an
        # operator's SIGTERM) ends this wait; the shutdown timeout applies from then on.
        while self._runs and self.recycled is not None:
            await asyncio.wait(list(self._runs), timeout=0.5)
        if not self._runs:
            return
        _, late = await asyncio.wait(list(self._runs), timeout=timeout)
        if not late:
            return
        logger.warning(
            "worker %s: %d job(s) still running after the %gs shutdown timeout: cancelling them "
            "(each is released, or left leased while its thread cannot be stopped)",
            self.id,
            len(late),
            timeout,
        )
        try:
            # One last look for cancel requests: a job an operator cancelled is cancelled,
            # never released to run again.
            await self.heartbeat()
        except Exception:
            logger.warning("last heartbeat before releasing jobs failed", exc_info=True)
        for task in late:
            ctx = self._runs.get(task)
            if ctx is None or not ctx.cancelled:  # else the heartbeat cancelled it already
                task.cancel()  # _job_done gives each its outcome (released, as a rule)
        await asyncio.gather(*late, return_exceptions=True)

    async def _queue_loop(self, queue: str, concurrency: int) -> None:
        while not self._stopping.is_set():
            try:
                await self._queue_round(queue, concurrency)
            except Exception:
                # A fetch loop that died would stop its queue silently: log and go on.
                logger.exception("queue %r: fetching failed; retrying", queue)
                # Not a whole poll interval: a store that comes back should be used at once.
                pause = min(self.config.poll_interval, FETCH_RETRY_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)

    async def _queue_round(self, queue: str, concurrency: int) -> None:
        """Fill the queue's free slots; wait for a slot or for new jobs when none is to be had."""
        settling = self._settling.get(queue)
        if queue in self._unsettled and (settling is None or settling.done()):
            await self._settle(queue)  # an offer left by an error: settle it before claiming
        free = self._free(queue, concurrency)
        if free <= 0 or (self.recycler is not None and self.recycler.exhausted):
            self._slot_freed.clear()
            await self._slot_freed.wait()
            return
        if self._backlog[queue] and free < concurrency // 2:
            free = await self._gather_slots(queue, concurrency)
        jobs = await self._claim(queue, free)
        self._backlog[queue] = len(jobs) == free
        for job in jobs:
            self.start_job(job)
        if len(jobs) < free and not self._stopping.is_set():
            await self._idle(queue)

    async def _claim(self, queue: str, free: int) -> list[Job]:
        """Claim up to ``free`` jobs of ``queue``, and no more than the job budget leaves."""
        if self.recycler is None:
            return await self.fetch(queue, free)
        granted = self.recycler.reserve(free)
        jobs: list[Job] = []
        try:
            if granted:
                jobs = await self.fetch(queue, granted)
            return jobs
        finally:
            self.recycler.release(granted)  # the jobs it brought count as started instead
            if len(jobs) < granted:
                self._slot_freed.set()  # budget back: a loop waiting for it may claim

    def _free(self, queue: str, concurrency: int) -> int:
        """Slots of ``queue`` a claim may fill: an offer being settled may bring a job."""
        return concurrency - self._busy[queue] - int(queue in self._unsettled)

    async def _idle(self, queue: str) -> None:
        """Wait for new jobs; where the store dispatches, offer it one slot first.

        A producer that takes the offer stores its job already claimed by this worker, and
        the store hands it over (:meth:`_receive`), which starts it: no claim round trip.
        After the wait the offer is settled (:meth:`_settle`).
        """
        offered = False
        settling = self._settling.pop(queue, None)
        if settling is not None:
            await asyncio.wait({settling})  # one offer at a time; a failed one stays unsettled
        spent = self.recycler is not None and self.recycler.exhausted
        if self._dispatcher is not None and queue not in self._unsettled and not spent:
            self._taken[queue].clear()
            self._unsettled.add(queue)  # before the offer: it may commit, then fail to answer
            offered = await self._dispatcher.offer(
                worker_id=self.id,
                queue=queue,
                lease_seconds=self.config.lease_seconds,
                now=self.clock.now(),
                receive=self._receive,
            )
            if not offered:
                self._unsettled.discard(queue)
        await self._wait_for_jobs(queue)
        if offered:
            # Beside the next claim, not before it: a job that was not dispatched (the wake-up
            # came from a NOTIFY) is claimed as soon as it would have been without offers.
            settling = asyncio.create_task(self._settle(queue), name=f"taskward-settle-{queue}")
            settling.add_done_callback(self._settled)
            self._settling[queue] = settling

    async def _settle(self, queue: str) -> None:
        """Take this queue's offer back; if a producer took it, make sure its job runs here.

        The withdrawal waits for the commit of a producer holding the offer, after which its
        NOTIFY is sent: the job normally arrives within milliseconds. One that does not (its
        NOTIFY lost with the LISTEN connection, or too large to send) is looked up and run.
        Until then the slot stays reserved, so a claim never fills it twice.
        """
        assert self._dispatcher is not None
        taken = self._taken[queue]
        if not taken.is_set():
            if await self._dispatcher.withdraw(worker_id=self.id, queue=queue):
                self._unsettled.discard(queue)
                return  # nobody took it
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(taken.wait(), DISPATCH_ARRIVAL_SECONDS)
        if not taken.is_set():
            # Known: running here, or finished with the outcome not yet written (its row
            # still says running): neither may run again.
            lost = await self._dispatcher.dispatched_to(
                worker_id=self.id, queue=queue, known=[*self.running, *self.acker.held]
            )
            for job in lost:
                if job.id in self.running or job.id in self._started_dispatch:
                    continue  # its NOTIFY came during the lookup after all
                logger.warning("job %s: dispatched here without its NOTIFY; adopted", job.id)
                self._start_dispatched(job)
        self._unsettled.discard(queue)

    def _settled(self, task: asyncio.Task[None]) -> None:
        """A background settle ended: its reserved slot may be free (a failure is retried)."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("taking back a dispatch offer failed (%s); retrying", exc)
        self._slot_freed.set()

    def _start_dispatched(self, job: Job) -> None:
        """Start a job dispatched to this worker, remembering it (the newest 1,024)."""
        self._started_dispatch[job.id] = None
        if len(self._started_dispatch) > 1024:
            del self._started_dispatch[next(iter(self._started_dispatch))]
        self.start_job(job)

    def _receive(self, job: Job) -> None:
        """Start a job a producer dispatched to this worker (called by the store, on the loop)."""
        if job.id in self._started_dispatch or job.id in self.running:
            return  # adopted already (its NOTIFY came late): not this offer's job either
        if job.queue in self._taken:
            self._taken[job.queue].set()
        if not self._accepting:
            logger.warning("job %s: dispatched as this worker stopped; it runs again when its "
                        "lease expires", job.id)  # fmt: skip
            return
        if self._stopping.is_set():
            self._held.append(job)
            return
        logger.debug("job %s: dispatched to this worker", job.id)
        self._start_dispatched(job)
        waiting = self._waits.get(job.queue)
        if waiting is not None:
            waiting.cancel()  # the queue loop takes its offer back and offers again

    async def _gather_slots(self, queue: str, concurrency: int) -> int:
        """Wait briefly for half the queue's slots to be free; return how many are."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BATCH_GATHER_SECONDS
        while (free := self._free(queue, concurrency)) < concurrency // 2:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._stopping.is_set():
                break
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), remaining)
        return free

    async def _wait_for_jobs(self, queue: str) -> None:
        """Wait for new jobs in ``queue``, or for :meth:`stop` (which must not wait a poll).

        The wait is one task that :meth:`stop` cancels, not a race of the wait against the
        stop event: that race cost each wake-up several more loop turns (about 0.08 ms of an
        idle worker's start latency on PostgreSQL).
        """
        if self._stopping.is_set():
            return
        waiting = asyncio.ensure_future(
            self.backend.wait_for_jobs([queue], timeout=self.config.poll_interval)
        )
        self._waits[queue] = waiting
        try:
            await waiting
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not waiting.cancelled() or (current is not None and current.cancelling()):
                raise  # this loop itself is being cancelled, not just its wait
        finally:
            del self._waits[queue]
            waiting.cancel()

    async def fetch(self, queue: str, limit: int) -> list[Job]:
        """Claim up to ``limit`` jobs of ``queue`` for this worker."""
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.config.lease_seconds)
        return await self.backend.fetch(
            queue=queue, limit=limit, worker_id=self.id, now=now, lease_until=lease_until
        )

    def start_job(self, job: Job) -> asyncio.Task[None]:
        """Run a claimed job in its own task, holding a slot of its queue until it ends."""
        self._busy[job.queue] = self._busy.get(job.queue, 0) + 1
        if self.recycler is not None:
            self.recycler.job_started()
        ctx = self.context_for(job)
        thread = JobThread(self._threads)
        task = asyncio.create_task(self._run_job(job, ctx, thread), name=f"taskward-job-{job.id}")
        self.running[job.id] = (task, ctx)
        self._runs[task] = ctx
        # A done-callback, not a `finally`: a task cancelled before its first step (a heartbeat
        # cancel right after this) never runs its body, but its callbacks always run.
        task.add_done_callback(partial(self._job_done, job, ctx, thread))
        return task

    def context_for(self, job: Job) -> JobContext:
        """Return the JobContext handed to ``job``'s function."""
        return JobContext(job, partial(self._report_progress, job.id))

    async def _report_progress(self, job_id: int, progress: Any) -> bool:
        return await self.backend.set_progress(job_id, progress, worker_id=self.id)

    async def _run_job(self, job: Job, ctx: JobContext, thread: JobThread) -> None:
        self._ack(await self.run_one(job, ctx, threads=thread))

    def _ack(self, update: JobUpdate) -> None:
        self.acker.add(update)
        self._ack_needed.set()

    def _job_done(
        self, job: Job, ctx: JobContext, thread: JobThread, task: asyncio.Task[None]
    ) -> None:
        """Free the job's slot and entry; give a job whose task was cancelled its outcome."""
        del self._runs[task]
        if self.running.get(job.id, (None, None))[0] is task:
            del self.running[job.id]  # only this run's entry: a newer run may own the job now
        self._busy[job.queue] -= 1
        self._slot_freed.set()
        if task.cancelled():
            outcome = self._interrupted_outcome(job, ctx, thread)
            if outcome is not None:
                update = next_update(job, outcome, self.clock.now(), self.default_policy)
                self.result.add(update.state)
                emit_outcome(self.events, job, update, None)
                self._ack(update)
        elif (exc := task.exception()) is not None:
            logger.error(
                "job %s: no outcome could be computed; it is rescued when its lease expires",
                job.id,
                exc_info=exc,
                extra={"job_id": job.id},
            )
        if self.recycler is not None:
            self._recycle_if(self.recycler.job_ended())

    def _recycle_if(self, reason: str | None) -> None:
        """Stop to be recycled, for ``reason``, unless there is none or a stop came first."""
        if reason is not None and not self._stopping.is_set():
            self.recycled = reason
            self.stop(f"recycling: {reason}")

    def _interrupted_outcome(self, job: Job, ctx: JobContext, thread: JobThread) -> Outcome | None:
        """The outcome of a job whose task was cancelled: None leaves it running, leased."""
        if ctx.cancelled:  # the heartbeat cancelled it before its first step could see it
            return Cancelled(reason="cancelled by an operator while running")
        if thread.running:
            # Its thread cannot be stopped: handing the job back now would run it twice at once.
            logger.warning(
                "job %s: interrupted while its thread still runs; left leased to this worker "
                "(rescued once the lease expires)",
                job.id,
                extra={"job_id": job.id},
            )
            return None
        # Shutdown or a drain timeout: hand it back with its attempt refunded.
        logger.warning("job %s did not finish before shutdown: released", job.id)
        return Snoozed(seconds=0)

    async def run_one(
        self, job: Job, ctx: JobContext, *, threads: Executor | None = None
    ) -> JobUpdate:
        """Execute one claimed job and return the outcome to write (logs start and end).

        ``threads`` runs a sync job (default: the worker's pool).
        """
        task = self.resolve(job.task)
        unreadable: Failed | None = None
        try:
            # Opened first, so the logs and hooks of this process see the run's clear values.
            opened = open_arguments(self.keyring, job)
        except (EncryptionError, ValueError) as exc:
            # Never run a job with arguments it cannot read; no retry helps before the keys
            # are fixed (an operator retries it then).
            message = f"cannot open the job's encrypted arguments: {exc}"
            unreadable = Failed(kind="EncryptionError", message=message, retry=False)
            opened = job
        log_start(opened)
        emit_started(self.events, opened, self.clock)
        started = self.clock.monotonic()
        outcome: Outcome
        if unreadable is not None:
            outcome = unreadable
        else:
            ctx.job = opened
            try:
                given = (
                    await with_inputs(self.backend, opened, self.keyring)
                    if task is not None
                    else opened
                )
            except EncryptionError as exc:  # a dependency's result no key here opens
                message = f"cannot open a dependency's encrypted result: {exc}"
                outcome = Failed(kind="EncryptionError", message=message, retry=False)
            except Exception as exc:  # the store could not be read: a later attempt may
                message = f"reading the step's inputs: {exc}"
                outcome = Failed(kind=type(exc).__name__, message=message)
            else:
                outcome = await execute(
                    given,
                    task,
                    ctx,
                    default_timeout=self.config.default_timeout,
                    threads=self._threads if threads is None else threads,
                )
        policy = task.backoff if task is not None else self.default_policy
        update = next_update(job, outcome, self.clock.now(), policy)
        if isinstance(outcome, Snoozed) and outcome.hold_queue and update.scheduled_at:
            key = await held_key(self.backend, job, whole_queue=outcome.whole_queue)
            await hold_queue(self.backend, self.events, self.clock, job, update.scheduled_at, key)
        log_outcome(opened, update, self.clock.monotonic() - started)
        self.result.add(update.state)
        emit_outcome(self.events, opened, update, self.clock.monotonic() - started)
        if isinstance(outcome, Failed) and outcome.kind == "EncryptionError":
            # It holds none of the job's values, and sealing it with keys that could not open
            # the job would hide the reason from the operators who hold the right key.
            return update
        # Sealed only as it goes to the store: hooks and logs of this process see the clear
        # outcome, as they saw the clear arguments.
        return seal_update(self.keyring, job, update)

    async def _ack_loop(self) -> None:
        while not self._acks_closed:
            await self._ack_needed.wait()
            self._ack_needed.clear()
            try:
                await self.acker.flush()
            except Exception:
                logger.exception("writing job outcomes failed; will retry")
                await asyncio.sleep(self.config.poll_interval)
                self._ack_needed.set()

    # -- heartbeat -------------------------------------------------------------------------
    async def heartbeat(self) -> None:
        """Extend leases of running jobs, act on cancel requests, record liveness."""
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.config.lease_seconds)
        # A job whose outcome waits in the Acker (the store is slow or refusing writes) stays
        # leased too: its worker holds the outcome, so it must not be rescued and run again.
        acking = self.acker.held - self.running.keys()
        if self.running or acking:
            asked = {job_id: task for job_id, (task, _) in self.running.items()}
            report = await self.backend.extend_leases(
                [*asked, *acking], worker_id=self.id, lease_until=lease_until
            )
            for job_id in report.lost:
                # A run that ended while this heartbeat was in flight wrote its own outcome:
                # the store no longer holding it as running is no lost lease.
                if job_id in asked and self.running.get(job_id, (None, None))[0] is asked[job_id]:
                    logger.warning("job %s: lease lost (rescued elsewhere?)", job_id)
            for job_id in report.cancel_requested:
                if job_id in self.running:
                    task, ctx = self.running[job_id]
                    ctx.request_cancel()
                    task.cancel()
        await self.backend.record_worker(self.info())
        if self.recycler is not None:  # memory may grow while no job ends (a long job)
            self._recycle_if(self.recycler.memory_reached())

    def info(self) -> WorkerInfo:
        """Return the liveness record of this worker."""
        host, _, _ = self.id.partition(":")
        return WorkerInfo(
            id=self.id,
            hostname=host,
            pid=os.getpid(),
            queues=dict(self.config.queues),
            started_at=self._started_at,
            heartbeat_at=self.clock.now(),
            running=len(self.running),
        )


class HeartbeatService(PeriodicService):
    """Calls :meth:`Worker.heartbeat` three times per lease period."""

    name = "heartbeat"

    def __init__(self, worker: Worker) -> None:
        super().__init__(max(0.05, worker.config.lease_seconds / 3))
        self.worker = worker

    async def run_once(self) -> None:
        """One heartbeat."""
        await self.worker.heartbeat()
