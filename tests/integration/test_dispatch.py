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
from taskward.backends.postgres import parse_postgres_url, rows
from taskward.runtime.maintenance import Rescuer
from taskward.runtime.worker import Worker

SLOW_POLL = 60.0  # only a NOTIFY or a dispatch wakes the worker within a test


def _drop_offers_table(pg_url: str) -> None:
    """Make the store one without migration 0005's table (or without rights on it)."""
    conninfo, own = parse_postgres_url(pg_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{own["schema"]}".taskward_offers')


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


class Holding:
    """A job body that holds each job until its gate opens, counting how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.gates: dict[int, asyncio.Event] = {}

    def gate(self, n: int) -> asyncio.Event:
        return self.gates.setdefault(n, asyncio.Event())

    def open_all(self) -> None:
        for n in range(100):
            self.gate(n).set()

    async def run(self, n: int) -> int:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.gate(n).wait()
        self.running -= 1
        return n


@pytest.fixture
async def tw(pg_url: str) -> AsyncIterator[TaskManager]:
    async with TaskManager(pg_url, poll_interval=SLOW_POLL, lease_seconds=5) as manager:
        yield manager


async def _idle_worker(
    tw: TaskManager, pg_url: str, concurrency: int = 2
) -> tuple[Worker, asyncio.Task[None]]:
    """A worker idle with an offer standing, and a producer that has seen offers."""

    @tw.task(name="tests.prime")
    async def prime() -> None:
        return None

    worker = tw.make_worker({"default": concurrency})
    runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
    # The first idle wait starts the listener; the next one offers a slot.
    await _until(lambda: _offers(pg_url, worker.id) == 1)
    # A producer dispatches once one of its inserts saw an offer: this one sees it (and runs
    # the usual way), then the worker offers again.
    primer = await prime.enqueue()
    assert primer.state is JobState.PENDING
    await _until_done(tw, primer.id)
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
    holding = Holding()  # busy until every job is in: the worker cannot offer again
    hold = tw.task(name="hold")(holding.run)

    worker, runner = await _idle_worker(tw, pg_url, concurrency=1)
    jobs = [await hold.enqueue(n) for n in range(6)]
    holding.open_all()
    assert sum(job.state is JobState.RUNNING for job in jobs) == 1  # one offer, one job
    assert jobs[0].attempted_by == worker.id
    for job in jobs:
        await _until_done(tw, job.id)
    assert holding.most == 1
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
        schema = own["schema"]
        with psycopg.connect(conninfo, autocommit=True) as conn:
            # A worker that heartbeated, offered, then died without taking its offer back.
            conn.execute(
                f'INSERT INTO "{schema}".taskward_workers VALUES '
                "('ghost', 'h', 1, '{}', %s, %s, 0)",
                (clock.now(), clock.now()),
            )
            conn.execute(
                f"INSERT INTO \"{schema}\".taskward_offers VALUES ('ghost', 'default', 30)"
            )
        first = await work.enqueue()  # sees the offer: the next insert takes it
        assert first.state is JobState.PENDING
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
        for each in (first, job, second):
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


async def test_a_stale_offer_is_never_taken(tw: TaskManager, pg_url: str) -> None:
    # A worker that died with an offer standing: it stopped heartbeating, so no producer
    # hands it a job (which would only wait for its lease to run out).
    conninfo, own = parse_postgres_url(pg_url)
    schema = own["schema"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".taskward_workers VALUES '
            "('gone', 'h', 1, '{}', now() - interval '1 hour', now() - interval '1 hour', 0)"
        )
        conn.execute(f"INSERT INTO \"{schema}\".taskward_offers VALUES ('gone', 'default', 30)")

    @tw.task
    async def work() -> None:
        return None

    for _ in range(2):  # neither seen nor taken
        job = await work.enqueue()
        assert (job.state, job.attempted_by) == (JobState.PENDING, None)
    assert _offers(pg_url, "gone") == 1
    # A live worker's offer of the queue clears it away.
    worker, runner = await _idle_worker(tw, pg_url)
    assert _offers(pg_url, "gone") == 0
    worker.stop()
    await asyncio.wait_for(runner, 20)


async def test_a_job_whose_notify_is_lost_is_adopted(tw: TaskManager, pg_url: str) -> None:
    # The NOTIFY carrying a dispatched job can be lost (the LISTEN connection dropped). The
    # worker sees its offer was taken when it takes it back, and runs the job all the same.
    @tw.task
    async def work() -> str:
        return "ran"

    worker, runner = await _idle_worker(tw, pg_url)
    backend: Any = tw.backend
    backend._listener.deliver = lambda payload: None  # every dispatch NOTIFY goes missing
    job = await work.enqueue()
    assert job.attempted_by == worker.id
    await tw.enqueue_task(work, tags=["wake"])  # not dispatched: a NOTIFY that wakes the loop
    await _until_done(tw, job.id)
    done = await tw.get_task_status(job.id)
    assert (done.attempt, done.attempted_by, done.result) == (1, worker.id, "ran")
    worker.stop()
    await asyncio.wait_for(runner, 20)


async def test_an_offer_left_by_an_error_still_holds_its_slot(tw: TaskManager, pg_url: str) -> None:
    # Taking the offer back fails for a while, so it stands; a producer takes it and its
    # NOTIFY is lost. Until the worker has settled the offer (and adopted that job), its slot
    # stays reserved: the worker (concurrency 1) never runs two jobs at once.
    holding = Holding()
    hold = tw.task(name="hold")(holding.run)

    worker, runner = await _idle_worker(tw, pg_url, concurrency=1)
    backend: Any = tw.backend
    real_withdraw = backend.withdraw
    failing = True

    async def withdraw(**kwargs: Any) -> bool:
        if failing:
            raise psycopg.OperationalError("connection lost (simulated)")
        return bool(await real_withdraw(**kwargs))

    backend.withdraw = withdraw
    backend._listener.deliver = lambda payload: None  # dispatch NOTIFYs go missing
    pending = await hold.enqueue_many([[0], [1]])  # wakes the worker; taking back fails
    dispatched = await hold.enqueue(2)  # takes the offer that still stands
    assert dispatched.attempted_by == worker.id
    await asyncio.sleep(0.5)
    assert holding.running == 0  # the reserved slot: no claim while the offer is unsettled
    failing = False
    await _until(lambda: holding.running == 1)  # the dispatched job, adopted
    await asyncio.sleep(0.3)
    assert holding.most == 1
    holding.open_all()
    for job in [*pending, dispatched]:
        await _until_done(tw, job.id)
    assert holding.most == 1
    worker.stop()
    await asyncio.wait_for(runner, 20)


async def test_no_offers_through_pgbouncer_mode(pg_url: str) -> None:
    # prepare=false is PgBouncer's transaction mode, where a LISTEN can seem to work on a
    # server connection that others then get: a worker there never offers slots.
    async with TaskManager(pg_url + "&prepare=false", poll_interval=0.05) as tw:
        worker = tw.make_worker({"default": 1})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await asyncio.sleep(0.5)
        assert _offers(pg_url) == 0
        worker.stop()
        await asyncio.wait_for(runner, 20)


async def test_producers_without_the_offers_table_insert_undispatched(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The producer meets the missing table first (no worker in this process turned dispatch
    # off before): its first insert is refused, then made again without dispatch.
    async with TaskManager(pg_url) as tw:

        @tw.task
        async def work(n: int) -> int:
            return n

        _drop_offers_table(pg_url)
        first = await work.enqueue(1)
        second = work.enqueue_sync(2)
        assert (first.state, second.state) == (JobState.PENDING, JobState.PENDING)
        assert (await tw.list_tasks()).total_entries == 2
    assert caplog.text.count("direct dispatch is off") == 1


async def test_without_the_offers_table_everything_works_undispatched(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A store not yet migrated to 0005 (migrate_on_start=false), or a role without rights on
    # the table: producers and workers go on without dispatch, saying so once.
    async with TaskManager(pg_url, poll_interval=0.05) as tw:

        @tw.task
        async def work(n: int) -> int:
            return n

        _drop_offers_table(pg_url)
        worker = tw.make_worker({"default": 2})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await asyncio.sleep(0.3)  # idle: it tried to offer
        first = await work.enqueue(1)
        second = work.enqueue_sync(2)
        assert (first.state, second.state) == (JobState.PENDING, JobState.PENDING)
        for job in (first, second):
            await _until_done(tw, job.id)
        worker.stop()
        await asyncio.wait_for(runner, 20)
    assert "fetching failed" not in caplog.text
    assert caplog.text.count("direct dispatch is off") == 1


async def test_slots_gathered_for_a_backlog_keep_the_reserved_one(
    tw: TaskManager, pg_url: str
) -> None:
    # With a backlog the loop gathers free slots before a claim; the slot held for an offer
    # being settled (its job's NOTIFY lost, adopted a moment later) is not one of them.
    holding = Holding()
    hold = tw.task(name="hold")(holding.run)

    worker, runner = await _idle_worker(tw, pg_url, concurrency=4)
    backend: Any = tw.backend
    backend._listener.deliver = lambda payload: None  # the dispatch NOTIFY is lost
    dispatched = await hold.enqueue(9)
    assert dispatched.attempted_by == worker.id
    pending = await hold.enqueue_many([[n] for n in range(6)])  # wakes the loop: a backlog
    await asyncio.sleep(0.3)
    holding.gate(0).set()  # one slot frees while the offer is being settled (for about 1 s)
    await _until(lambda: holding.running == 4)
    await asyncio.sleep(1.5)  # past the adoption of the dispatched job
    assert holding.most == 4
    assert worker.running.keys() >= {dispatched.id}
    holding.open_all()
    for job in [*pending, dispatched]:
        await _until_done(tw, job.id)
    assert holding.most == 4
    worker.stop()
    await asyncio.wait_for(runner, 20)
