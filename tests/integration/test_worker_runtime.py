"""The long-running worker, cron, maintenance and the sync twins on each backend."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest

from taskward import FrozenClock, JobContext, JobState, ScheduleNotFound, TaskManager
from taskward.runtime.maintenance import Leadership, Rescuer
from taskward.runtime.scheduler import CronScheduler


async def _wait_for_state(tw: TaskManager, job_id: int, state: JobState) -> None:
    async with asyncio.timeout(10):
        # The store is the only shared view of another component's progress: poll it.
        while (await tw.get_task_status(job_id)).state is not state:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_run_worker_processes_jobs_and_stops_gracefully(tw: TaskManager) -> None:
    started = asyncio.Event()

    @tw.task
    async def slow(n: int) -> int:
        started.set()
        await asyncio.sleep(0.2)
        return n

    worker = tw.make_worker({"default": 2})
    runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
    job = await slow.enqueue(7)
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()  # the running job still finishes: graceful shutdown
    await asyncio.wait_for(runner, 10)
    done = await tw.get_task_status(job.id)
    assert done.state is JobState.COMPLETED
    assert done.result == 7
    assert (await tw.get_statistics())["workers"]["total"] == 0  # deregistered


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_worker_off_the_main_thread_runs_without_signal_handlers(loop: str) -> None:
    """An app may run its worker on a thread of its own: signal handlers can only be
    installed on the main thread (asyncio refuses with RuntimeError, uvloop with ValueError),
    so the worker goes on without them."""
    factory = (
        asyncio.new_event_loop if loop == "asyncio" else pytest.importorskip(loop).new_event_loop
    )
    states: list[JobState] = []
    errors: list[BaseException] = []

    async def app() -> None:
        async with TaskManager("memory://", poll_interval=0.05) as tw:

            @tw.task(name="one")
            async def one() -> int:
                return 1

            job = await one.enqueue()
            worker = tw.make_worker({"default": 1})
            runner = asyncio.create_task(tw.run_worker(worker=worker))  # handlers asked for
            await _wait_for_state(tw, job.id, JobState.COMPLETED)
            worker.stop()
            await asyncio.wait_for(runner, 10)
            states.append((await tw.get_task_status(job.id)).state)

    def thread() -> None:
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(app())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=thread)
    t.start()
    t.join(30)
    assert not errors, errors
    assert states == [JobState.COMPLETED]


async def test_stop_ends_an_idle_worker_without_waiting_a_poll(manager_url: str) -> None:
    # An idle queue loop sits in the backend's wait for up to poll_interval: stop() must
    # interrupt that wait, and a wake-up must still reach a loop that waited before.
    async with TaskManager(manager_url, poll_interval=120, lease_seconds=5) as tw:

        @tw.task
        async def ping() -> str:
            return "pong"

        worker = tw.make_worker({"default": 2, "other": 1})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await asyncio.sleep(0.2)  # both queue loops are idle in the wait by now
        job = await ping.enqueue()
        await _wait_for_state(tw, job.id, JobState.COMPLETED)
        await asyncio.sleep(0.2)
        worker.stop()
        await asyncio.wait_for(runner, 20)  # far less than the 120 s poll interval


async def test_cancelling_an_idle_worker_still_cancels_it(manager_url: str) -> None:
    async with TaskManager(manager_url, poll_interval=120, lease_seconds=5) as tw:
        worker = tw.make_worker({"default": 1})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await asyncio.sleep(0.2)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(runner, 20)


async def test_shutdown_timeout_releases_unfinished_jobs(manager_url: str) -> None:
    async with TaskManager(manager_url, poll_interval=0.05, shutdown_timeout=0.1) as tw:
        started = asyncio.Event()

        @tw.task
        async def forever() -> None:
            started.set()
            await asyncio.sleep(3600)

        worker = tw.make_worker({"default": 1})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        job = await forever.enqueue()
        await asyncio.wait_for(started.wait(), 10)
        worker.stop()
        await asyncio.wait_for(runner, 10)
        released = await tw.get_task_status(job.id)
        assert released.state in (JobState.SCHEDULED, JobState.PENDING)
        assert released.attempt == 0  # the interrupted attempt is refunded


async def test_cancel_running_job_via_heartbeat(manager_url: str) -> None:
    async with TaskManager(manager_url, poll_interval=0.05, lease_seconds=0.3) as tw:
        started = asyncio.Event()

        @tw.task
        async def long(ctx: JobContext) -> None:
            started.set()
            await asyncio.sleep(3600)

        worker = tw.make_worker({"default": 1})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        job = await long.enqueue()
        await asyncio.wait_for(started.wait(), 10)
        requested = await tw.cancel_task(job.id, reason="operator")
        assert requested.state is JobState.RUNNING
        assert requested.cancel_requested
        await _wait_for_state(tw, job.id, JobState.CANCELLED)
        worker.stop()
        await asyncio.wait_for(runner, 10)


async def test_rescuer_recovers_jobs_of_a_dead_worker(manager_url: str) -> None:
    clock = FrozenClock(datetime.now(UTC))
    async with TaskManager(manager_url, clock=clock, lease_seconds=30) as tw:

        @tw.task(max_attempts=3, backoff=0)
        async def work() -> str:
            return "rescued and done"

        job = await work.enqueue()
        dead_worker = tw.make_worker({"default": 1})
        (claimed,) = await dead_worker.fetch("default", 1)  # ...and then it "dies"
        assert claimed.state is JobState.RUNNING
        rescuer = Rescuer(
            tw.backend, clock, 1, leadership=None, resolve=tw._lookup,
            default_policy=tw.default_policy,
        )  # fmt: skip
        await rescuer.run_once()
        assert (await tw.get_task_status(job.id)).state is JobState.RUNNING  # lease still valid
        clock.advance(31)
        await rescuer.run_once()
        orphan = await tw.get_task_status(job.id)
        assert orphan.state is JobState.RETRYABLE
        assert orphan.errors[-1].kind == "Orphaned"
        await tw.drain()
        done = await tw.get_task_status(job.id)
        assert done.state is JobState.COMPLETED
        assert done.attempt == 2
        # The zombie's late outcome is refused by the fence.
        late = await dead_worker.run_one(claimed, dead_worker.context_for(claimed))
        assert await tw.backend.finish([late], worker_id=dead_worker.id) == [False]


async def test_leader_lease_is_exclusive(tw: TaskManager) -> None:
    clock = FrozenClock(datetime.now(UTC))
    a = Leadership(tw.backend, clock, "a", ttl=10)
    b = Leadership(tw.backend, clock, "b", ttl=10)
    assert await a.is_leader()
    assert not await b.is_leader()
    assert await a.is_leader()  # renewal
    clock.advance(11)
    assert await b.is_leader()
    assert not await a.is_leader()


async def test_cron_inserts_each_fire_time_once(manager_url: str) -> None:
    clock = FrozenClock(datetime(2026, 3, 1, 2, 59, 30, tzinfo=UTC))
    async with TaskManager(manager_url, clock=clock) as tw:

        @tw.task(name="nightly")
        async def nightly() -> None:
            return None

        await tw.schedule_recurring_task("nightly", nightly, cron="0 3 * * *")
        assert [s.name for s in await tw.list_recurring_tasks()] == ["nightly"]
        one = CronScheduler(tw.backend, clock, make_job=tw.schedule_job)
        two = CronScheduler(tw.backend, clock, make_job=tw.schedule_job)
        await one.run_once()
        assert (await tw.list_tasks()).total_entries == 0
        clock.advance(45)  # 03:00:15, past the fire time
        await one.run_once()
        await two.run_once()  # a second scheduler proposes the same slot
        await one.run_once()
        page = await tw.list_tasks()
        assert page.total_entries == 1
        (job,) = page.items
        assert job.scheduled_at == datetime(2026, 3, 1, 3, tzinfo=UTC)
        assert job.meta["schedule"] == "nightly"
        await tw.cancel_recurring_task("nightly")
        with pytest.raises(ScheduleNotFound, match="nightly"):
            await tw.cancel_recurring_task("nightly")
        assert await tw.list_recurring_tasks() == []


async def test_cron_skips_slots_missed_long_ago(manager_url: str) -> None:
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC))
    async with TaskManager(manager_url, clock=clock) as tw:
        await tw.schedule_recurring_task(
            "minutely", "tests_support.jobs:add", cron="* * * * *", args=[1]
        )
        scheduler = CronScheduler(tw.backend, clock, make_job=tw.schedule_job, max_lateness=60)
        await scheduler.run_once()
        assert (await tw.list_tasks()).total_entries == 1  # 12:00 only, not a day of backlog


async def test_cleanup_old_tasks(manager_url: str) -> None:
    clock = FrozenClock(datetime.now(UTC))
    async with TaskManager(manager_url, clock=clock) as tw:

        @tw.task(max_attempts=1)
        async def job(fail: bool) -> None:
            if fail:
                raise RuntimeError("x")

        await job.enqueue(False)
        await job.enqueue(True)
        await job.schedule(3600 * 24 * 60, False)
        await tw.drain()
        clock.advance(timedelta(days=8).total_seconds())
        assert await tw.cleanup_old_tasks() == 1  # the completed one; failed kept 30 days
        clock.advance(timedelta(days=30).total_seconds())
        assert await tw.cleanup_old_tasks() == 1
        assert [j.state for j in (await tw.list_tasks()).items] == [JobState.SCHEDULED]


def test_sync_twins_from_plain_threads(manager_url: str) -> None:
    tw = TaskManager(manager_url)

    @tw.task
    def double(x: int) -> int:
        return 2 * x

    ids: list[int] = []

    def produce(n: int) -> None:
        ids.append(double.enqueue_sync(n).id)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 5
    assert tw.sync.drain().counts == {"completed": 5}
    results = sorted(tw.sync.get_task_status(i).result for i in ids)
    assert results == [0, 2, 4, 6, 8]
    assert tw.sync.get_statistics()["queues"]["default"]["completed"] == 5
    tw.sync.shutdown()


def test_sync_twin_called_inside_a_loop_is_refused() -> None:
    tw = TaskManager("memory://")

    async def misuse() -> None:
        with pytest.raises(RuntimeError, match="await instead"):
            tw.sync.get_statistics()  # would deadlock: the portal loop waiting on itself

    tw.sync.portal.call(misuse())
    tw.sync.shutdown()


async def test_disabled_manager_drops_jobs(caplog: pytest.LogCaptureFixture) -> None:
    async with TaskManager("sqlite:///unused.db", enabled=False) as tw:
        job = await tw.enqueue_task("tests_support.jobs:add", args=[1, 2])
        assert job.id == 0
        assert tw.backend.url == "noop://"
        assert (await tw.list_tasks()).total_entries == 0
    assert "disabled" in caplog.text


async def test_a_drain_whose_wind_down_hangs_can_still_be_cancelled() -> None:
    # The wind-down (outcomes, then the worker's record) is waited for when the drain is
    # cancelled, but only for shutdown_timeout: a store that hangs must not make it uncancellable.
    async with TaskManager("memory://", shutdown_timeout=0.3) as tw:
        hung = asyncio.Event()

        async def never_returns(worker_id: str) -> None:
            hung.set()
            await asyncio.Event().wait()

        tw.backend.remove_worker = never_returns  # type: ignore[method-assign]
        draining = asyncio.create_task(tw.drain(with_scheduled=True))
        await asyncio.sleep(0.05)
        draining.cancel()
        await asyncio.wait_for(hung.wait(), 2)
        draining.cancel()  # a second cancel, during the hung wind-down
        done, _ = await asyncio.wait({draining}, timeout=3)
        assert draining in done
        assert draining.cancelled()
