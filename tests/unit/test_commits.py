"""Group commit (taskward.commits) around a recording insert: who shares which commit."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from taskward.commits import MAX_BATCH, BlockingGroupCommit, GroupCommit
from taskward.errors import BackendUnavailable, InvalidJob
from taskward.jobs import Inserted, Job, JobState, NewJob

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new(n: int) -> NewJob:
    return NewJob(
        task="t",
        queue="default",
        args=[n],
        kwargs={},
        priority=5,
        max_attempts=1,
        scheduled_at=NOW,
        state=JobState.PENDING,
    )


def stored(job: NewJob, job_id: int) -> Inserted:
    found = Job(
        id=job_id,
        task=job.task,
        queue=job.queue,
        args=job.args,
        kwargs=job.kwargs,
        state=JobState.PENDING,
        priority=job.priority,
        attempt=0,
        max_attempts=job.max_attempts,
        scheduled_at=NOW,
        inserted_at=NOW,
    )
    return Inserted(job=found, duplicate=False)


class Store:
    """Records each insert call (one call: one transaction); refuses args of ``refuse``."""

    def __init__(self, refuse: int | None = None, delay: float = 0.01) -> None:
        self.calls: list[list[int]] = []
        self.refuse = refuse
        self.delay = delay
        self.down = False
        self.attempts = 0  # insert calls, failed ones included
        self._ids = 0
        self._lock = threading.Lock()

    def _insert(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        self.attempts += 1
        if self.down:
            raise BackendUnavailable("the store is down")
        if any(job.args == [self.refuse] for job in jobs):
            raise InvalidJob("refused")  # the whole transaction fails
        with self._lock:
            self.calls.append([job.args[0] for job in jobs])
            out = []
            for job in jobs:
                self._ids += 1
                out.append(stored(job, self._ids))
            return out

    async def insert(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        await asyncio.sleep(self.delay)  # a commit in flight
        return self._insert(jobs)

    def insert_blocking(self, jobs: Sequence[NewJob]) -> list[Inserted]:
        time.sleep(self.delay)
        return self._insert(jobs)


async def test_alone_a_job_is_inserted_at_once_and_alone() -> None:
    store = Store()
    group = GroupCommit(store.insert)
    first = await group.insert(new(1))
    second = await group.insert(new(2))
    assert (first.job.args, second.job.args) == ([1], [2])
    assert store.calls == [[1], [2]]


async def test_concurrent_callers_share_commits_and_get_their_own_job() -> None:
    store = Store()
    group = GroupCommit(store.insert)
    results = await asyncio.gather(*(group.insert(new(n)) for n in range(100)))
    assert [r.job.args for r in results] == [[n] for n in range(100)]
    assert sorted(n for call in store.calls for n in call) == list(range(100))
    assert store.calls[0] == [0]  # the first caller does not wait for company
    assert len(store.calls) == 2  # everyone else arrived during its commit: one more


async def test_a_refused_job_fails_alone() -> None:
    store = Store(refuse=7)
    group = GroupCommit(store.insert)
    results = await asyncio.gather(
        *(group.insert(new(n)) for n in range(20)), return_exceptions=True
    )
    failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [7]
    assert isinstance(results[7], InvalidJob)
    assert sorted(n for call in store.calls for n in call) == [n for n in range(20) if n != 7]


async def test_an_unavailable_store_fails_the_batch_without_retrying_each() -> None:
    store = Store()
    group = GroupCommit(store.insert)
    first = asyncio.ensure_future(group.insert(new(0)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(group.insert(new(n))) for n in range(1, 6)]
    store.down = True  # during the first commit: it fails, and so does the queued batch
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    assert all(isinstance(o, BackendUnavailable) for o in outcomes)
    assert store.calls == []
    assert store.attempts == 2  # the first alone, then the batch once: not job by job


async def test_a_cancelled_waiter_is_left_out_of_the_batch() -> None:
    store = Store()
    group = GroupCommit(store.insert)
    first = asyncio.ensure_future(group.insert(new(0)))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(group.insert(new(1)))
    kept = asyncio.ensure_future(group.insert(new(2)))
    await asyncio.sleep(0)
    gone.cancel()
    await first
    assert (await kept).job.args == [2]
    assert store.calls == [[0], [2]]


async def test_a_long_queue_is_split_into_batches() -> None:
    store = Store()
    group = GroupCommit(store.insert)
    await asyncio.gather(*(group.insert(new(n)) for n in range(MAX_BATCH + 50)))
    assert [len(call) for call in store.calls] == [1, MAX_BATCH, 49]


def run_threads(group: BlockingGroupCommit, count: int) -> list[Inserted | BaseException]:
    results: list[Inserted | BaseException] = [InvalidJob("not run")] * count
    start = threading.Barrier(count)

    def produce(n: int) -> None:
        start.wait()
        try:
            results[n] = group.insert(new(n))
        except BaseException as exc:
            results[n] = exc

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_threads_share_commits_and_get_their_own_job() -> None:
    store = Store(delay=0.02)
    results = run_threads(BlockingGroupCommit(store.insert_blocking), 64)
    assert [r.job.args for r in results if isinstance(r, Inserted)] == [[n] for n in range(64)]
    assert sorted(n for call in store.calls for n in call) == list(range(64))
    assert len(store.calls) < 64 / 4  # most of them shared a commit


def test_threads_a_refused_job_fails_alone() -> None:
    store = Store(refuse=5, delay=0.02)
    results = run_threads(BlockingGroupCommit(store.insert_blocking), 32)
    assert [n for n, r in enumerate(results) if isinstance(r, BaseException)] == [5]
    assert sorted(n for call in store.calls for n in call) == [n for n in range(32) if n != 5]


def test_threads_alone_insert_at_once() -> None:
    store = Store(delay=0)
    group = BlockingGroupCommit(store.insert_blocking)
    assert [group.insert(new(n)).job.args for n in range(3)] == [[0], [1], [2]]
    assert store.calls == [[0], [1], [2]]


@pytest.mark.parametrize("down", [True, False])
def test_threads_errors_reach_every_waiter(down: bool) -> None:
    store = Store(delay=0.02)
    store.down = down
    results = run_threads(BlockingGroupCommit(store.insert_blocking), 16)
    if down:
        assert all(isinstance(r, BackendUnavailable) for r in results)
    else:
        assert all(isinstance(r, Inserted) for r in results)


def test_a_waiting_thread_interrupted_leaves_the_queue_and_nothing_hangs() -> None:
    # Ctrl-C, or a SIGTERM handler raising SystemExit, reaches the main thread while it waits
    # for a commit: its job was never sent, and every later enqueue must still go through.
    store = Store(delay=0.5)
    group = BlockingGroupCommit(store.insert_blocking)
    leader = threading.Thread(target=group.insert, args=(new(0),))
    leader.start()
    time.sleep(0.1)  # the leader's commit is in flight

    def interrupt(signum: int, frame: object) -> None:
        raise RuntimeError("interrupted")

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(RuntimeError, match="interrupted"):
            group.insert(new(1))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    leader.join(5)
    assert group.insert(new(2)).job.args == [2]  # not stuck behind the one that left
    assert store.calls == [[0], [2]]


def test_every_caller_gets_an_exception_of_its_own() -> None:
    store = Store(delay=0.02)
    store.down = True
    results = run_threads(BlockingGroupCommit(store.insert_blocking), 8)
    errors = [r for r in results if isinstance(r, BackendUnavailable)]
    assert len(errors) == 8
    assert len({id(e) for e in errors}) == 8  # no traceback holds another request's frames


async def test_only_a_refused_value_splits_a_batch() -> None:
    # Any other failure is the batch's as a whole: retrying job by job would risk storing
    # twice what a commit stored before the error.
    store = Store()
    group = GroupCommit(store.insert)
    first = asyncio.ensure_future(group.insert(new(0)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(group.insert(new(n))) for n in range(1, 5)]
    original = store._insert

    def broken(jobs: Sequence[NewJob]) -> list[Inserted]:
        if len(jobs) > 1:
            raise RuntimeError("the store said something odd")
        return original(jobs)

    store._insert = broken  # type: ignore[method-assign]
    await first
    outcomes = await asyncio.gather(*rest, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert store.attempts == 1  # the first alone; the batch failed once, not job by job
