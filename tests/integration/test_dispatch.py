"""Direct dispatch on PostgreSQL: an idle worker offers a slot and a producer hands it its job.

The job is stored already claimed by that worker and reaches it in the NOTIFY, so it starts
without a claim round trip. Everything else (paused queues, delayed jobs, large payloads,
a caller's transaction, more jobs than offers) goes the usual way, and a job dispatched to a
worker that is gone runs again when its lease expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.backends.postgres import parse_postgres_url
from taskward.backends.sql import postgres_rows as rows
from taskward.runtime.maintenance import Rescuer
from taskward.runtime.worker import Worker

SLOW_POLL = 60.0  # only a NOTIFY or a dispatch wakes the worker within a test


def _offers(pg_url: str, worker_id: str | None = None) -> int:
    conninfo, own = parse_postgres_url(pg_url)
    schema = own.get("schema", "public")
    sql = f'SELECT count(*) FROM "{schema}".taskward_offers'
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if worker_id is None:
            row = conn.execute(sql).fetchone()
        else:
            row = conn.execute(sql + " WHERE worker_id = %s", (worker_id,)).fetchone()
    assert row is not None
    return int(row[0])


async def _until(condition: Any) -> None:
    async with asyncio.timeout(10):
        # Another component's progress is visible only in the store: poll it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def _until_done(tw: TaskManager, job_id: int) -> None:
    async with asyncio.timeout(10):
        while (await tw.get_task_status(job_id)).state is not JobState.COMPLETED:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.fixture
async def tw(pg_url: str) -> AsyncIterator[TaskManager]:
    async with TaskManager(pg_url, poll_interval=SLOW_POLL, lease_seconds=5) as manager:
        yield manager


async def _idle_worker(
    tw: TaskManager, pg_url: str, concurrency: int = 2
) -> tuple[Worker, asyncio.Task[None]]:
    worker = tw.make_worker({"default": concurrency})
    runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
    # The first idle wait starts the listener; the next one offers a slot.
    await _until(lambda: _offers(pg_url, worker.id) == 1)
    return worker, runner


async def test_an_idle_worker_is_handed_a_new_job(tw: TaskManager, pg_url: str) -> None:
    @tw.task
    async def greet(name: str) -> str:
        return f"hello {name}"

    worker, runner = await _idle_worker(tw, pg_url)
    job = await greet.enqueue("ada")
    # Stored already claimed by the worker that offered: the producer's answer says so.
    assert job.state is JobState.RUNNING
    assert (job.attempted_by, job.attempt) == (worker.id, 1)
    assert job.lease_until is not None
    assert job.attempted_at is not None
    await _until_done(tw, job.id)
    done = await tw.get_task_status(job.id)
    assert (done.state, done.result, done.attempt) == (JobState.COMPLETED, "hello ada", 1)
    assert done.attempted_by == worker.id
    # The worker offers again once idle; a clean stop takes every offer back.
    await _until(lambda: _offers(pg_url, worker.id) == 1)
    worker.stop()
    await asyncio.wait_for(runner, 20)
    assert _offers(pg_url) == 0


async def test_jobs_that_must_not_be_dispatched_go_the_usual_way(
    tw: TaskManager, pg_url: str
) -> None:
    @tw.task
    async def echo(value: Any) -> Any:
        return value

    worker, runner = await _idle_worker(tw, pg_url)
    await tw.pause_queue("default")
    paused = await echo.enqueue(1)
    assert paused.state is JobState.PENDING  # a paused queue's job waits, offer or not
    delayed = await tw.schedule_task(echo, args=[2], at=3600)
    assert delayed.state is JobState.SCHEDULED
    async with await psycopg.AsyncConnection.connect(parse_postgres_url(pg_url)[0]) as conn:
        in_transaction = await tw.enqueue_task(echo, args=[3], connection=conn)
        await conn.commit()
    assert in_transaction.state is JobState.PENDING
    await tw.resume_queue("default")
    big = await echo.enqueue("x" * 5_000)  # too large for a NOTIFY: claimed as usual
    assert (big.state, big.attempted_by) == (JobState.PENDING, None)
    for job in (paused, in_transaction, big):
        await _until_done(tw, job.id)
    assert (await tw.get_task_status(delayed.id)).state is JobState.SCHEDULED
    worker.stop()
    await asyncio.wait_for(runner, 20)


async def test_one_offer_takes_one_job_and_concurrency_holds(tw: TaskManager, pg_url: str) -> None:
    running = 0
    most = 0
    gate = asyncio.Event()

    @tw.task
    async def hold(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()  # busy until every job is in: the worker cannot offer again
        running -= 1
        return n

    worker, runner = await _idle_worker(tw, pg_url, concurrency=1)
    jobs = [await hold.enqueue(n) for n in range(6)]
    gate.set()
    assert sum(job.state is JobState.RUNNING for job in jobs) == 1  # one offer, one job
    assert jobs[0].attempted_by == worker.id
    for job in jobs:
        await _until_done(tw, job.id)
    assert most == 1
    worker.stop()
    await asyncio.wait_for(runner, 20)


async def test_a_job_dispatched_to_a_vanished_worker_runs_again_after_its_lease(
    pg_url: str,
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    async with TaskManager(pg_url, clock=clock, lease_seconds=30) as tw:

        @tw.task(max_attempts=3, backoff=0)
        async def work() -> str:
            return "done"

        conninfo, own = parse_postgres_url(pg_url)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(  # a worker that offered, then died without taking it back
                f'INSERT INTO "{own["schema"]}".taskward_offers VALUES (%s, %s, %s)',
                ("ghost", "default", 30.0),
            )
        job = await work.enqueue()
        assert (job.state, job.attempted_by) == (JobState.RUNNING, "ghost")
        assert _offers(pg_url) == 0  # one offer, taken once
        second = await work.enqueue()
        assert second.state is JobState.PENDING
        rescuer = Rescuer(
            tw.backend, clock, 1, leadership=None, resolve=tw._lookup,
            default_policy=tw.default_policy,
        )  # fmt: skip
        clock.advance(31)
        await rescuer.run_once()
        orphan = await tw.get_task_status(job.id)
        assert (orphan.state, orphan.errors[-1].kind) == (JobState.RETRYABLE, "Orphaned")
        await tw.drain()
        for each in (job, second):
            assert (await tw.get_task_status(each.id)).state is JobState.COMPLETED


async def test_a_dispatched_row_reads_back_as_the_stored_job(tw: TaskManager, pg_url: str) -> None:
    # The NOTIFY carries row_to_json of the job's columns: it must decode to what get() reads.
    @tw.task(max_attempts=2)
    async def flaky(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("first try fails")

    job = await tw.enqueue_task(
        flaky, args=["héllo", 1.5, [None]], kwargs={"k": {"v": True}}, tags=["a", 'b"c'],
        meta={"trace": "t1"}, timeout=2.5, priority=3,
    )  # fmt: skip
    await tw.drain()  # one failed attempt: errors, attempt times and a worker in the row
    conninfo, own = parse_postgres_url(pg_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT row_to_json(j)::text FROM (SELECT {rows.JOB_COLUMNS} "
            f'FROM "{own["schema"]}".taskward_jobs WHERE id = %s) AS j',
            (job.id,),
        ).fetchone()
    assert row is not None
    stored = await tw.get_task_status(job.id)
    assert stored.state is JobState.RETRYABLE
    assert stored.errors
    assert stored.attempted_at is not None
    assert rows.job_from_json(row[0]) == stored
