"""Hardening: bad input, broken policies, unstorable text and interrupted runs end cleanly.

Each test started as a review finding (a job stuck in ``running``, a poisoned outcome batch,
a stranded sync caller…); each now pins the correct behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskward import FrozenClock, JobContext, JobState, TaskManager
from taskward.backends.memory import MemoryBackend
from taskward.errors import (
    BackendUnavailable,
    InvalidOptions,
    NotSerializable,
    PortalClosed,
    Snooze,
)
from taskward.jobs import MAX_DELAY_SECONDS, JobUpdate
from taskward.runtime.acker import Acker
from taskward.runtime.maintenance import Rescuer, Stager
from taskward.settings import Settings
from taskward.states import Completed, Failed, next_update

LEASE = 5.0


def _rescuer(tw: TaskManager, clock: FrozenClock) -> Rescuer:
    return Rescuer(
        tw.backend,
        clock,
        1.0,
        leadership=None,
        resolve=tw._lookup,
        default_policy=tw.default_policy,
    )


async def _claim(tw: TaskManager, clock: FrozenClock, worker_id: str, limit: int = 10) -> list[Any]:
    now = clock.now()
    return await tw.backend.fetch(
        queue="default",
        limit=limit,
        worker_id=worker_id,
        now=now,
        lease_until=now + timedelta(seconds=LEASE),
    )


async def _spin(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# -- 1. Outcomes the store cannot take never poison the Acker ---------------------------------


async def test_error_text_with_a_lone_surrogate_is_stored_escaped(tmp_path: Path) -> None:
    """An exception message holding a lone surrogate (e.g. f"cannot parse {path}" where path
    came from os.listdir on a non-UTF-8 name) cannot be encoded as UTF-8. next_update escapes
    it (``\\udcff``), so SQLite stores the outcome and every later outcome of the same Acker
    is written too."""
    clock = FrozenClock()
    async with TaskManager(f"sqlite:///{tmp_path}/jobs.db", clock=clock) as tw:

        @tw.task
        async def work() -> None: ...

        bad_job, good_job = await work.enqueue(), await work.enqueue()
        bad, good = await _claim(tw, clock, "w1")
        acker = Acker(tw.backend, "w1")
        acker.add(
            next_update(
                bad,
                Failed(kind="FileNotFoundError", message="no such file: '/data/\udcff.csv'"),
                clock.now(),
                tw.default_policy,
            )
        )
        with contextlib.suppress(Exception):
            await acker.flush()
        acker.add(next_update(good, Completed(result=1), clock.now(), tw.default_policy))
        with contextlib.suppress(Exception):
            await acker.flush()
        assert (await tw.get_task_status(good_job.id)).state is JobState.COMPLETED
        stored = await tw.get_task_status(bad_job.id)
        assert stored.state is JobState.RETRYABLE
        assert stored.last_error is not None
        assert stored.last_error.message == "no such file: '/data/\\udcff.csv'"


class _RefusesJob(MemoryBackend):
    """Refuses (with a data error, not an outage) any batch holding one given job's outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.poisoned: int | None = None
        self.down = False

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        if self.down:
            raise BackendUnavailable("database went away")
        if any(u.job_id == self.poisoned for u in updates):
            raise ValueError("this row cannot be stored")
        return await super().finish(updates, worker_id=worker_id)


async def _two_claimed(clock: FrozenClock) -> tuple[TaskManager, _RefusesJob, list[Any]]:
    backend = _RefusesJob()
    tw = TaskManager(backend=backend, clock=clock)

    @tw.task
    async def work() -> None: ...

    await work.enqueue()
    await work.enqueue()
    return tw, backend, await _claim(tw, clock, "w1")


async def test_acker_writes_the_rest_of_a_batch_when_the_store_refuses_one_outcome() -> None:
    """The refused outcome is dropped (logged); its job stays running until the Rescuer gives
    it one, while every other outcome of the batch is written."""
    clock = FrozenClock()
    tw, backend, (bad, good) = await _two_claimed(clock)
    backend.poisoned = bad.id
    acker = Acker(backend, "w1")
    for job in (bad, good):
        acker.add(next_update(job, Completed(result=1), clock.now(), tw.default_policy))
    await acker.flush()
    assert (await backend.get(good.id)).state is JobState.COMPLETED
    assert (await backend.get(bad.id)).state is JobState.RUNNING
    await acker.flush()  # nothing is left to retry
    assert acker._pending == []


async def test_acker_keeps_outcomes_when_every_row_fails_or_the_store_is_down() -> None:
    """When no row can be written the store is at fault, not a row: nothing is dropped."""
    clock = FrozenClock()
    tw, backend, (bad, good) = await _two_claimed(clock)
    acker = Acker(backend, "w1")
    backend.poisoned = bad.id
    acker.add(next_update(bad, Completed(result=1), clock.now(), tw.default_policy))
    with pytest.raises(ValueError, match="cannot be stored"):
        await acker.flush()
    backend.poisoned, backend.down = None, True
    acker.add(next_update(good, Completed(result=2), clock.now(), tw.default_policy))
    with pytest.raises(BackendUnavailable):
        await acker.flush()
    backend.down = False
    await acker.flush()
    assert (await backend.get(bad.id)).state is JobState.COMPLETED
    assert (await backend.get(good.id)).state is JobState.COMPLETED


# -- 2. Delays and retry policies never leave a job in running --------------------------------


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1.0])
async def test_a_snooze_delay_that_is_not_a_finite_number_fails_the_attempt(
    seconds: float,
) -> None:
    """Snooze(NaN / inf / negative) is refused when raised: the attempt fails with
    InvalidOptions and the job is retried, instead of being stranded in running."""
    async with TaskManager("memory://", clock=FrozenClock()) as tw:

        @tw.task
        async def sleepy() -> None:
            raise Snooze(seconds)

        job = await sleepy.enqueue()
        await tw.drain()
        after = await tw.get_task_status(job.id)
        assert after.state is JobState.RETRYABLE
        assert after.last_error is not None
        assert after.last_error.kind == "InvalidOptions"


async def test_a_huge_snooze_delay_is_capped() -> None:
    """A finite delay beyond MAX_DELAY_SECONDS (100 years) is capped to it."""
    clock = FrozenClock()
    async with TaskManager("memory://", clock=clock) as tw:

        @tw.task
        async def sleepy() -> None:
            raise Snooze(1e12)

        job = await sleepy.enqueue()
        await tw.drain()
        after = await tw.get_task_status(job.id)
        assert after.state is JobState.SCHEDULED
        assert after.scheduled_at == clock.now() + timedelta(seconds=MAX_DELAY_SECONDS)


async def test_a_retry_policy_that_raises_fails_the_job_with_the_reason() -> None:
    """The function already ran; a backoff function answering NaN must not strand the job:
    it becomes a dead letter that says why it was not retried."""
    async with TaskManager("memory://", clock=FrozenClock()) as tw:

        @tw.task(backoff=lambda attempt: math.nan)
        async def broken() -> None:
            raise RuntimeError("boom")

        job = await broken.enqueue()
        await tw.drain()
        after = await tw.get_task_status(job.id)
        assert after.state is JobState.FAILED
        assert after.last_error is not None
        assert after.last_error.kind == "RuntimeError"
        assert "not retried: the retry policy raised InvalidOptions" in after.last_error.message


async def test_a_huge_backoff_is_capped_and_rescue_goes_on() -> None:
    """A ConstantBackoff of 1e12 s is capped to MAX_DELAY_SECONDS when the rescue computes the
    next attempt, so that job and every later orphan are rescued."""
    clock = FrozenClock()
    async with TaskManager("memory://", clock=clock, lease_seconds=LEASE) as tw:

        @tw.task(backoff=1e12)
        async def patient() -> None: ...

        @tw.task
        async def ordinary() -> None: ...

        slow = await patient.enqueue()
        victim = await ordinary.enqueue()
        await _claim(tw, clock, "dead-worker")
        clock.advance(LEASE * 2)
        await _rescuer(tw, clock).run_once()
        assert (await tw.get_task_status(slow.id)).state is JobState.RETRYABLE
        assert (await tw.get_task_status(victim.id)).state is JobState.RETRYABLE


class _FinishRefuses(MemoryBackend):
    refused: int | None = None

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        if any(u.job_id == self.refused for u in updates):
            raise ValueError("this row cannot be stored")
        return await super().finish(updates, worker_id=worker_id)


async def test_the_rescuer_goes_on_past_a_job_it_cannot_rescue() -> None:
    """One job whose rescue fails is logged and tried again next round; later orphans are
    still rescued in this round."""
    clock = FrozenClock()
    backend = _FinishRefuses()
    async with TaskManager(backend=backend, clock=clock, lease_seconds=LEASE) as tw:

        @tw.task
        async def work() -> None: ...

        stuck, victim = await work.enqueue(), await work.enqueue()
        backend.refused = stuck.id
        await _claim(tw, clock, "dead-worker")
        clock.advance(LEASE * 2)
        await _rescuer(tw, clock).run_once()
        assert (await tw.get_task_status(stuck.id)).state is JobState.RUNNING
        assert (await tw.get_task_status(victim.id)).state is JobState.RETRYABLE
        backend.refused = None
        await _rescuer(tw, clock).run_once()
        assert (await tw.get_task_status(stuck.id)).state is JobState.RETRYABLE


# -- 3. An operator's cancel survives rescue and shutdown -------------------------------------


async def test_rescue_of_a_job_an_operator_asked_to_cancel_cancels_it(manager_url: str) -> None:
    """cancel_task on a running job only sets cancel_requested. If its worker is dead, the
    Rescuer honours the request: the job ends cancelled and never runs again."""
    clock = FrozenClock()
    async with TaskManager(manager_url, clock=clock, lease_seconds=LEASE) as tw:

        @tw.task
        async def work() -> None: ...

        job = await work.enqueue()
        await _claim(tw, clock, "dead-worker")
        assert (await tw.cancel_task(job.id)).cancel_requested
        clock.advance(LEASE * 2)
        await _rescuer(tw, clock).run_once()
        after = await tw.get_task_status(job.id)
        assert after.state is JobState.CANCELLED
        assert after.attempt == 1


async def test_shutdown_cancels_rather_than_releases_a_job_an_operator_cancelled() -> None:
    """A cancel requested since the last heartbeat is seen by one last heartbeat before the
    worker releases its unfinished jobs at shutdown: that job ends cancelled."""
    async with TaskManager(
        "memory://", poll_interval=0.05, lease_seconds=60, shutdown_timeout=0.1
    ) as tw:
        started = asyncio.Event()

        @tw.task
        async def forever() -> None:
            started.set()
            await asyncio.Event().wait()

        worker = tw.make_worker({"default": 1})
        runner = asyncio.create_task(worker.run())
        job = await forever.enqueue()
        await asyncio.wait_for(started.wait(), 10)
        await tw.cancel_task(job.id)  # the next regular heartbeat is 20 s away
        worker.stop()
        await asyncio.wait_for(runner, 10)
        assert (await tw.get_task_status(job.id)).state is JobState.CANCELLED


# -- 4. Worker bookkeeping: one entry per run, cleaned up however the run ends ----------------


async def test_a_heartbeat_cancel_before_the_job_task_starts_frees_its_slot() -> None:
    """Worker.heartbeat may cancel a job task that has not taken its first step (memory
    backend: extend_leases returns without suspending). The task's done-callback still frees
    the queue slot and the running entry, and the job ends cancelled."""
    clock = FrozenClock()
    async with TaskManager("memory://", clock=clock, lease_seconds=LEASE) as tw:

        @tw.task
        async def work() -> int:
            return 1

        job = await work.enqueue()
        worker = tw.make_worker({"default": 1})
        try:
            (claimed,) = await worker.fetch("default", 1)
            await tw.cancel_task(job.id)  # operator cancels while it is running
            worker.start_job(claimed)
            await worker.heartbeat()  # same loop iteration as start_job
            await _spin()
            await worker.acker.flush()
            assert worker._busy["default"] == 0, "queue slot leaked"
            assert job.id not in worker.running, "running entry leaked (lease extended forever)"
            assert (await tw.get_task_status(job.id)).state is JobState.CANCELLED
        finally:
            for task, _ in list(worker.running.values()):
                task.cancel()
            worker.close()


async def test_an_old_run_finishing_keeps_the_new_run_of_the_same_job_registered() -> None:
    """If a worker's run of a job is rescued (heartbeat stalled past the lease) and the same
    worker fetches the job again while the old run is still going, the old run ending
    unregisters only itself: the new run stays heartbeated and is not rescued."""
    clock = FrozenClock()
    async with TaskManager("memory://", clock=clock, lease_seconds=LEASE) as tw:
        gates = {1: asyncio.Event(), 2: asyncio.Event()}

        @tw.task(backoff=0)
        async def work(ctx: JobContext) -> None:
            await gates[ctx.attempt].wait()

        job = await work.enqueue()
        worker = tw.make_worker({"default": 2})
        try:
            (first,) = await worker.fetch("default", 1)
            worker.start_job(first)
            await _spin()
            clock.advance(LEASE * 2)  # the heartbeat stalled (loop blocked, DB locked…)
            await _rescuer(tw, clock).run_once()
            await tw.backend.promote_due(now=clock.now())
            (second,) = await worker.fetch("default", 1)
            assert second.attempt == 2
            worker.start_job(second)
            await _spin()
            gates[1].set()  # the old run ends
            await _spin()
            # The new run is alive and this worker heartbeats it...
            await worker.heartbeat()
            clock.advance(LEASE * 0.9)
            await worker.heartbeat()
            clock.advance(LEASE * 0.9)
            await _rescuer(tw, clock).run_once()
            # ...so it must not be rescued from under it.
            assert (await tw.get_task_status(job.id)).state is JobState.RUNNING
        finally:
            gates[2].set()
            await _spin()
            worker.close()


# -- 5. Shutdown and drain paths hand jobs back exactly once ----------------------------------


async def test_drain_timeout_releases_interrupted_jobs() -> None:
    """TaskManager.drain(timeout=…) releases the jobs it interrupts, as Worker shutdown does:
    back to scheduled with the interrupted attempt refunded, not left running until the
    Rescuer counts an attempt and records 'Orphaned'."""
    async with TaskManager("memory://", lease_seconds=30) as tw:

        @tw.task(max_attempts=1)
        async def hang() -> None:
            await asyncio.Event().wait()

        job = await hang.enqueue()
        with pytest.raises(TimeoutError):
            await tw.drain(timeout=0.1)
        after = await tw.get_task_status(job.id)
        assert after.state is JobState.SCHEDULED
        assert after.attempt == 0  # interrupted attempt refunded, as at worker shutdown


async def test_shutdown_leaves_a_sync_job_whose_thread_still_runs_leased() -> None:
    """A sync job's thread cannot be stopped, so shutdown does not hand its job back to the
    queue while the function still executes (two concurrent runs): the job stays running,
    leased to this worker, and is rescued only if that lease expires."""
    async with TaskManager("memory://", poll_interval=0.05, shutdown_timeout=0.1) as tw:
        started, release, finished = threading.Event(), threading.Event(), threading.Event()

        @tw.task
        def blocking() -> None:
            started.set()
            release.wait(10)
            finished.set()

        worker = tw.make_worker({"default": 1})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        job = await blocking.enqueue()
        try:
            assert await asyncio.to_thread(started.wait, 10)
            worker.stop()
            await asyncio.wait_for(runner, 10)
            state = (await tw.get_task_status(job.id)).state
            still_executing = not finished.is_set()
        finally:
            release.set()
        assert not (still_executing and state in (JobState.SCHEDULED, JobState.PENDING)), (
            "job handed back to the queue while its function is still executing"
        )
        if still_executing:
            assert state is JobState.RUNNING


class _FinishDown(MemoryBackend):
    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        raise BackendUnavailable("database went away")


async def test_worker_shutdown_stops_services_even_when_the_final_ack_fails() -> None:
    """If the last flush of outcomes fails, run() raises, but only after the heartbeat and
    every maintenance service stopped, the worker record was removed and the job thread
    pool was shut down."""
    async with TaskManager(backend=_FinishDown(), poll_interval=0.05, lease_seconds=1) as tw:

        @tw.task
        async def quick() -> None: ...

        await quick.enqueue()
        stager = Stager(tw.backend, tw.clock, 0.05)
        worker = tw.make_worker({"default": 1})
        worker.services = [stager]
        runner = asyncio.create_task(worker.run())
        await asyncio.sleep(0.2)
        worker.stop()
        with pytest.raises(BackendUnavailable):
            await asyncio.wait_for(runner, 10)
        leaked = [
            t
            for t in asyncio.all_tasks()
            if t.get_name() in ("taskward-heartbeat", "taskward-stager")
        ]
        try:
            assert not leaked, f"services still running after the worker stopped: {leaked}"
            assert await tw.backend.list_workers(alive_since=tw.clock.now() - timedelta(1)) == []
        finally:
            for t in leaked:
                t.cancel()
            await asyncio.gather(*leaked, return_exceptions=True)
            worker.close()


# -- 6. Validation: bad input is refused at the edge, before anything is written --------------


async def test_unique_for_beyond_the_maximum_is_rejected_at_enqueue(tw: TaskManager) -> None:
    """unique_for=1e11 s is finite but would overflow the unique window's date arithmetic in
    the backend: it is refused with InvalidOptions, before anything is written."""

    @tw.task
    async def once(x: int) -> None: ...

    with pytest.raises(InvalidOptions, match="unique_for must be at most"):
        await tw.enqueue_task(once, args=[1], unique_for=1e11)
    assert (await tw.list_tasks()).total_entries == 0


@pytest.mark.parametrize("option", ["delay", "at"])
async def test_delay_beyond_the_maximum_is_invalid_options(tw: TaskManager, option: str) -> None:
    """delay= / at= seconds beyond MAX_DELAY_SECONDS would overflow datetime: InvalidOptions."""

    @tw.task
    async def later() -> None: ...

    with pytest.raises(InvalidOptions, match=f"{option} must be at most"):
        await tw.enqueue_task(later, **{option: 1e13})


async def test_max_attempts_beyond_the_maximum_is_rejected(tmp_path: Path) -> None:
    """max_attempts is bounded by MAX_ATTEMPTS (32-bit, what every backend's column holds),
    instead of overflowing inside the SQLite insert."""
    async with TaskManager(f"sqlite:///{tmp_path}/jobs.db") as tw:

        @tw.task
        async def work() -> None: ...

        with pytest.raises(InvalidOptions, match="max_attempts must be between 1 and"):
            await tw.enqueue_task(work, max_attempts=2**63)


async def test_meta_that_is_not_json_is_rejected_before_the_write(tmp_path: Path) -> None:
    """meta= is checked like args: NotSerializable at validation, not a bare TypeError inside
    the SQLite write transaction."""
    async with TaskManager(f"sqlite:///{tmp_path}/jobs.db") as tw:

        @tw.task
        async def work() -> None: ...

        with pytest.raises(NotSerializable, match="meta"):
            await tw.enqueue_task(work, meta={"when": object()})
        with pytest.raises(InvalidOptions, match="meta must be a dict"):
            await tw.enqueue_task(work, meta=["not", "a", "dict"])
        job = await tw.enqueue_task(work, meta={"source": ("api", 2)})
        assert (await tw.get_task_status(job.id)).meta == job.meta == {"source": ["api", 2]}


async def test_tags_given_as_a_string_are_rejected(tw: TaskManager) -> None:
    """tags="urgent" is refused with a hint, not split into ('u','r','g','e','n','t')."""

    @tw.task
    async def work() -> None: ...

    with pytest.raises(InvalidOptions, match=r"write tags=\['urgent'\]"):
        await tw.enqueue_task(work, tags="urgent")
    job = await tw.enqueue_task(work, tags=["urgent"])
    assert job.tags == ("urgent",)


def test_env_none_is_rejected_for_required_float_settings() -> None:
    """TASKWARD_LEASE_SECONDS=none is refused (the worker would crash later on
    ``lease_seconds / 3``); "none" still unsets an optional float such as default_timeout."""
    with pytest.raises(InvalidOptions, match="TASKWARD_LEASE_SECONDS"):
        Settings.load(env={"TASKWARD_LEASE_SECONDS": "none"})
    assert Settings.load(env={"TASKWARD_DEFAULT_TIMEOUT": "none"}).default_timeout is None


# -- 7. The sync portal -----------------------------------------------------------------------


def test_portal_shutdown_cancels_a_sync_call_in_flight_on_another_thread() -> None:
    """SyncTaskManager.shutdown() cancels calls other threads have in flight (here a drain)
    and lets them unwind before stopping the portal loop: the blocked caller gets
    PortalClosed instead of waiting forever, and later calls are refused with it."""
    tw = TaskManager("memory://", poll_interval=0.05)
    entered, gate = threading.Event(), threading.Event()

    @tw.task
    def blocking() -> None:
        entered.set()
        gate.wait(10)

    blocking.enqueue_sync()
    outcome: dict[str, Any] = {}

    def background_drain() -> None:
        try:
            outcome["result"] = tw.sync.drain()
        except BaseException as exc:
            outcome["error"] = exc

    caller = threading.Thread(target=background_drain, daemon=True)
    caller.start()
    assert entered.wait(10)
    tw.sync.shutdown()
    gate.set()
    caller.join(1)
    assert not caller.is_alive(), "the sync caller is blocked forever on a stopped portal"
    assert isinstance(outcome.get("error"), PortalClosed)
    with pytest.raises(PortalClosed, match="shut down"):
        tw.sync.get_statistics()


def test_portal_shutdown_lets_a_sync_worker_release_its_jobs() -> None:
    """A worker run through manager.sync.run_worker on another thread shuts down gracefully
    when the portal is shut down: its unfinished async job is released, not left running."""
    tw = TaskManager("memory://", poll_interval=0.05, shutdown_timeout=0.1)
    entered = threading.Event()

    @tw.task
    async def forever() -> None:
        entered.set()
        await asyncio.Event().wait()

    job = forever.enqueue_sync()
    errors: list[BaseException] = []

    def background_worker() -> None:
        try:
            tw.sync.run_worker(install_signal_handlers=False)
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=background_worker, daemon=True)
    caller.start()
    assert entered.wait(10)
    tw.sync.shutdown()
    caller.join(10)
    assert not caller.is_alive()
    assert [type(e) for e in errors] == [PortalClosed]
    released = asyncio.run(tw.backend.get(job.id))  # memory: readable from any loop
    # Handed back due now: the Stager may promote it to pending before it stops itself.
    assert released.state in {JobState.SCHEDULED, JobState.PENDING}
    assert released.attempt == 0
