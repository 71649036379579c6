"""Contract: wait_for_ends returns when a watched job ends (finish, cancel, delete) or times out.

The store's notice must arrive without the caller's polling: each waiter here passes a long
timeout, so a return within ``BOUND`` can only come from the end. An end made through a second
instance stands for another process (a worker finishing the job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from taskward.backends import Backend, Capability
from taskward.backends.waiters import EndCaller, call_as
from taskward.graph import NewStep, NewWorkflow
from taskward.jobs import JobState
from taskward.states import Completed, Discarded, Failed, Outcome

from .helpers import NOW, claim, finish_with, insert_one, new_job

LONG_WAIT = 60.0  # what the watcher never passes; a return before BOUND is the notice
BOUND = 5.0
QUIET = 0.3  # a wait that nothing ends lasts this long


async def settle(backend: Backend, ids: list[int]) -> None:
    """Watch ``ids`` and wait until the watch is quiet (its first call returns at once, and
    a listener that just connected wakes the caller once to read again)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(backend.wait_for_ends(ids, timeout=LONG_WAIT), timeout=BOUND)
    assert loop.time() - started < BOUND  # new ids: at once, so the caller reads them
    for _ in range(20):
        started = loop.time()
        await backend.wait_for_ends(ids, timeout=QUIET)
        if loop.time() - started >= QUIET * 0.9:
            return
    pytest.fail("wait_for_ends kept returning early although no watched job ended")


async def waiting(backend: Backend, ids: list[int]) -> asyncio.Task[None]:
    """A waiter with a long timeout, started and parked in its wait."""
    waiter = asyncio.create_task(backend.wait_for_ends(ids, timeout=LONG_WAIT))
    for _ in range(5):  # loop turns, not wall time
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)  # a store round trip (the watch is already stored)
    assert not waiter.done()
    return waiter


async def woken_by(backend: Backend, ids: list[int], end: Callable[[], Awaitable[object]]) -> float:
    """Seconds between ``end()`` and the waiter's return (fails past ``BOUND``)."""
    await settle(backend, ids)
    waiter = await waiting(backend, ids)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await end()
    await asyncio.wait_for(waiter, timeout=BOUND)
    return loop.time() - started


@pytest.mark.parametrize(
    "outcome", [Completed("ok"), Failed("ValueError", "boom", retry=False), Discarded("bad")]
)
async def test_a_finish_wakes_the_waiter(backend: Backend, outcome: Outcome) -> None:
    job = await claim(backend)
    elapsed = await woken_by(backend, [job.id], lambda: finish_with(backend, job, outcome))
    assert elapsed < BOUND


async def test_a_finish_by_another_instance_wakes_the_waiter(
    backend: Backend, second_backend: Backend
) -> None:
    job = await claim(second_backend)
    elapsed = await woken_by(
        backend, [job.id], lambda: finish_with(second_backend, job, Completed(1))
    )
    assert elapsed < BOUND
    assert (await backend.get(job.id)).result == 1


async def test_a_cancel_wakes_the_waiter(backend: Backend) -> None:
    job = await insert_one(backend)

    def cancel() -> Awaitable[object]:
        return backend.cancel(job.id, reason="no longer needed", now=NOW)

    assert await woken_by(backend, [job.id], cancel) < BOUND


async def test_a_delete_wakes_the_waiter(backend: Backend) -> None:
    job = await insert_one(backend)
    assert await woken_by(backend, [job.id], lambda: backend.delete(job.id)) < BOUND


async def test_a_workflow_cancel_wakes_the_waiter_of_a_step(backend: Backend) -> None:
    if Capability.WORKFLOWS not in backend.capabilities:
        pytest.skip(f"{backend.url}: no workflows")
    flow = NewWorkflow(
        name="w",
        steps=(
            NewStep(name="a", job=new_job(queue="wf")),
            NewStep(name="b", job=new_job(queue="wf", state=JobState.BLOCKED), depends_on=(0,)),
        ),
    )
    record = await backend.insert_workflow(flow, now=NOW)
    ids = [s.job.id for s in record.steps]

    def cancel() -> Awaitable[object]:
        return backend.cancel_workflow(record.id, reason="stop", now=NOW)

    assert await woken_by(backend, ids, cancel) < BOUND


async def test_a_retry_is_not_an_end(backend: Backend) -> None:
    """A failed attempt with attempts left (retryable) is not an end: no wake-up."""
    job = await claim(backend)
    await settle(backend, [job.id])
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiter = asyncio.create_task(backend.wait_for_ends([job.id], timeout=QUIET))
    await finish_with(backend, job, Failed("ValueError", "again"))
    await asyncio.wait_for(waiter, timeout=BOUND)
    assert loop.time() - started >= QUIET * 0.9


async def test_the_end_of_an_unwatched_job_is_not_a_notice(backend: Backend) -> None:
    watched = await insert_one(backend, queue="watched")
    other = await claim(backend, queue="other")
    await settle(backend, [watched.id])
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiter = asyncio.create_task(backend.wait_for_ends([watched.id], timeout=QUIET))
    assert await finish_with(backend, other, Completed(None))
    await asyncio.wait_for(waiter, timeout=BOUND)
    assert loop.time() - started >= QUIET * 0.9


async def test_an_end_while_the_caller_reads_is_not_lost(backend: Backend) -> None:
    """An end between two calls (the caller reading its jobs) makes the next call return."""
    job = await claim(backend)
    await settle(backend, [job.id])
    assert await finish_with(backend, job, Completed(None))
    await asyncio.sleep(0.2)  # the notice arrives while nobody is inside wait_for_ends
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(backend.wait_for_ends([job.id], timeout=LONG_WAIT), timeout=BOUND)
    assert loop.time() - started < BOUND


@pytest.mark.any_store
async def test_nothing_ends_so_it_returns_at_timeout(backend: Backend) -> None:
    ids = [123_456]
    await backend.wait_for_ends(ids, timeout=0)
    loop = asyncio.get_running_loop()
    for _ in range(20):  # a listener connecting may wake the caller once
        started = loop.time()
        await asyncio.wait_for(backend.wait_for_ends(ids, timeout=QUIET), timeout=BOUND)
        if loop.time() - started >= QUIET * 0.9:
            break
    else:
        pytest.fail("wait_for_ends never waited for its timeout")
    await backend.wait_for_ends([], timeout=QUIET)  # drops the watch; returns at once


async def test_an_empty_call_drops_the_watch(backend: Backend) -> None:
    job = await claim(backend)
    other = await insert_one(backend, queue="later")
    await settle(backend, [job.id])
    await backend.wait_for_ends([], timeout=0)
    # Watching another id now: the dropped job's end must not be a notice for anyone.
    await settle(backend, [other.id])
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiter = asyncio.create_task(backend.wait_for_ends([other.id], timeout=QUIET))
    assert await finish_with(backend, job, Completed(None))
    await asyncio.wait_for(waiter, timeout=BOUND)
    assert loop.time() - started >= QUIET * 0.9


async def test_two_callers_on_one_loop_keep_their_own_watch(backend: Backend) -> None:
    """Two outcome watchers (two managers sharing one backend) on one loop: neither one's
    calls make the other's return early, so both can wait quietly (no spinning reads)."""
    first = await insert_one(backend, queue="first")
    second = await insert_one(backend, queue="second")
    loop = asyncio.get_running_loop()

    async def caller(ids: list[int]) -> list[float]:
        call_as(EndCaller())  # what each OutcomeWatcher does (this task's own context)
        await settle(backend, ids)
        spent = []
        for _ in range(3):
            started = loop.time()
            await backend.wait_for_ends(ids, timeout=QUIET)
            spent.append(loop.time() - started)
        return spent

    both = await asyncio.gather(
        asyncio.create_task(caller([first.id])), asyncio.create_task(caller([second.id]))
    )
    assert all(s >= QUIET * 0.9 for spent in both for s in spent), both
