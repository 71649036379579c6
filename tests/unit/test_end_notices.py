"""The pieces under wait_for: BoundJob, the outcome errors, EndWaits, and SQLite's ends folder."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import pickle
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskward.backends.sqlite.ends import ENDS_FOLDER, Ends
from taskward.backends.waiters import EndCaller, EndWaits, call_as
from taskward.errors import JobCancelled, JobDiscarded, JobFailed, TaskwardError, WaitTimeout
from taskward.jobs import BoundJob, ErrorRecord, Job, JobState
from taskward.outcomes import outcome

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stored(state: JobState = JobState.PENDING, **fields: object) -> Job:
    values: dict[str, object] = {
        "id": 7, "task": "t", "queue": "default", "args": [1], "kwargs": {}, "state": state,
        "priority": 5, "attempt": 1, "max_attempts": 3, "scheduled_at": NOW, "inserted_at": NOW,
    }  # fmt: skip
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


class Outcomes:
    """A stand-in manager: records what it was asked (BoundJob only calls these two)."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, float | None]] = []

    async def wait_for(self, job_id: int, *, timeout: float | None = None) -> object:
        self.asked.append((job_id, timeout))
        return "result"

    def wait_for_blocking(self, job_id: int, *, timeout: float | None = None) -> object:
        self.asked.append((job_id, timeout))
        return "blocking result"


async def test_a_bound_job_is_a_job_that_knows_its_manager() -> None:
    job = stored()
    manager = Outcomes()
    bound = BoundJob.bind(job, manager)
    assert isinstance(bound, Job)
    assert bound == job
    assert job == bound
    assert bound != dataclasses.replace(job, attempt=2)
    assert repr(bound) == repr(job)
    assert bound.to_dict() == job.to_dict()
    assert [f.name for f in dataclasses.fields(bound)] == [f.name for f in dataclasses.fields(job)]
    assert await bound.wait(timeout=3) == "result"
    assert bound.wait_sync() == "blocking result"
    assert manager.asked == [(7, 3), (7, None)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        bound.attempt = 5  # type: ignore[misc]
    deep = copy.deepcopy(bound)
    assert type(deep) is Job
    assert deep == job


async def test_a_job_without_a_manager_says_what_to_use() -> None:
    with pytest.raises(TaskwardError, match="wait_for"):
        await stored().wait()
    unbound = dataclasses.replace(BoundJob.bind(stored(), Outcomes()), attempt=2)
    with pytest.raises(TaskwardError, match="wait_for"):
        unbound.wait_sync()


def test_each_end_becomes_a_result_or_its_error() -> None:
    error = ErrorRecord(attempt=1, at=NOW, kind="ValueError", message="boom", traceback="tb")
    assert outcome(stored(JobState.COMPLETED, result={"ok": 1})) == {"ok": 1}
    with pytest.raises(JobFailed) as failed:
        outcome(stored(JobState.FAILED, errors=(error,)))
    assert failed.value.error == error
    assert "ValueError: boom" in str(failed.value)
    with pytest.raises(JobDiscarded) as discarded:
        outcome(stored(JobState.DISCARDED, errors=(error,)))
    assert isinstance(discarded.value, JobFailed)
    with pytest.raises(JobCancelled) as cancelled:
        outcome(stored(JobState.CANCELLED))
    assert cancelled.value.error is None
    timeout = WaitTimeout(7, 1.5)
    assert isinstance(timeout, TimeoutError)
    assert "1.5 s" in str(timeout)


async def test_end_waits_keep_a_notice_that_came_between_two_calls() -> None:
    waits = EndWaits()
    loop = asyncio.get_running_loop()
    assert waits.update([1, 2]) == (frozenset({1, 2}), frozenset())
    started = loop.time()
    await waits.wait([1, 2], timeout=5)  # new ids: at once
    assert loop.time() - started < 1
    waits.ended([3])  # not watched: no notice
    waits.update([1, 2])
    started = loop.time()
    await waits.wait([1, 2], timeout=0.2)
    assert loop.time() - started >= 0.15
    waits.ended([2])  # while the caller reads
    waits.update([1, 2])
    started = loop.time()
    await waits.wait([1, 2], timeout=5)
    assert loop.time() - started < 1
    assert waits.update([]) == (frozenset(), frozenset({1, 2}))
    assert waits.watched() == frozenset()


def test_the_ends_folder_exists_only_while_a_process_watches(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    finisher = Ends(database, shared=True)
    watcher = Ends(database, shared=True)
    folder = watcher.channel.directory
    assert folder.name == ENDS_FOLDER
    finisher.ended([1])  # nobody watches: the folder is not even made
    assert not folder.exists()

    async def scenario() -> list[int]:
        heard: list[int] = []
        watcher.waits.ended = lambda ids=None: heard.extend(ids or [])  # type: ignore[method-assign]
        await watcher.wait([5], timeout=0)  # binds the socket
        assert len(os.listdir(folder)) == 1
        finisher.ended([4, 5])
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.01)
        await watcher.wait([], timeout=0)  # nothing watched: unbinds
        return heard

    assert asyncio.run(scenario()) == [4, 5]
    assert not folder.exists()
    watcher.close()
    finisher.close()


@pytest.mark.parametrize(
    "error",
    [
        JobFailed(stored(JobState.FAILED)),
        JobDiscarded(stored(JobState.DISCARDED)),
        JobCancelled(stored(JobState.CANCELLED)),
        WaitTimeout(7, 1.5),
    ],
)
def test_the_outcome_errors_survive_a_pickle(error: Exception) -> None:
    """A process pool pickles what a call raised: each error is rebuilt as it was."""
    copied = pickle.loads(pickle.dumps(error))
    assert type(copied) is type(error)
    assert str(copied) == str(error)
    assert getattr(copied, "job", None) == getattr(error, "job", None)
    assert getattr(copied, "timeout", None) == getattr(error, "timeout", None)


def test_a_pickled_outcome_error_never_carries_the_manager() -> None:
    bound = BoundJob.bind(stored(JobState.FAILED), Outcomes())
    bound_outcomes = bound._outcomes  # type: ignore[attr-defined]
    bound_outcomes.lock = threading.Lock()  # a manager holds what cannot be pickled
    copied = pickle.loads(pickle.dumps(JobFailed(bound)))
    assert type(copied.job) is Job
    assert copied.job == bound


async def test_end_waits_keep_each_callers_watch_apart() -> None:
    """Two callers (two managers' watchers) on one loop: each has its own watched set."""
    waits = EndWaits()
    loop = asyncio.get_running_loop()

    async def caller(ids: list[int]) -> float:
        call_as(EndCaller())
        waits.update(ids)
        await waits.wait(ids, timeout=5)  # new ids: at once
        await asyncio.sleep(0)  # the other caller updates in between
        waits.update(ids)
        started = loop.time()
        await waits.wait(ids, timeout=0.2)
        return loop.time() - started

    spent = await asyncio.gather(asyncio.create_task(caller([1])), asyncio.create_task(caller([2])))
    assert all(s >= 0.15 for s in spent), spent  # neither made the other return at once


async def test_end_waits_forget_a_dropped_caller_and_cache_the_union() -> None:
    waits = EndWaits()
    first, second = EndCaller(), EndCaller()

    async def watch(caller: EndCaller, ids: list[int]) -> None:
        call_as(caller)
        waits.update(ids)

    await asyncio.create_task(watch(first, [1, 2]))
    await asyncio.create_task(watch(second, [2, 3]))
    union = waits.watched()
    assert union == frozenset({1, 2, 3})
    assert waits.watched() is union  # a notice does not rebuild it
    first.drop()  # its watcher stopped (even cancelled with its loop)
    assert waits.watched() == frozenset({2, 3})
    second.drop()
    assert waits.watched() == frozenset()


def test_end_waits_wake_a_waiter_of_another_loop_on_its_own_thread() -> None:
    waits = EndWaits()
    parked = threading.Event()
    result: list[float] = []

    async def wait() -> None:
        waits.update([1])
        await waits.wait([1], timeout=0)  # new ids: returns; the next wait parks
        loop = asyncio.get_running_loop()
        loop.call_soon(parked.set)
        started = loop.time()
        await waits.wait([1], timeout=5)
        result.append(loop.time() - started)

    thread = threading.Thread(target=asyncio.run, args=(wait(),))
    thread.start()
    assert parked.wait(5)
    time.sleep(0.05)
    waits.ended([1])  # this thread has no loop: the waiter's loop resolves it
    thread.join(5)
    assert result
    assert result[0] < 1


def test_a_reader_left_on_an_ended_loop_is_bound_again(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    finisher = Ends(database, shared=True)
    watcher = Ends(database, shared=True)

    async def watch() -> None:
        await watcher.wait([5], timeout=0)  # binds on this loop, which then ends

    asyncio.run(watch())
    assert watcher.channel.listening
    assert not watcher.channel.served  # nobody reads it any more

    async def heard_on_a_new_loop() -> list[int]:
        heard: list[int] = []
        watcher.waits.ended = lambda ids=None: heard.extend(ids or [])  # type: ignore[method-assign]
        await watcher.wait([5], timeout=0)
        assert watcher.channel.served
        finisher.ended([5])
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.01)
        await watcher.wait([], timeout=0)
        return heard

    assert asyncio.run(heard_on_a_new_loop()) == [5]
    watcher.close()
    finisher.close()
