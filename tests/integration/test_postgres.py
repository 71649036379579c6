"""PostgreSQL-only behaviour: transactional enqueue, races between connections, schemas,
LISTEN/NOTIFY wake-ups, and surviving a database restart.

The shared contract suite (tests/contract) covers everything the backends have in common; this
file covers what only a server database can do. Each test gets a fresh schema on the session's
throwaway cluster; the restart tests get a cluster of their own.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from taskward import Job, JobState, TaskManager
from taskward.backends import open_backend
from taskward.backends.postgres import PostgresBackend, parse_postgres_url
from taskward.backends.sql.migrate import load_migrations
from taskward.errors import BackendUnavailable, InvalidJob, InvalidOptions, JobNotFound
from taskward.jobs import NewJob, NewJobBatch
from taskward.serialize import encode_payload
from tests_support.servers import PostgresServer, private_postgres

pytestmark = pytest.mark.postgres
ADD = "tests_support.jobs:add"
KEEP = "tests_support.jobs:keep"  # takes any arguments: for what the store keeps


def new_job(queue: str = "default", unique_key: str | None = None) -> NewJob:
    return NewJob(
        task="t",
        queue=queue,
        args=[1],
        kwargs={},
        priority=0,
        max_attempts=3,
        scheduled_at=datetime.now(UTC),
        state=JobState.PENDING,
        unique_key=unique_key,
        unique_window=60 if unique_key else None,
    )


@pytest.fixture
async def tw(pg_url: str) -> AsyncIterator[TaskManager]:
    async with TaskManager(pg_url, poll_interval=0.05, lease_seconds=5) as manager:
        yield manager


@pytest.fixture
def own_server(pg_server: PostgresServer) -> Iterator[PostgresServer]:
    """A cluster of the test's own, for tests that stop and restart the server."""
    with private_postgres() as server:
        yield server


def libpq_url(pg_url: str) -> str:
    return parse_postgres_url(pg_url)[0]


# -- URLs --------------------------------------------------------------------------------------
def test_url_parameters_of_taskward_are_kept_from_libpq() -> None:
    conninfo, own = parse_postgres_url(
        "postgresql://u:p@h:5/db?schema=app_1&sslmode=disable&pool_max_size=4"
    )
    assert conninfo == "postgresql://u:p@h:5/db?sslmode=disable"
    assert own == {"schema": "app_1", "pool_max_size": "4"}
    backend = PostgresBackend("postgres://h/db?schema=app_1&pool_max_size=4&prepare=false")
    assert (backend.schema, backend.config.max_size, backend.config.prepare) == ("app_1", 4, False)


@pytest.mark.parametrize(
    "query",
    ["schema=Bad-Name", 'schema=x";drop', "pool_max_size=0", "pool_min_size=5&pool_max_size=2",
     "prepare=maybe", "pool_max_size=ten"],
)  # fmt: skip
def test_bad_url_parameters_are_rejected(query: str) -> None:
    with pytest.raises(InvalidOptions):
        PostgresBackend(f"postgresql://h/db?{query}")


async def test_unreachable_server_is_a_clear_error() -> None:
    from tests_support.servers import free_port

    backend = open_backend(f"postgresql://postgres@127.0.0.1:{free_port()}/x?pool_min_size=1")
    with pytest.raises(BackendUnavailable):
        await backend.open()
    await backend.close()


# -- transactional enqueue ---------------------------------------------------------------------
async def test_transactional_enqueue_commits_with_the_callers_transaction(
    tw: TaskManager, pg_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
        job = await tw.enqueue_task("tests_support.jobs:add", args=[1, 2], connection=conn)
        # Not visible to anyone else before the commit.
        assert (await tw.list_tasks()).total_entries == 0
        await conn.commit()
    assert (await tw.get_task_status(job.id)).state is JobState.PENDING


async def test_transactional_enqueue_rolled_back_leaves_no_job(
    tw: TaskManager, pg_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
        await tw.enqueue_task("tests_support.jobs:add", args=[1, 2], connection=conn)
        await conn.rollback()
    assert (await tw.list_tasks()).total_entries == 0
    assert (await tw.drain()).total == 0


async def test_a_task_enqueues_inside_the_callers_transaction(tw: TaskManager, pg_url: str) -> None:
    from tests_support.jobs import add

    task = tw.task(add)
    async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
        kept = await task.enqueue_with(args=[1, 2], connection=conn)
        await conn.commit()
        await task.enqueue_with(args=[3, 4], connection=conn)
        await conn.rollback()
    assert [job.id for job in (await tw.list_tasks()).items] == [kept.id]


async def test_bulk_enqueue_joins_the_callers_transaction(tw: TaskManager, pg_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
        await tw.enqueue_many(ADD, [[n] for n in range(50)], connection=conn)
        await conn.rollback()
        await tw.enqueue_many(ADD, [[n] for n in range(30)], connection=conn)
        await conn.commit()
    assert (await tw.list_tasks()).total_entries == 30


async def test_transactional_enqueue_from_a_sync_connection(tw: TaskManager, pg_url: str) -> None:
    def in_thread() -> int:
        with psycopg.connect(libpq_url(pg_url)) as conn:
            kept = tw.sync.enqueue_task("tests_support.jobs:add", args=[1], connection=conn)
            conn.commit()
            with conn.transaction(force_rollback=True):
                tw.sync.enqueue_task("tests_support.jobs:add", args=[2], connection=conn)
            conn.commit()
            return kept.id

    kept_id = await asyncio.to_thread(in_thread)
    page = await tw.list_tasks()
    assert [job.id for job in page.items] == [kept_id]


async def test_a_refused_job_leaves_the_callers_transaction_usable(
    tw: TaskManager, pg_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
        with pytest.raises(InvalidJob):
            # PostgreSQL text cannot hold NUL: refused, in a savepoint of its own.
            await tw.enqueue_task(
                "tests_support.jobs:add", args=[1], connection=conn, queue="q", tags=["a\x00"]
            )
        await conn.execute("SELECT 1")  # the caller's transaction is not aborted
        await tw.enqueue_task("tests_support.jobs:add", args=[2], connection=conn)
        await conn.commit()
    assert (await tw.list_tasks()).total_entries == 1


# -- bulk inserts ---------------------------------------------------------------------------------
AWKWARD_TEXT = ["tab\there", "line\nbreak\r\n", "back\\slash \\N", 'quote " {brace,}', "é ✓ 😀"]


def awkward_calls() -> list[tuple[list[object], dict[str, object]]]:
    return [([text, {"k": text}, 1e300, [1.5, None, True]], {"kw": text}) for text in AWKWARD_TEXT]


def assert_stored_as_given(jobs: list[Job], stored: list[Job]) -> None:
    assert [job.id for job in stored] == [job.id for job in jobs]
    for job, back in zip(jobs, stored, strict=True):
        assert (back.args, back.kwargs) == (job.args, job.kwargs)
        assert (back.tags, back.meta, back.timeout) == (job.tags, job.meta, job.timeout)
        assert back.state is JobState.PENDING


@pytest.mark.parametrize("in_transaction", [False, True], ids=["copy", "in-transaction"])
async def test_bulk_insert_stores_awkward_text_exactly(
    tw: TaskManager, pg_url: str, in_transaction: bool
) -> None:
    # Pool path: reserved ids + COPY text format; caller's transaction: one INSERT … SELECT.
    options = {"tags": AWKWARD_TEXT, "meta": {"who": "tab\t\\"}, "timeout": 2.5}
    if in_transaction:
        async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
            jobs = await tw.enqueue_many(KEEP, awkward_calls(), connection=conn, **options)
            await conn.commit()
    else:
        jobs = await tw.enqueue_many(KEEP, awkward_calls(), **options)
    stored = [await tw.get_task_status(job.id) for job in jobs]
    assert_stored_as_given(jobs, stored)
    assert stored[0].args == ["tab\there", {"k": "tab\there"}, 1e300, [1.5, None, True]]
    assert stored[0].tags == tuple(AWKWARD_TEXT)


async def test_bulk_insert_refusing_a_row_stores_none_of_the_batch(tw: TaskManager) -> None:
    calls = [[n] for n in range(600)]
    with pytest.raises(InvalidJob):
        await tw.enqueue_many(ADD, calls, tags=["nul\x00"])
    await tw.enqueue_many(ADD, calls[:3])
    assert (await tw.list_tasks()).total_entries == 3


async def test_bulk_ids_are_right_when_another_session_inserts_during_the_copy(
    pg_url: str,
) -> None:
    # The COPY's rows take identity values as the server reads them; a job inserted by
    # another session meanwhile takes one in the middle, so the bulk's ids are not one span.
    backend = PostgresBackend(pg_url)
    try:
        await backend.migrate()
        now = datetime.now(UTC)
        template = new_job()
        other_ids: list[int] = []

        def batches() -> Iterator[NewJobBatch]:
            for start in range(0, 300, 100):
                numbers = range(start, start + 100)
                payloads = [encode_payload([n], {}, max_bytes=99) for n in numbers]
                yield NewJobBatch(template=template, payloads=payloads)
                with psycopg.connect(libpq_url(pg_url), autocommit=True) as other:
                    row = other.execute(
                        f'INSERT INTO "{backend.schema}".taskward_jobs'
                        " (task, queue, state, max_attempts, scheduled_at, inserted_at)"
                        " VALUES ('other', 'default', 'pending', 1, now(), now()) RETURNING id"
                    ).fetchone()
                    assert row is not None
                    other_ids.append(row[0])

        jobs = await backend.insert_stream(batches(), count=300, now=now)
        assert [job.args for job in jobs] == [[n] for n in range(300)]
        assert [job.id for job in jobs] == sorted(job.id for job in jobs)
        assert not {job.id for job in jobs} & set(other_ids)
        assert min(other_ids) < max(job.id for job in jobs)  # the ids did interleave
        for job in jobs:
            assert (await backend.get(job.id)).args == job.args
    finally:
        await backend.close()


async def test_bulk_whose_ids_cannot_be_read_back_stores_none(pg_url: str) -> None:
    # An operator sets the id sequence back during the COPY: the rows' ids are no longer
    # above the floor, so they cannot be paired with the jobs; the insert rolls back.
    backend = PostgresBackend(pg_url)
    sequence = f"pg_get_serial_sequence('\"{backend.schema}\".taskward_jobs', 'id')"
    try:
        await backend.migrate()
        with psycopg.connect(libpq_url(pg_url), autocommit=True) as admin:
            admin.execute(f"SELECT setval({sequence}, 5000)")

            def batches() -> Iterator[NewJobBatch]:
                for start in (0, 100):
                    if start:
                        admin.execute(f"SELECT setval({sequence}, 100)")
                    numbers = range(start, start + 100)
                    payloads = [encode_payload([n], {}, max_bytes=99) for n in numbers]
                    yield NewJobBatch(template=new_job(), payloads=payloads)

            with pytest.raises(BackendUnavailable, match="set back"):
                await backend.insert_stream(batches(), count=200, now=datetime.now(UTC))
        assert (await backend.stats()).counts == {}
    finally:
        await backend.close()


async def test_backend_bulk_insert_refusing_a_late_job_stores_none(pg_url: str) -> None:
    # A lone surrogate cannot be sent as UTF-8: the 300th job fails inside the COPY.
    backend = PostgresBackend(pg_url)
    try:
        await backend.migrate()
        now = datetime.now(UTC)
        jobs = [new_job() for _ in range(300)]
        jobs.append(replace(new_job(), args_json='["\ud800"]'))
        with pytest.raises(InvalidJob, match="cannot store"):
            await backend.insert(jobs, now=now)
        assert (await backend.stats()).counts == {}
    finally:
        await backend.close()


async def test_bulk_failing_late_keeps_the_callers_error_out_of_the_server_log(
    tw: TaskManager, pg_server: PostgresServer
) -> None:
    # The COPY is cancelled with a fixed text: the caller's error (which quotes the call) is
    # raised to the caller, never sent to the server's log.
    marker = f"secret-{uuid.uuid4().hex}"
    calls: list[Any] = [[n] for n in range(300)]
    calls[250] = marker  # not an args list: InvalidOptions quoting it
    with pytest.raises(InvalidOptions, match=marker):
        await tw.enqueue_many(ADD, calls)
    assert (await tw.list_tasks()).total_entries == 0
    async with asyncio.timeout(10):  # the server writes its log line on its own time
        while "the caller failed to build the jobs" not in pg_server.log_file.read_text():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert marker not in pg_server.log_file.read_text()


async def test_bulk_cut_short_by_statement_timeout_says_so_and_stores_none(
    pg_server: PostgresServer,
) -> None:
    name = f"short_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(pg_server.url()), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"ALTER DATABASE {name} SET statement_timeout = '30ms'")
    try:
        async with TaskManager(pg_server.url(name)) as tw:
            with pytest.raises(BackendUnavailable, match="smaller enqueue_many calls"):
                await tw.enqueue_many(ADD, [[n] for n in range(60_000)])
            with psycopg.connect(libpq_url(pg_server.url(name)), autocommit=True) as conn:
                assert conn.execute("SELECT count(*) FROM taskward_jobs").fetchone() == (0,)
            # Smaller calls go through.
            assert len(await tw.enqueue_many(ADD, [[n] for n in range(20)])) == 20
    finally:
        with psycopg.connect(libpq_url(pg_server.url()), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.parametrize("given", [2, 4], ids=["fewer", "more"])
async def test_stream_given_another_count_than_announced_stores_none(
    pg_url: str, given: int
) -> None:
    backend = PostgresBackend(pg_url)
    try:
        await backend.migrate()
        now = datetime.now(UTC)
        new = NewJob(
            task="t", queue="default", args=[1], kwargs={}, priority=0, max_attempts=1,
            scheduled_at=now, state=JobState.PENDING,
        )  # fmt: skip
        payload = encode_payload([1], {}, max_bytes=1000)
        batch = NewJobBatch(template=new, payloads=[payload] * given)
        with pytest.raises(ValueError, match="count=3"):
            await backend.insert_stream(iter([batch]), count=3, now=now)
        assert (await backend.stats()).counts == {}
    finally:
        await backend.close()


async def test_bulk_ids_follow_the_order_of_the_calls(tw: TaskManager) -> None:
    jobs = await tw.enqueue_many(ADD, [[n] for n in range(1200)], batch_size=500)
    assert [job.args[0] for job in jobs] == list(range(1200))
    assert [job.id for job in jobs] == sorted(job.id for job in jobs)
    stored = [job for n in (1, 2) for job in (await tw.list_tasks(per_page=600, page=n)).items]
    assert {job.id: job.args[0] for job in stored} == {job.id: job.args[0] for job in jobs}


# -- races between connections ------------------------------------------------------------------
async def test_concurrent_unique_enqueues_from_many_connections_make_one_job(pg_url: str) -> None:
    managers = [TaskManager(pg_url) for _ in range(8)]
    try:
        for manager in managers:
            await manager.open()
        results = await asyncio.gather(
            *(
                managers[n % 8].enqueue_task("tests_support.jobs:add", args=[7], unique_for=60)
                for n in range(64)
            )
        )
        assert len({job.id for job in results}) == 1
        assert (await managers[0].list_tasks()).total_entries == 1
    finally:
        for manager in managers:
            await manager.close()


async def test_unique_enqueues_in_rolled_back_transactions_leave_exactly_one_job(
    tw: TaskManager, pg_url: str
) -> None:
    async def one(n: int) -> None:
        async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
            await tw.enqueue_task(
                "tests_support.jobs:add", args=[9], unique_for=60, connection=conn
            )
            if n % 2:
                await conn.rollback()
            else:
                await conn.commit()

    await asyncio.gather(*(one(n) for n in range(16)))
    assert (await tw.list_tasks()).total_entries == 1


async def test_concurrent_migrations_apply_each_version_once(pg_url: str) -> None:
    backends = [open_backend(pg_url) for _ in range(6)]
    try:
        await asyncio.gather(*(b.migrate() for b in backends))
        async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
            schema = pg_url.rsplit("schema=", 1)[1]
            cursor = await conn.execute(
                f'SELECT version, count(*) FROM "{schema}".taskward_migrations GROUP BY version '
                "ORDER BY version"
            )
            versions = [m.version for m in load_migrations("taskward.backends.postgres")]
            assert len(versions) >= 3
            assert await cursor.fetchall() == [(v, 1) for v in versions]
    finally:
        for backend in backends:
            await backend.close()


async def test_many_claimers_never_claim_a_job_twice(pg_url: str) -> None:
    backends = [open_backend(pg_url) for _ in range(6)]
    try:
        for backend in backends:
            await backend.open()
        await backends[0].migrate()
        inserted = await backends[0].insert([new_job() for _ in range(600)], now=datetime.now(UTC))
        now = datetime.now(UTC)

        async def claim_all(n: int) -> list[int]:
            got: list[int] = []
            while batch := await backends[n].fetch(
                queue="default", limit=7, worker_id=f"w{n}", now=now, lease_until=now
            ):
                got.extend(job.id for job in batch)
            return got

        claimed = [
            i for ids in await asyncio.gather(*(claim_all(n) for n in range(6))) for i in ids
        ]
        assert sorted(claimed) == sorted(i.job.id for i in inserted)
    finally:
        for backend in backends:
            await backend.close()


async def test_schemas_keep_applications_apart(pg_server: PostgresServer) -> None:
    first = TaskManager(f"{pg_server.url()}?schema=app_{uuid.uuid4().hex[:8]}")
    second = TaskManager(f"{pg_server.url()}?schema=app_{uuid.uuid4().hex[:8]}")
    async with first, second:
        await first.enqueue_task("tests_support.jobs:add", args=[1])
        assert (await first.list_tasks()).total_entries == 1
        assert (await second.list_tasks()).total_entries == 0


# -- wake-ups -----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["insert", "copy", "in-transaction", "bulk-in-transaction"])
async def test_idle_worker_is_woken_by_notify_not_by_polling(pg_url: str, how: str) -> None:
    # Polling every 30 s: a job done within seconds was started by the NOTIFY.
    worker_side = TaskManager(pg_url, poll_interval=30, lease_seconds=5)
    producer = TaskManager(pg_url)
    async with worker_side, producer:
        task = asyncio.create_task(worker_side.run_worker())
        try:
            backend = worker_side.backend
            assert isinstance(backend, PostgresBackend)
            for _ in range(200):
                if backend.listening:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the worker is now parked in wait_for_jobs
            if how == "copy":  # COPY cannot notify: a statement after it does
                job = (await producer.enqueue_many(ADD, [[2, 3], [4, 5]]))[0]
            elif how == "insert":
                job = await producer.enqueue_task(ADD, args=[2, 3])
            else:  # the NOTIFY of the insert statement is delivered on the caller's commit
                async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
                    if how == "in-transaction":
                        job = await producer.enqueue_task(ADD, args=[2, 3], connection=conn)
                    else:
                        job = (await producer.enqueue_many(ADD, [[2, 3]], connection=conn))[0]
                    await asyncio.sleep(0.3)
                    with pytest.raises(JobNotFound):  # nobody sees it before the commit
                        await producer.get_task_status(job.id)
                    await conn.commit()
            started = time.monotonic()
            while (await producer.get_task_status(job.id)).state is not JobState.COMPLETED:
                assert time.monotonic() - started < 5, "the worker was not woken"
                await asyncio.sleep(0.01)
            assert (await producer.get_task_status(job.id)).result == 5
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_worker_started_while_the_database_is_down_waits_for_it(
    own_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{own_server.url()}?schema=late"
    own_server.stop()
    worker_side = TaskManager(url, poll_interval=0.05)
    worker = asyncio.create_task(worker_side.run_worker(install_signal_handlers=False))
    try:
        for _ in range(200):  # the first failed attempt is logged
            if "the store is unreachable" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert "the store is unreachable" in caplog.text
        assert not worker.done()
        await asyncio.to_thread(own_server.start)
        async with TaskManager(url) as producer:
            job = await producer.enqueue_task(ADD, args=[2, 3])
            for _ in range(400):
                if (await producer.get_task_status(job.id)).state is JobState.COMPLETED:
                    break
                await asyncio.sleep(0.05)
            assert (await producer.get_task_status(job.id)).result == 5
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await worker_side.close()


async def test_a_worker_gives_up_on_an_unreachable_database_after_its_patience() -> None:
    manager = TaskManager("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(BackendUnavailable):
        await manager.run_worker(install_signal_handlers=False, wait_for_backend=0.6)


async def test_listener_and_pool_reconnect_after_a_server_restart(
    own_server: PostgresServer,
) -> None:
    url = f"{own_server.url()}?schema=restart"
    async with TaskManager(url, poll_interval=30, lease_seconds=5) as worker_side:
        backend = worker_side.backend
        assert isinstance(backend, PostgresBackend)
        task = asyncio.create_task(worker_side.run_worker())
        try:
            await asyncio.to_thread(own_server.restart)
            deadline = time.monotonic() + 15
            while not backend.listening:
                assert time.monotonic() < deadline, "the listener did not reconnect"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            async with TaskManager(url) as producer:
                job = await producer.enqueue_task("tests_support.jobs:add", args=[1, 1])
                deadline = time.monotonic() + 10
                while (await producer.get_task_status(job.id)).state is not JobState.COMPLETED:
                    assert time.monotonic() < deadline, "the worker did not carry on"
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_busy_pool_never_delays_the_heartbeat_past_the_lease(pg_url: str) -> None:
    """A job body holding the worker's only pooled connection for four leases: the heartbeat
    keeps the lease on its own connection, so no other node ever sees it expired."""
    worker_side = TaskManager(f"{pg_url}&pool_max_size=1", poll_interval=0.05, lease_seconds=0.5)
    observer = TaskManager(pg_url)
    held = asyncio.Event()

    @worker_side.task(name="hold_the_pool")
    async def hold_the_pool() -> str:
        held.set()
        backend = worker_side.backend
        assert isinstance(backend, PostgresBackend)
        await backend._connections.run(lambda conn: conn.execute("SELECT pg_sleep(2)"))
        return "done"

    async with worker_side, observer:
        job = await hold_the_pool.enqueue()
        worker = worker_side.make_worker({"default": 1})
        running = asyncio.create_task(
            worker_side.run_worker(worker=worker, install_signal_handlers=False)
        )
        try:
            await asyncio.wait_for(held.wait(), 10)
            seen_expired: list[int] = []
            while (await observer.get_task_status(job.id)).state is JobState.RUNNING:
                expired = await observer.backend.expired_leases(now=datetime.now(UTC), limit=10)
                seen_expired += [j.id for j in expired]
                await asyncio.sleep(0.05)
            assert seen_expired == []
            done = await observer.get_task_status(job.id)
            assert (done.state, done.attempt, done.result) == (JobState.COMPLETED, 1, "done")
        finally:
            worker.stop()
            await running


async def test_listing_counts_exactly_up_to_the_cap_then_estimates(tw: TaskManager) -> None:
    from taskward.backends.postgres import EXACT_COUNT_CAP

    await tw.enqueue_many(ADD, [[i] for i in range(EXACT_COUNT_CAP)])
    await tw.enqueue_task(ADD, args=[1], queue="other")
    exact = await tw.list_tasks(queue="default", per_page=20)
    assert (exact.total_entries, exact.total_is_estimate) == (EXACT_COUNT_CAP, False)

    await tw.enqueue_task(ADD, args=[2])
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    await backend._connections.run(
        lambda conn: conn.execute(f"ANALYZE {backend.schema}.taskward_jobs")
    )
    everything = await tw.list_tasks(per_page=20)
    assert everything.total_is_estimate
    # the planner's estimate after ANALYZE, never below what an exact count saw
    assert EXACT_COUNT_CAP < everything.total_entries < EXACT_COUNT_CAP * 1.2
    assert [job.args for job in everything.items[:2]] == [[2], [1]]
    assert len(everything.items) == 20
    few = await tw.list_tasks(queue="other")
    assert (few.total_entries, few.total_is_estimate) == (1, False)

    # The last page (partly full) knows the exact total; a page beyond the end is not
    # counted past the rows it could have held.
    per_page = 1000
    last = await tw.list_tasks(per_page=per_page, page=11, sort_by="id")
    assert len(last.items) == EXACT_COUNT_CAP + 2 - 10 * per_page
    assert (last.total_entries, last.total_is_estimate) == (EXACT_COUNT_CAP + 2, False)
    beyond = await tw.list_tasks(per_page=per_page, page=40)
    assert beyond.items == []
    assert beyond.total_entries <= 39 * per_page


async def jobs_in(tw: TaskManager, queue: str, state: JobState, n: int) -> None:
    """Add ``n`` jobs of ``queue`` in ``state`` (set in SQL: only their counts matter here)."""
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    ids = [job.id for job in await tw.enqueue_many(ADD, [[i] for i in range(n)], queue=queue)]
    update = f"UPDATE {backend.schema}.taskward_jobs SET state = %s WHERE id = ANY(%s)"
    await backend._connections.run(lambda conn: conn.execute(update, (state.value, ids)))


async def analyze(tw: TaskManager) -> None:
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    await backend._connections.run(
        lambda conn: conn.execute(f"ANALYZE {backend.schema}.taskward_jobs")
    )


async def test_statistics_estimate_only_large_groups_of_finished_jobs(
    tw: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap, a queue's finished jobs of one state are the planner's estimate (and say
    so); waiting and running jobs, and every group under the cap, stay exact."""
    from taskward.backends.postgres import admin

    truth = {
        ("bulk", JobState.COMPLETED): 600,
        ("bulk", JobState.FAILED): 150,
        ("bulk", JobState.DISCARDED): 3,
        ("bulk", JobState.PENDING): 180,  # past the cap, but waiting: exact
        ("bulk", JobState.RUNNING): 2,
        ("other", JobState.COMPLETED): 40,
        ("other", JobState.CANCELLED): 400,
        ("other", JobState.SCHEDULED): 5,
    }
    for (queue, state), n in truth.items():
        await jobs_in(tw, queue, state, n)
    await analyze(tw)
    exact = await tw.backend.stats()  # the real cap: all of them are small
    assert exact.estimated == frozenset()
    assert {(q, s): n for q, per in exact.counts.items() for s, n in per.items()} == truth
    assert (await tw.get_statistics())["estimated"] == {}

    monkeypatch.setattr(admin, "STATS_EXACT_CAP", 100)
    stats = await tw.backend.stats()
    large = {("bulk", JobState.COMPLETED), ("bulk", JobState.FAILED), ("other", JobState.CANCELLED)}
    assert stats.estimated == large
    for (queue, state), n in truth.items():
        counted = stats.counts[queue][state]
        if (queue, state) in large:
            # ANALYZE sampled every row of this small table; the planner scales to its size.
            # (Without the statistics on (queue, state), bulk/completed would read ~430.)
            assert counted > 100, (queue, state, counted)
            assert abs(counted - n) <= n * 0.2, (queue, state, counted)
        else:
            assert counted == n, (queue, state, counted)
    data = await tw.get_statistics()
    assert data["estimated"] == {"bulk": ["completed", "failed"], "other": ["cancelled"]}
    assert data["queues"]["bulk"]["pending"] == 180


async def test_statistics_estimates_are_never_below_the_cap(
    tw: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics from before the jobs finished (no ANALYZE since) estimate few: the capped
    count has seen more, so the estimate is at least the cap plus one."""
    from taskward.backends.postgres import admin

    await jobs_in(tw, "late", JobState.PENDING, 1)
    await analyze(tw)  # the planner now believes "late" has no completed job
    await jobs_in(tw, "late", JobState.COMPLETED, 300)
    monkeypatch.setattr(admin, "STATS_EXACT_CAP", 100)
    stats = await tw.backend.stats()
    assert stats.estimated == {("late", JobState.COMPLETED)}
    assert stats.counts["late"][JobState.COMPLETED] >= 101
    assert stats.counts["late"][JobState.PENDING] == 1


async def test_statistics_have_extended_statistics_on_queue_and_state(tw: TaskManager) -> None:
    """Migration 0004: the planner's per-(queue, state) estimates come from an MCV list."""
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    await tw.get_statistics()  # migrated

    async def kinds(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
        cursor = await conn.execute(
            "SELECT stxname, stxkind FROM pg_statistic_ext WHERE stxnamespace = %s::regnamespace",
            (backend.schema,),
        )
        return list(await cursor.fetchall())

    assert await backend._connections.run(kinds) == [("taskward_jobs_queue_state_mcv", ["m"])]


async def test_statistics_turn_jit_off_for_their_own_transaction_only(tw: TaskManager) -> None:
    """JIT compiling a statistics scan of a large table cost more than running it; the
    setting is SET LOCAL (PgBouncer refuses jit among the startup options)."""
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)

    async def settings(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
        cursor = await conn.execute("SELECT current_setting('jit'), current_setting('TimeZone')")
        return list(await cursor.fetchall())

    default = await backend._connections.run(settings)
    await tw.get_statistics()
    await tw.list_tasks()
    assert await backend._connections.run(settings) == default
    assert default[0][1] == "UTC"


async def test_closing_the_backend_leaves_no_lease_connection_behind(pg_url: str) -> None:
    """A lease-keeping call waiting while the backend closes opens nothing afterwards."""
    backend = open_backend(pg_url)
    assert isinstance(backend, PostgresBackend)
    await backend.migrate()
    now = datetime.now(UTC)
    await backend.extend_leases([1], worker_id="w", lease_until=now)  # opens it
    async with backend._control.lock:  # a heartbeat in flight
        waiting = asyncio.create_task(backend.extend_leases([1], worker_id="w", lease_until=now))
        await asyncio.sleep(0.05)
        await backend.close()
    with pytest.raises(BackendUnavailable):
        await waiting
    assert backend._control.conn is None


# The worker's statements run prepared; once the server switches to a generic plan (it does
# when that looks no dearer than planning each call) a plan that scans the whole table costs
# every claim time in proportion to the table.
GENERIC_PLAN_PARAMS: dict[str, dict[str, Any]] = {
    "fetch_jobs": {
        "queue": "default", "limit": 50, "now": "2026-01-01T00:00:00Z",
        "lease_until": "2026-01-01T00:00:30Z", "worker_id": "w",
    },
    # The limited claims (migrations 0006, 0007); the rated one with a global limit too.
    "fetch_jobs_limited": {
        "queue": "default", "limit": 50, "now": "2026-01-01T00:00:00Z",
        "lease_until": "2026-01-01T00:00:30Z", "worker_id": "w", "global_limit": 20,
    },
    "fetch_jobs_rated": {
        "queue": "default", "limit": 50, "now": "2026-01-01T00:00:00Z",
        "lease_until": "2026-01-01T00:00:30Z", "worker_id": "w", "global_limit": 20,
        "window": 1767225600, "used": 3,
    },
    "finish_jobs": {
        "ids": [1, 2], "attempts": [1, 1], "states": ["completed"] * 2, "refunds": [0, 0],
        "scheduled_ats": [None, None], "errors": [None, None], "results": ["null"] * 2,
        "ats": ["2026-01-01T00:00:00Z"] * 2, "expired_befores": [None, None], "worker_id": "w",
    },
    "prune_state": {"state": "completed", "before": "2026-01-01T00:00:00Z", "limit": 1000},
    "extend_leases": {"ids": [1, 2], "worker_id": "w", "lease_until": "2026-01-01T00:00:30Z"},
    "expired_leases": {"now": "2026-01-01T00:00:00Z", "limit": 100},
    "promote_due": {"now": "2026-01-01T00:00:00Z"},
}  # fmt: skip


@pytest.mark.parametrize("analyzed", [True, False], ids=["analyzed", "never-analyzed"])
@pytest.mark.parametrize("name", sorted(GENERIC_PLAN_PARAMS))
async def test_generic_plans_of_the_worker_statements_never_scan_the_whole_table(
    tw: TaskManager, pg_url: str, name: str, analyzed: bool
) -> None:
    """With ``id IN (subquery)`` the claim's generic plan hash-joined against a sequential
    scan of the jobs table: 2.5 ms of server CPU per claim of 50 on 10,000 jobs."""
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    table = f'"{backend.schema}".taskward_jobs'
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        # Never analyzed means never: autovacuum must not analyze the table meanwhile either.
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = {analyzed})".encode())
    task = tw.task(name="noop")(lambda: None)
    await task.enqueue_many([[] for _ in range(5000)])
    params = GENERIC_PLAN_PARAMS[name]
    order = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", backend.q[name])))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${order.index(m[1]) + 1}", backend.q[name])
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        if analyzed:
            conn.execute(f"ANALYZE {table}".encode())
        else:
            last = conn.execute(
                "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                "WHERE relid = %s::regclass",
                [table],
            ).fetchone()
            assert last == (None, None)
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE hot AS {numbered.replace('%%', '%')}".encode())
        cursor = psycopg.ClientCursor(conn)
        marks = ", ".join(["%s"] * len(order))
        conn.execute("BEGIN")
        try:
            cursor.execute(f"EXPLAIN EXECUTE hot({marks})", [params[k] for k in order])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            conn.execute("ROLLBACK")
    assert "on taskward_jobs" in plan, plan  # the plan of this statement, on this table
    assert "Seq Scan on taskward_jobs" not in plan, plan


async def test_a_failed_job_retried_while_prune_waits_for_its_row_is_not_deleted(
    tw: TaskManager, pg_url: str
) -> None:
    """prune's DELETE picks a failed job, then waits for the row an operator's retry holds;
    once the retry commits, the row is pending, and the DELETE must re-check that."""
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)

    @tw.task(name="always.fails", max_attempts=1)
    async def always_fails() -> None:
        raise RuntimeError("no")

    job = await always_fails.enqueue()
    await tw.drain()
    assert (await tw.get_task_status(job.id)).state is JobState.FAILED
    table = f'"{backend.schema}".taskward_jobs'
    with psycopg.connect(libpq_url(pg_url)) as retrying:  # a transaction, held open
        retrying.execute(
            f"UPDATE {table} SET state = 'pending', completed_at = NULL WHERE id = %s".encode(),
            [job.id],
        )
        cutoff = datetime.now(UTC).replace(year=2100)
        pruning = asyncio.create_task(backend.prune(before={JobState.FAILED: cutoff}))
        with psycopg.connect(libpq_url(pg_url), autocommit=True) as watch:
            for _ in range(200):  # until the DELETE waits for the retry's row lock
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE%%'"
                ).fetchone()
                if waiting is not None and waiting[0] == 1:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("prune never waited for the retried row")
        retrying.commit()
        assert await pruning == 0
    assert (await tw.get_task_status(job.id)).state is JobState.PENDING


# -- partitioned queues (migration 0008) -------------------------------------------------------
# Keys whose text the store must read exactly as taskward.limits.key_text writes it: the stored
# arguments keep non-ASCII text as it is (and DEL), json.dumps escapes them; floats, big ints,
# escapes inside strings, nested containers in their own key order.
AWKWARD_KEYS: list[Any] = [
    "acme",
    "ünïcode 😀",
    "",
    None,
    42,
    12345678901234567890,
    1e300,
    -0.0,
    2.5,
    True,
    [1, "é", None],
    {"b": "😀\x7f", "a": [False, 'q"\\']},
]


async def test_every_insert_path_stores_the_key_the_rule_reads(
    tw: TaskManager, pg_url: str
) -> None:
    """One statement, one COPY, one JSON array, a unique insert, a caller's transaction (async and
    sync), a blocking insert and the dispatch function all key a job as ``key_text`` does."""
    from taskward.backends.postgres.dispatch import plain_insert
    from taskward.limits import key_text

    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    await tw.configure_queue("api", partition_by="tenant")

    async def one(value: Any) -> list[Job]:
        kwargs = {"tenant": value}
        jobs = [await tw.enqueue_task(KEEP, args=[1], kwargs=kwargs, queue="api")]
        jobs.append(await tw.enqueue_task(KEEP, args=[2], kwargs=kwargs, queue="api", tags=["t"]))
        jobs.append(
            await tw.enqueue_task(KEEP, args=[3], kwargs=kwargs, queue="api", unique_for=60)
        )
        jobs += await tw.enqueue_many(KEEP, [([4], kwargs), ([5], kwargs)], queue="api")
        async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
            jobs.append(
                await tw.enqueue_task(KEEP, args=[6], kwargs=kwargs, queue="api", connection=conn)
            )
            jobs += await tw.enqueue_many(
                KEEP, [([7], kwargs), ([8], kwargs)], queue="api", connection=conn
            )
            await conn.commit()

        def in_thread() -> list[Job]:
            made = [tw.sync.enqueue_task(KEEP, args=[9], kwargs=kwargs, queue="api")]
            with psycopg.connect(libpq_url(pg_url)) as conn:
                made.append(
                    tw.sync.enqueue_task(
                        KEEP, args=[10], kwargs=kwargs, queue="api", connection=conn
                    )
                )
                conn.commit()
            return made

        jobs += await asyncio.to_thread(in_thread)
        new = replace(new_job("api"), kwargs=kwargs)
        name, params = plain_insert([new], datetime.now(UTC), dispatch=True)
        assert name == "insert_job_dispatch"
        [(job_id, *_, key)] = await backend._connections.fetchall(name, params)
        dispatched = await tw.get_task_status(job_id)
        assert key == dispatched.partition_key
        return [*jobs, dispatched]

    for value in AWKWARD_KEYS:
        jobs = await one(value)
        assert len(jobs) == 11
        expected = key_text(value)
        assert {j.partition_key for j in jobs} == {expected}, value  # as returned
        stored = [(await tw.get_task_status(j.id)).partition_key for j in jobs]
        assert set(stored) == {expected}, value  # as stored


async def test_a_producers_key_wins_on_every_insert_path(tw: TaskManager, pg_url: str) -> None:
    await tw.configure_queue("api", partition_by="tenant")
    kwargs = {"tenant": "by-rule"}
    given = [await tw.enqueue_task(KEEP, kwargs=kwargs, queue="api", partition_key="k1")]
    given += await tw.enqueue_many(
        KEEP, [([1], kwargs), ([2], kwargs)], queue="api", partition_key=""
    )
    async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
        given += await tw.enqueue_many(
            KEEP, [([3], kwargs)], queue="api", connection=conn, partition_key="k3"
        )
        await conn.commit()
    stored = [(await tw.get_task_status(j.id)).partition_key for j in given]
    assert [j.partition_key for j in given] == stored == ["k1", "", "", "k3"]


async def test_a_bulk_of_jobs_with_and_without_producer_keys_keeps_each_jobs_key(
    pg_url: str,
) -> None:
    backend = open_backend(pg_url)
    try:
        await backend.migrate()
        now = datetime.now(UTC)
        jobs = [
            replace(new_job("p"), kwargs={"tenant": "t"}),
            replace(new_job("p"), partition_key="given"),
            replace(new_job("p"), partition_key=""),
            new_job("p"),
            new_job("plain"),
        ]
        await backend.set_queue_limits("p", _by_tenant())
        inserted = await backend.insert(jobs, now=now)  # one COPY
        returned = [i.job.partition_key for i in inserted]
        stored = [(await backend.get(i.job.id)).partition_key for i in inserted]
        assert returned == stored == ["t", "given", "", "", None]
    finally:
        await backend.close()


def _by_tenant(**limits: Any) -> Any:
    from taskward.limits import PartitionBy, QueueLimits

    return QueueLimits(partition_by=PartitionBy(kwarg="tenant"), **limits)


async def test_a_new_rule_waits_for_an_insert_in_flight_and_keys_its_job(
    tw: TaskManager, pg_url: str
) -> None:
    """The insert read the queue's rule (none) inside a caller's transaction still open; the
    rule set meanwhile waits for its commit, then keys the job: no job is left without a key."""
    async with await psycopg.AsyncConnection.connect(libpq_url(pg_url)) as conn:
        job = await tw.enqueue_task(KEEP, kwargs={"tenant": "acme"}, queue="api", connection=conn)
        assert job.partition_key is None
        setting = asyncio.create_task(tw.configure_queue("api", partition_by="tenant"))
        await asyncio.sleep(0.3)
        assert not setting.done()  # it waits for the insert's transaction
        await conn.commit()
    await setting
    assert (await tw.get_task_status(job.id)).partition_key == "acme"
    later = await tw.enqueue_task(KEEP, kwargs={"tenant": "initech"}, queue="api")
    assert later.partition_key == "initech"


async def test_a_claim_that_still_thinks_a_queue_partitioned_claims_it_the_right_way(
    pg_url: str,
) -> None:
    """Another process cleared the rule (keeping a global limit), then dropped the limits: the
    one-round-trip partitioned claim finds no rule and the claim falls back, each time."""
    from taskward.limits import QueueLimits

    setter, worker = open_backend(pg_url), open_backend(pg_url)
    try:
        await setter.migrate()
        now = datetime.now(UTC)
        later = now.replace(year=now.year + 1)
        await setter.set_queue_limits("p", _by_tenant(global_limit=2))
        await setter.insert([replace(new_job("p"), kwargs={"tenant": "a"})] * 6, now=now)
        claim: dict[str, Any] = {"queue": "p", "worker_id": "w", "now": now, "lease_until": later}
        assert len(await worker.fetch(limit=5, **claim)) == 2  # one key, limit 2
        await setter.set_queue_limits("p", QueueLimits(global_limit=3))
        assert len(await worker.fetch(limit=5, **claim)) == 1  # the queue's limit: 3 run
        await setter.set_queue_limits("p", QueueLimits())
        assert len(await worker.fetch(limit=5, **claim)) == 3
    finally:
        await setter.close()
        await worker.close()


@pytest.mark.parametrize("analyzed", [True, False], ids=["analyzed", "never-analyzed"])
async def test_the_partitioned_claims_statements_use_their_indexes(
    tw: TaskManager, pg_url: str, analyzed: bool
) -> None:
    """Every statement of taskward_claim_by_key, as planned for the worker (generic plans), on
    a table never analyzed too: no scan of the table, nor of the queue's pending jobs (0001's
    claim index, or a sort: each probe of the walk would then read the whole backlog)."""
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    table = f'"{backend.schema}".taskward_jobs'
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = {analyzed})".encode())
    await tw.configure_queue("api", partition_by="tenant", global_limit=100, rate_limit="1000/s")
    await tw.hold_queue("api", seconds=1, key="t9")  # a row of taskward_partitions
    calls = [([n], {"tenant": f"t{n % 10}"}) for n in range(3000)]
    await tw.enqueue_many(KEEP, calls, queue="api")
    now = datetime.now(UTC)
    with psycopg.connect(libpq_url(pg_url), autocommit=True) as conn:
        if analyzed:
            conn.execute(f"ANALYZE {table}".encode())
        plans: list[str] = []
        conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_level = notice",
        ):
            conn.execute(setting.encode())
        params = {
            "queue": "api", "limit": 30, "worker_id": "w", "now": now,
            "lease_until": now.replace(year=now.year + 1), "now_ms": 0, "lag_ms": 10_000,
            "extra": 100,
        }  # fmt: skip
        for _ in range(7):  # past the plan cache's first five custom plans, had it used them
            claimed = conn.execute(backend.q["claim_by_key"], params).fetchall()
            assert len(claimed) == 31
    nested = [plan for plan in plans if "claim_by_key(" not in plan]
    walk = [plan for plan in nested if "WITH RECURSIVE" in plan]
    assert walk, plans
    assert all("taskward_jobs_claim_by_key" in plan for plan in walk)
    for plan in nested:
        assert "Seq Scan on taskward_jobs" not in plan, plan
        assert "using taskward_jobs_claim on" not in plan, plan
        assert "JIT" not in plan, plan
    [claim] = [plan for plan in nested if "WITH claimed AS" in plan][-1:]
    assert "taskward_jobs_pkey" in claim, claim


async def test_prune_deletes_key_rows_long_over_and_keeps_the_others(tw: TaskManager) -> None:
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    now = datetime.now(UTC)
    await backend.set_queue_limits("p", _by_tenant())
    for key, until in [("old", now.replace(year=2000)), ("held", now.replace(year=now.year + 1))]:
        await backend.hold_queue("p", until=until, key=key)
    await backend.prune(before={})
    assert (await backend.partition_flow("p", "old")).held_until is None  # gone: as if none
    assert (await backend.partition_flow("p", "held")).held_until is not None
    assert await backend._connections.execute("prune_partitions", {"limit": 10}) == 0


async def test_a_producer_on_the_code_before_partitions_still_dispatches_and_keys(
    tw: TaskManager,
) -> None:
    """0008 keeps 0005's signature of the dispatch function for producers not upgraded yet;
    the job it stores is keyed by the rule like any other."""
    backend = tw.backend
    assert isinstance(backend, PostgresBackend)
    await tw.configure_queue("api", partition_by="tenant")
    old_call = (
        f'SELECT o_id, o_worker FROM "{backend.schema}".taskward_insert_dispatch('
        "'t', 'api', '[]'::json, %(kwargs)s::json, 0, 3, %(now)s, %(now)s)"
    )
    async with backend._connections.connection() as conn:
        cursor = await conn.execute(
            old_call.encode(), {"kwargs": '{"tenant": "acme"}', "now": datetime.now(UTC)}
        )
        [(job_id, worker)] = await cursor.fetchall()
    assert worker is None  # a partitioned queue is never dispatched
    assert (await tw.get_task_status(job_id)).partition_key == "acme"
