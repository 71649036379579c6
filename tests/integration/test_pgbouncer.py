"""taskward behind a real PgBouncer in transaction mode (``prepare=false``).

Producers and the admin API go through PgBouncer; the worker connects to the database
directly (LISTEN needs a session of its own, as the README says), and also works entirely
through PgBouncer on its polling fallback.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from taskward import InvalidOptions, JobState, TaskManager
from tests_support.servers import PostgresServer, find_pgbouncer, private_pgbouncer, require_pg


@pytest.fixture(scope="module")
def bouncer(pg_server: PostgresServer) -> Iterator[int]:
    """The port of a PgBouncer (transaction pooling) in front of the test cluster."""
    if find_pgbouncer() is None:
        if require_pg():
            pytest.fail("TASKWARD_REQUIRE_PG is set but pgbouncer is not installed")
        pytest.skip("pgbouncer not installed")
    with private_pgbouncer(pg_server) as port:
        yield port


@pytest.fixture
def urls(pg_server: PostgresServer, bouncer: int) -> tuple[str, str]:
    """(direct URL, URL through PgBouncer) of one fresh schema."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    direct = f"{pg_server.url()}?schema={schema}"
    pooled = f"postgresql://postgres@127.0.0.1:{bouncer}/postgres?schema={schema}&prepare=false"
    return direct, pooled


def _tasks(tw: TaskManager) -> None:
    @tw.task(name="double")
    def double(x: int) -> int:
        return 2 * x


async def test_producers_through_pgbouncer_and_a_direct_worker(urls: tuple[str, str]) -> None:
    direct, pooled = urls
    producer, worker = TaskManager(pooled), TaskManager(direct, poll_interval=0.05)
    _tasks(producer)
    _tasks(worker)
    async with producer, worker:  # the producer migrates, through PgBouncer
        first = await producer.enqueue_task("double", args=[1])
        bulk = await producer.enqueue_many("double", [[n] for n in range(2, 52)])
        unique = await producer.enqueue_task("double", args=[100], unique_for=60)
        again = await producer.enqueue_task("double", args=[100], unique_for=60)
        assert again.id == unique.id
        later = await producer.schedule_task("double", at=3600, args=[7])
        synced = producer.sync.enqueue_task("double", args=[200])
        # Transactional enqueue from a sync connection through PgBouncer: kept iff committed.
        with psycopg.connect(pooled.split("?")[0], prepare_threshold=None) as conn:
            kept = producer.sync.enqueue_task("double", args=[300], connection=conn)
            conn.commit()
            dropped = producer.sync.enqueue_task("double", args=[400], connection=conn)
            conn.rollback()

        result = await worker.drain()
        assert result.counts == {"completed": 54}
        done = [first, *bulk, unique, synced, kept]
        for job in done:
            stored = await producer.get_task_status(job.id)
            assert stored.state is JobState.COMPLETED
            assert stored.result == 2 * job.args[0]
            assert stored.attempt == 1
        assert (await producer.get_task_status(later.id)).state is JobState.SCHEDULED
        page = await producer.list_tasks(state="completed", per_page=100)
        assert page.total_entries == 54
        stats = await producer.get_statistics()
        assert stats["queues"]["default"]["completed"] == 54
        assert stats["queues"]["default"]["scheduled"] == 1
        cancelled = await producer.cancel_task(later.id)
        assert cancelled.state is JobState.CANCELLED
        assert (await producer.retry_task(later.id)).state is JobState.PENDING
        assert not [
            j for j in (await producer.list_tasks(per_page=100)).items if j.id == dropped.id
        ]
    producer.sync.shutdown()


async def test_a_worker_entirely_through_pgbouncer_drains(urls: tuple[str, str]) -> None:
    _, pooled = urls
    async with TaskManager(pooled, poll_interval=0.05) as tw:
        _tasks(tw)
        jobs = await tw.enqueue_many("double", [[n] for n in range(30)])
        assert (await tw.drain()).counts == {"completed": 30}
        assert [(await tw.get_task_status(j.id)).result for j in jobs] == [2 * n for n in range(30)]


@pytest.mark.parametrize(
    "limits",
    [
        {"global_limit": 3},
        {"rate_limit": "1000/s"},
        {"global_limit": 3, "rate_limit": "1000/s"},
        {"partition_by": 0, "global_limit": 1},
    ],
    ids=["global", "rate", "both", "partitioned"],
)
async def test_a_limited_queue_drains_entirely_through_pgbouncer(
    urls: tuple[str, str], limits: dict[str, object]
) -> None:
    """The limited claim sends its lock and its claim in one pipeline (one implicit
    transaction up to the sync), which must hold through a transaction pooler too; the
    partitioned claim is one call of a function with settings of its own (generic plans)."""
    _, pooled = urls
    async with TaskManager(pooled, poll_interval=0.05) as tw:
        _tasks(tw)
        await tw.configure_queue("default", **limits)  # type: ignore[arg-type]
        await tw.hold_queue("default", seconds=600)
        await tw.hold_queue("default", seconds=None)  # a row that held a hold, released
        jobs = await tw.enqueue_many("double", [[n] for n in range(30)])
        assert (await tw.drain(concurrency=10)).counts == {"completed": 30}
        assert [(await tw.get_task_status(j.id)).result for j in jobs] == [2 * n for n in range(30)]


async def test_prepare_false_refuses_a_session_that_is_not_utc(pg_server: PostgresServer) -> None:
    role = f"tz_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
        conn.execute(f"ALTER ROLE {role} SET timezone TO 'Asia/Kathmandu'")
    url = f"postgresql://{role}@127.0.0.1:{pg_server.port}/postgres?prepare=false"
    tw = TaskManager(url)
    _tasks(tw)
    with pytest.raises(InvalidOptions, match="ALTER DATABASE"):
        await tw.open()
    with pytest.raises(InvalidOptions, match="not UTC"):
        await tw.backend.open()
