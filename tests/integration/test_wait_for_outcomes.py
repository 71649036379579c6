"""TaskManager.wait_for, job.wait() and their sync twins, with a worker in another process.

The producer and the worker are separate processes on one store (SQLite, PostgreSQL, Redis),
so every wake-up a waiter gets crossed processes: the store's notice (a datagram, a NOTIFY, a
pub/sub message), or the watcher's fallback read. The in-process cases (500 waiters sharing
one watcher, timeouts, cancellation) run on every backend of ``manager_url``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from taskward import JobState, TaskManager, chain
from taskward.backends import open_backend
from taskward.backends.waiters import EndWaits
from taskward.errors import (
    BackendUnavailable,
    InvalidOptions,
    JobCancelled,
    JobDiscarded,
    JobFailed,
    JobNotFound,
    NotSupported,
    TaskwardError,
    WaitTimeout,
)
from taskward.jobs import BoundJob, Job
from taskward.outcomes import OutcomeWatcher

pytestmark = pytest.mark.integration
TESTS = Path(__file__).resolve().parents[1]
APP = "tests_support.outcome_app"
BOUND = 30.0  # a wait the worker should end in well under a second; generous for CI


@pytest.fixture
def worker(tmp_path: Path, store_url: str) -> Iterator[str]:
    """A worker process of ``tests_support.outcome_app`` on ``store_url``; yields the URL."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "TASKWARD_TEST_URL": store_url,
        "NO_COLOR": "1",
    }
    setup = TaskManager(store_url)
    setup.sync.open()  # migrated before the worker starts (no race on DDL)
    setup.sync.shutdown()
    out = (tmp_path / "worker.out").open("wb")
    cmd = [sys.executable, "-m", "taskward", "worker", "--app", f"{APP}:manager",
           "-q", "default=4", "--log-level", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield store_url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        out.close()


async def test_wait_for_gets_each_outcome_from_another_process(worker: str, tmp_path: Path) -> None:
    async with TaskManager(worker) as tw:
        added = await tw.enqueue_task(f"{APP}:add", args=[2, 3])
        failed = await tw.enqueue_task(f"{APP}:fail", args=["no luck"])
        discarded = await tw.enqueue_task(f"{APP}:discard", args=["bad input"])
        flaky = await tw.enqueue_task(f"{APP}:flaky", args=[str(tmp_path / "marker")])

        assert await tw.wait_for(added.id, timeout=BOUND) == 5
        with pytest.raises(JobFailed) as fail_info:
            await tw.wait_for(failed.id, timeout=BOUND)
        assert not isinstance(fail_info.value, JobDiscarded)
        assert fail_info.value.job.state is JobState.FAILED
        assert fail_info.value.error is not None
        assert fail_info.value.error.kind == "ValueError"
        assert fail_info.value.error.message == "no luck"
        assert "raise ValueError(message)" in (fail_info.value.error.traceback or "")
        with pytest.raises(JobDiscarded) as discard_info:
            await discarded.wait(timeout=BOUND)
        assert discard_info.value.job.state is JobState.DISCARDED
        assert discard_info.value.error is not None
        assert "bad input" in discard_info.value.error.message
        # Retryable after its first attempt: not an end, so the wait goes on to the result.
        assert await flaky.wait(timeout=BOUND) == "second time lucky"
        assert (await tw.get_task_status(flaky.id)).attempt == 2


async def test_many_waiters_across_processes_are_woken_by_the_store(worker: str) -> None:
    async with TaskManager(worker) as tw:
        quiet(tw)  # no fallback read within BOUND: only the store's notices wake the watcher
        jobs = [await tw.enqueue_task(f"{APP}:slow", args=[0.2, n]) for n in range(20)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(job.wait(timeout=BOUND) for job in jobs))
        assert results == list(range(20))
        assert loop.time() - started < BOUND
        watcher = tw.outcome_watcher()
        # Twenty waiters, one watcher: its reads follow the rounds, not the waiters.
        assert watcher.reads < 20
        assert watcher.waiting == 0


def test_the_sync_twins_wait_from_plain_threads(worker: str) -> None:
    tw = TaskManager(worker)
    try:
        job = tw.sync.enqueue_task(f"{APP}:add", args=[40, 2])
        assert job.wait_sync(timeout=BOUND) == 42
        assert tw.sync.wait_for(job.id, timeout=BOUND) == 42
        failed = tw.sync.enqueue_task(f"{APP}:fail", args=["sync"])
        with pytest.raises(JobFailed, match="sync"):
            tw.sync.wait_for(failed.id, timeout=BOUND)
        pending = tw.sync.enqueue_task(f"{APP}:add", args=[1], delay=3600)
        with pytest.raises(WaitTimeout):
            pending.wait_sync(timeout=0.2)
    finally:
        tw.sync.shutdown()


def quiet(tw: TaskManager) -> None:
    """Make the running loop's watcher read only when the store says a job ended."""
    watcher = tw.outcome_watcher()
    watcher.first_interval = watcher.max_interval = 2 * BOUND


# -- in one process, on every backend ------------------------------------------------------
@pytest.fixture
async def tw(manager_url: str) -> AsyncIterator[TaskManager]:
    manager = TaskManager(manager_url)

    @manager.task(name="outcome.add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    await manager.open()
    yield manager
    await manager.close()


async def listeners_of_ends(tw: TaskManager) -> int | None:
    """How many subscriptions the Redis server has for this store's end notices (else None).

    (PostgreSQL's LISTEN connection cannot be told apart in ``pg_stat_activity``: its last
    statement is the look for pending jobs that follows the LISTEN.)
    """
    backend: Any = tw.backend
    if tw.settings.effective_url.startswith("redis"):
        client = backend._connections.client
        [(_, count)] = await client.pubsub_numsub(f"{backend.base}:ends")
        return int(count)
    return None


async def test_five_hundred_waiters_share_one_watcher(tw: TaskManager) -> None:
    jobs = await tw.enqueue_many("outcome.add", [((n, 1), {}) for n in range(500)])
    waiters = [asyncio.ensure_future(tw.wait_for(job.id, timeout=BOUND)) for job in jobs]
    await asyncio.sleep(0.1)  # every waiter registered, none ended: they wait
    watcher = tw.outcome_watcher()
    assert watcher.waiting == 500
    reads_before_work = watcher.reads
    assert reads_before_work <= 3  # one read for all 500, not one each
    assert await listeners_of_ends(tw) in (None, 1)  # one LISTEN / subscription for all 500
    await tw.drain()
    assert await asyncio.gather(*waiters) == [n + 1 for n in range(500)]
    # Each round reads all watched jobs in one call: a round per batch of ends the worker
    # wrote (10 jobs at a time here), never one query per waiter.
    assert watcher.reads < 100
    assert watcher.waiting == 0
    await tw.close()


async def test_a_timeout_leaves_the_job_untouched(tw: TaskManager) -> None:
    job = await tw.enqueue_task("outcome.add", args=[1])
    before = await tw.get_task_status(job.id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(WaitTimeout) as info:
        await tw.wait_for(job.id, timeout=0.3)
    assert 0.25 <= loop.time() - started < BOUND
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, TaskwardError)
    assert await tw.get_task_status(job.id) == before  # same state, attempt, everything
    assert tw.outcome_watcher().waiting == 0
    with pytest.raises(WaitTimeout):
        await tw.wait_for(job.id, timeout=0)  # a look: not ended now
    await tw.drain()
    assert await tw.wait_for(job.id, timeout=0) == 1  # a look: ended, so its result
    await tw.close()


async def test_a_cancelled_waiter_leaves_nothing_behind(tw: TaskManager) -> None:
    job = await tw.enqueue_task("outcome.add", args=[1])
    waiter = asyncio.ensure_future(tw.wait_for(job.id))  # no timeout: waits forever
    await asyncio.sleep(0.1)
    assert tw.outcome_watcher().waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert tw.outcome_watcher().waiting == 0
    assert (await tw.get_task_status(job.id)).state is JobState.PENDING
    await tw.close()


async def test_a_cancel_raises_job_cancelled_with_the_reason(tw: TaskManager) -> None:
    job = await tw.enqueue_task("outcome.add", args=[1])
    waiter = asyncio.ensure_future(job.wait(timeout=BOUND))
    await asyncio.sleep(0.1)
    await tw.cancel_task(job.id, reason="changed my mind")
    with pytest.raises(JobCancelled) as info:
        await waiter
    assert info.value.job.state is JobState.CANCELLED
    assert info.value.error is not None
    assert info.value.error.message == "changed my mind"
    await tw.close()


async def test_a_deleted_job_raises_job_not_found(tw: TaskManager) -> None:
    job = await tw.enqueue_task("outcome.add", args=[1])
    waiter = asyncio.ensure_future(tw.wait_for(job.id, timeout=BOUND))
    await asyncio.sleep(0.1)
    await tw.delete_task(job.id)
    with pytest.raises(JobNotFound):
        await waiter
    with pytest.raises(JobNotFound):
        await tw.wait_for(10**9, timeout=BOUND)
    await tw.close()


async def test_a_job_read_back_knows_no_manager(tw: TaskManager) -> None:
    job = await tw.enqueue_task("outcome.add", args=[1])
    read = await tw.get_task_status(job.id)
    assert read == job
    assert job == read
    assert repr(job) == repr(read)
    assert type(read) is Job
    with pytest.raises(NotSupported, match="wait_for"):
        await read.wait(timeout=0.1)
    await tw.close()


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), "5", True])
async def test_a_bad_timeout_is_refused_before_waiting(tw: TaskManager, timeout: object) -> None:
    with pytest.raises(TaskwardError, match="timeout"):
        await tw.wait_for(1, timeout=timeout)  # type: ignore[arg-type]
    await tw.close()


async def test_a_blocked_workflow_step_is_waited_for_until_it_ends(tw: TaskManager) -> None:
    add = tw.registry.runnable("outcome.add")
    assert add is not None
    handle = await tw.enqueue_workflow(chain(add.s(1, 2), add.s(10, 20)))
    record = await tw.get_workflow(handle.id)
    last = record.steps[-1].job
    assert last.state is JobState.BLOCKED
    waiter = asyncio.ensure_future(tw.wait_for(last.id, timeout=BOUND))
    await asyncio.sleep(0.2)
    assert not waiter.done()  # blocked is not an end
    await tw.drain()
    assert await waiter == 30


def test_wait_for_on_noop_is_not_supported() -> None:
    tw = TaskManager("noop://")
    try:
        with pytest.raises(NotSupported, match="stores no jobs"):
            tw.sync.wait_for(1, timeout=0.1)
    finally:
        tw.sync.shutdown()


async def test_waiters_settle_within_a_second_of_the_end(tw: TaskManager) -> None:
    """The store's notice, not the fallback interval, wakes the watcher (in-process end)."""
    quiet(tw)  # the fallback read would come after a minute: only a notice settles it
    job = await tw.enqueue_task("outcome.add", args=[2, 2])
    waiter = asyncio.ensure_future(tw.wait_for(job.id, timeout=BOUND))
    await asyncio.sleep(0.3)  # past the first read: the watcher now waits for a notice
    started = time.monotonic()
    await tw.drain()
    assert await waiter == 4
    assert time.monotonic() - started < 0.9  # the fallback read would come after 1 s or more
    await tw.close()


def slow_backend(url: str) -> Any:
    """A backend of ``url``'s kind whose ``get_jobs`` sleeps ``delay`` seconds first (a seam:
    the store is real, only the read is slowed so a waiter can join while it runs)."""
    base: Any = type(open_backend(url))

    class Slow(base):  # type: ignore[misc, valid-type]
        delay = 0.0

        async def get_jobs(self, job_ids: Any) -> Any:
            await asyncio.sleep(self.delay)
            return await super().get_jobs(job_ids)

    return Slow(url)


def add_task(manager: TaskManager) -> None:
    @manager.task(name="outcome.add")
    def add(a: int, b: int = 0) -> int:
        return a + b


def end_waits(backend: Any) -> EndWaits:
    """The backend's EndWaits (where each kind keeps it)."""
    ends = getattr(backend, "_ends", None)
    if ends is None:
        return backend._listener.ends  # type: ignore[no-any-return]
    return ends if isinstance(ends, EndWaits) else ends.waits


async def test_a_waiter_joining_during_a_read_waits_for_its_job(manager_url: str) -> None:
    backend = slow_backend(manager_url)
    tw = TaskManager(manager_url, backend=backend)
    add_task(tw)
    try:
        await tw.open()
        first = await tw.enqueue_task("outcome.add", args=[1])
        second = await tw.enqueue_task("outcome.add", args=[2])
        backend.delay = 0.6
        early = asyncio.ensure_future(tw.wait_for(first.id, timeout=BOUND))
        await asyncio.sleep(0.2)  # the watcher's read of [first] is under way (slowed)
        late = asyncio.ensure_future(tw.wait_for(second.id, timeout=BOUND))
        await asyncio.sleep(0.8)  # that read returned: only [first] was settled (if ended)
        assert not late.done()  # not "JobNotFound" for a job that was not read
        backend.delay = 0.0
        await tw.drain()
        assert await asyncio.gather(early, late) == [1, 2]
    finally:
        await tw.close()
        await backend.close()


async def test_two_managers_sharing_a_backend_do_not_spin(manager_url: str) -> None:
    backend = open_backend(manager_url)
    one, two = TaskManager(manager_url, backend=backend), TaskManager(manager_url, backend=backend)
    add_task(one)
    try:
        await one.open()
        await two.open()
        a = await one.enqueue_task("outcome.add", args=[1])
        b = await one.enqueue_task("outcome.add", args=[2])
        waiters = [
            asyncio.ensure_future(one.wait_for(a.id, timeout=BOUND)),
            asyncio.ensure_future(two.wait_for(b.id, timeout=BOUND)),
        ]
        await asyncio.sleep(1.5)
        # Each watcher keeps its own watch: a first read, and a fallback read or so. Sharing
        # one watch per loop, each one's call "added" ids for the other: hundreds of reads.
        assert one.outcome_watcher().reads <= 5
        assert two.outcome_watcher().reads <= 5
        await one.drain()
        assert await asyncio.gather(*waiters) == [1, 2]
    finally:
        await one.close()
        await two.close()
        await backend.close()


async def test_closing_the_manager_fails_the_waiters_of_every_loop(manager_url: str) -> None:
    if not manager_url.startswith(("memory", "sqlite")):
        # Their LISTEN / pub/sub task runs on the loop that first waited; closing the backend
        # from another loop is a matter of the listener, not of the waiters tested here.
        pytest.skip("the backend's listener is bound to the loop that started it")
    tw = TaskManager(manager_url)
    add_task(tw)
    await tw.open()
    job = await tw.enqueue_task("outcome.add", args=[1])
    outcome: list[object] = []
    parked = threading.Event()

    def waiter() -> None:  # another thread, another loop (as the sync portal is)
        async def wait() -> object:
            task = asyncio.ensure_future(tw.wait_for(job.id, timeout=BOUND))
            await asyncio.sleep(0.3)
            parked.set()
            return await task

        try:
            outcome.append(asyncio.run(wait()))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert await asyncio.to_thread(parked.wait, BOUND)
    started = time.monotonic()
    await tw.close()
    await asyncio.to_thread(thread.join, BOUND)
    assert time.monotonic() - started < 5  # told, not left to its timeout
    assert len(outcome) == 1
    assert isinstance(outcome[0], BackendUnavailable), outcome


async def test_a_loop_ending_while_waiting_leaves_nothing_behind(manager_url: str) -> None:
    if not manager_url.startswith(("memory", "sqlite")):
        pytest.skip("the backend's listener is bound to the loop that started it")
    tw = TaskManager(manager_url)
    add_task(tw)
    await tw.open()
    other = tw if manager_url.startswith("memory") else TaskManager(manager_url)
    if other is not tw:
        add_task(other)
    try:
        job = await tw.enqueue_task("outcome.add", args=[1])

        async def abandon() -> OutcomeWatcher:  # the loop ends with its waiter: no close()
            waiter = asyncio.ensure_future(tw.wait_for(job.id))
            await asyncio.sleep(0.3)
            assert job.id in end_waits(tw.backend).watched()
            assert not waiter.done()
            return tw.outcome_watcher()

        watcher = await asyncio.to_thread(asyncio.run, abandon())
        # Dropped although its watcher lives on (as anything holding it would keep it).
        assert end_waits(tw.backend).watched() == frozenset()
        del watcher
        gc.collect()
        assert len(tw._outcome_watchers()) == 0  # the manager let that loop go
        # A waiter on this loop is still woken by a notice alone (SQLite binds its socket
        # again here, rather than trusting a reader left on the ended loop).
        quiet(tw)
        waiter = asyncio.ensure_future(tw.wait_for(job.id, timeout=BOUND))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await other.drain()  # another instance of the store ends it (another process)
        assert await waiter == 1
        assert time.monotonic() - started < 5
    finally:
        if other is not tw:
            await other.close()
        await tw.close()


@pytest.mark.parametrize("job_id", [0, -1, 2**63, True, 1.0, "1"])
async def test_a_bad_job_id_is_refused_before_waiting(tw: TaskManager, job_id: object) -> None:
    good = await tw.enqueue_task("outcome.add", args=[1])
    waiter = asyncio.ensure_future(tw.wait_for(good.id, timeout=BOUND))
    with pytest.raises(InvalidOptions, match="job_id"):
        await tw.wait_for(job_id, timeout=BOUND)  # type: ignore[arg-type]
    await tw.drain()
    assert await waiter == 1  # the bad id never reached the shared read
    await tw.close()


async def test_a_read_refused_for_one_id_fails_only_its_waiters(manager_url: str) -> None:
    """An error the store raises for one id (not an outage) reaches that id's waiters only."""
    backend = slow_backend(manager_url)
    tw = TaskManager(manager_url, backend=backend)
    add_task(tw)
    refused: set[int] = set()
    real_get_jobs = backend.get_jobs

    async def get_jobs(job_ids: Any) -> Any:
        if refused & set(job_ids):
            raise ValueError("this id cannot be read")
        return await real_get_jobs(job_ids)

    backend.get_jobs = get_jobs
    try:
        await tw.open()
        good = await tw.enqueue_task("outcome.add", args=[1])
        bad = await tw.enqueue_task("outcome.add", args=[2])
        refused.add(bad.id)
        waiters = [
            asyncio.ensure_future(tw.wait_for(good.id, timeout=BOUND)),
            asyncio.ensure_future(tw.wait_for(bad.id, timeout=BOUND)),
        ]
        await asyncio.sleep(0.3)
        await tw.drain()
        assert await waiters[0] == 1
        with pytest.raises(ValueError, match="cannot be read"):
            await waiters[1]
    finally:
        await tw.close()
        await backend.close()


async def test_enqueue_many_returns_jobs_to_wait_on(tw: TaskManager) -> None:
    jobs = await tw.enqueue_many("outcome.add", [[1], [2], [3]])
    assert all(isinstance(job, BoundJob) for job in jobs)
    await tw.drain()
    assert [await job.wait(timeout=BOUND) for job in jobs] == [1, 2, 3]
    await tw.close()


async def test_a_failed_end_notice_does_not_fail_the_committed_change(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL: the NOTIFY after the commit failing is logged; finish, cancel and delete
    still report what they stored, and the waiters are settled by the fallback read."""
    tw = TaskManager(pg_url)
    add_task(tw)
    await tw.open()
    try:
        connections: Any = tw.backend._connections  # type: ignore[attr-defined]
        real_fetchall = connections.fetchall

        async def fetchall(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "notify_ends":  # a fault injected into the real store's connection
                raise psycopg.errors.QueryCanceled("the notice was cut off")
            return await real_fetchall(name, *args, **kwargs)

        connections.fetchall = fetchall
        done = await tw.enqueue_task("outcome.add", args=[1])
        cancelled = await tw.enqueue_task("outcome.add", args=[2], delay=3600)
        deleted = await tw.enqueue_task("outcome.add", args=[3], delay=3600)
        waiters = [
            asyncio.ensure_future(tw.wait_for(done.id, timeout=BOUND)),
            asyncio.ensure_future(tw.wait_for(cancelled.id, timeout=BOUND)),
            asyncio.ensure_future(tw.wait_for(deleted.id, timeout=BOUND)),
        ]
        await asyncio.sleep(0.3)
        with caplog.at_level(logging.WARNING):
            assert (await tw.drain()).counts == {"completed": 1}
            assert (await tw.cancel_task(cancelled.id)).state is JobState.CANCELLED
            await tw.delete_task(deleted.id)
        assert (await tw.get_task_status(done.id)).state is JobState.COMPLETED
        assert await waiters[0] == 1
        with pytest.raises(JobCancelled):
            await waiters[1]
        with pytest.raises(JobNotFound):
            await waiters[2]
        assert "could not notify the end" in caplog.text
        assert "lease" not in caplog.text
    finally:
        await tw.close()
