"""Contract: ``insert_blocking`` (Capability.BLOCKING_INSERT) writes from the caller's thread.

Sync producers (Django views, scripts) insert without the portal's event loop. These tests run
on every backend that claims the capability; the others must not claim it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, cast

import pytest

from taskward.backends import Backend, Capability
from taskward.backends.base import BlockingInserter
from taskward.errors import BackendUnavailable
from taskward.jobs import Inserted, JobFilter, JobState

from .helpers import NOW, insert_one, new_job

BOUND = 10.0  # generous: a woken waiter returns in milliseconds


def blocking(backend: Backend) -> BlockingInserter:
    if Capability.BLOCKING_INSERT not in backend.capabilities:
        pytest.skip(f"{backend.url}: no blocking insert")
    assert callable(getattr(backend, "insert_blocking", None))
    return cast(BlockingInserter, backend)


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on a new thread (no event loop there) and return its result."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn(*args, **kwargs))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return out[0]


async def test_a_blocking_insert_from_another_thread_is_stored(backend: Backend) -> None:
    inserter = blocking(backend)
    before = await insert_one(backend)
    [inserted] = await asyncio.to_thread(
        inserter.insert_blocking, [new_job(args=[7], kwargs={"k": "v"})], now=NOW
    )
    assert not inserted.duplicate
    stored = await backend.get(inserted.job.id)
    assert stored.args == [7]
    assert stored.kwargs == {"k": "v"}
    assert stored.state is JobState.PENDING
    assert stored.id > before.id
    assert inserted.job == stored
    after = await insert_one(backend)
    assert after.id > stored.id


async def test_a_blocking_insert_answers_a_unique_duplicate(backend: Backend) -> None:
    inserter = blocking(backend)
    first = await insert_one(backend, unique_key="k1")
    [again] = in_thread(inserter.insert_blocking, [new_job(unique_key="k1")], now=NOW)
    assert again.duplicate
    assert again.job.id == first.id
    [other] = in_thread(inserter.insert_blocking, [new_job(unique_key="k2")], now=NOW)
    assert not other.duplicate


async def test_a_blocking_insert_of_many_jobs_keeps_their_order(backend: Backend) -> None:
    inserter = blocking(backend)
    jobs = [new_job(args=[n]) for n in range(5)]
    inserted: list[Inserted] = in_thread(inserter.insert_blocking, jobs, now=NOW)
    assert [i.job.args for i in inserted] == [[n] for n in range(5)]
    ids = [i.job.id for i in inserted]
    assert ids == sorted(set(ids))
    assert in_thread(inserter.insert_blocking, [], now=NOW) == []


async def test_threads_inserting_at_once_lose_nothing(backend: Backend) -> None:
    inserter = blocking(backend)
    threads, each = 6, 25

    def produce(t: int) -> list[int]:
        return [
            inserter.insert_blocking([new_job(args=[t, n])], now=NOW)[0].job.id for n in range(each)
        ]

    async_ids = [(await insert_one(backend, args=[-1, n])).id for n in range(each)]
    results = await asyncio.gather(*(asyncio.to_thread(produce, t) for t in range(threads)))
    ids = [i for chunk in results for i in chunk] + async_ids
    assert len(set(ids)) == threads * each + each
    page = await backend.list_jobs(JobFilter(per_page=1000))
    assert page.total_entries == threads * each + each
    assert sorted(job.id for job in page.items) == sorted(ids)


async def test_a_blocking_insert_wakes_a_waiter_of_this_process(backend: Backend) -> None:
    inserter = blocking(backend)
    # Polling must not be what wakes it: the fallback poll is made far slower than the bound.
    if hasattr(backend, "poll_seconds"):
        backend.poll_seconds = 60.0
    waiter = asyncio.create_task(backend.wait_for_jobs(["default"], timeout=60.0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    await asyncio.to_thread(inserter.insert_blocking, [new_job()], now=NOW)
    await asyncio.wait_for(waiter, timeout=BOUND)
    assert waiter.exception() is None


async def test_a_blocking_insert_after_close_reopens_like_insert(backend: Backend) -> None:
    inserter = blocking(backend)
    in_thread(inserter.insert_blocking, [new_job()], now=NOW)
    await backend.close()
    [inserted] = in_thread(inserter.insert_blocking, [new_job(args=[2])], now=NOW)
    assert (await backend.get(inserted.job.id)).args == [2]


@pytest.mark.any_store
async def test_backends_without_it_do_not_claim_it(backend: Backend) -> None:
    if Capability.BLOCKING_INSERT in backend.capabilities:
        assert callable(getattr(backend, "insert_blocking", None))
    else:
        assert not hasattr(backend, "insert_blocking")


async def test_close_while_threads_insert_loses_nothing_it_reported(backend: Backend) -> None:
    """close() never pulls a connection from under a running statement (it crashed once)."""
    inserter = blocking(backend)
    stop = threading.Event()
    reported: list[int] = []
    errors: list[BaseException] = []

    def produce() -> None:
        while not stop.is_set():
            try:
                reported.append(inserter.insert_blocking([new_job()], now=NOW)[0].job.id)
            except BaseException as exc:  # a failure must be a clean, documented error
                errors.append(exc)

    threads = [threading.Thread(target=produce) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):
            await asyncio.sleep(0.005)
            await backend.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join(BOUND)
    # PostgreSQL may answer BackendUnavailable to a call caught waiting on a pool that
    # closed (twice in a row); SQLite never fails. Either way the process survives.
    assert all(isinstance(exc, BackendUnavailable) for exc in errors), errors
    assert reported
    for job_id in reported:
        assert (await backend.get(job_id)).id == job_id


async def test_short_lived_threads_do_not_pile_up_connections(backend: Backend) -> None:
    inserter = blocking(backend)
    fds = "/proc/self/fd"
    if not await asyncio.to_thread(os.path.isdir, fds):
        pytest.skip("no /proc/self/fd to count open files")
    in_thread(inserter.insert_blocking, [new_job()], now=NOW)
    before = len(os.listdir(fds))
    for n in range(60):
        in_thread(inserter.insert_blocking, [new_job(args=[n])], now=NOW)
    assert len(os.listdir(fds)) - before < 10


async def test_an_insert_between_fetch_and_wait_is_not_missed(backend: Backend) -> None:
    inserter = blocking(backend)
    if hasattr(backend, "poll_seconds"):
        backend.poll_seconds = 60.0
    await backend.fetch(
        queue="default", limit=1, worker_id="w", now=NOW, lease_until=NOW
    )  # nothing there yet
    await asyncio.to_thread(inserter.insert_blocking, [new_job()], now=NOW)
    await asyncio.sleep(0)  # the wake-up scheduled on this loop runs
    await asyncio.wait_for(backend.wait_for_jobs(["default"], timeout=60.0), timeout=BOUND)


async def test_migrate_blocking_is_idempotent_and_keeps_the_jobs(backend: Backend) -> None:
    inserter = blocking(backend)
    job = await insert_one(backend)
    await asyncio.to_thread(inserter.migrate_blocking)
    await asyncio.to_thread(inserter.migrate_blocking)
    assert (await backend.get(job.id)).id == job.id
    [after] = in_thread(inserter.insert_blocking, [new_job()], now=NOW)
    assert after.job.id > job.id
