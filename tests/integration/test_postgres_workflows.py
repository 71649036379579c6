"""Workflows on PostgreSQL under concurrency: a retry's recount never misses a concurrent end.

The race (migration 0009, ``taskward_step_retried``): C waits for A and B; A failed, so C was
cancelled. An operator retries A (T1) while B's worker finishes B (T2). Each test holds one
side's transaction open on a connection of its own, runs the other side through the backend,
and commits once the backend's call waits for it (``pg_blocking_pids``), so each interleaving
happens as written. Either way, C must end up waiting for A alone: A's completion releases it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from taskward.backends import open_backend
from taskward.backends.postgres import PostgresBackend, parse_postgres_url
from taskward.backoff import ConstantBackoff
from taskward.graph import NewStep, NewWorkflow, WorkflowRecord, step_meta
from taskward.jobs import Job, JobState, NewJob
from taskward.states import Completed, Failed, next_update

pytestmark = pytest.mark.postgres

S = JobState
NOW = datetime(2026, 1, 1, tzinfo=UTC)
WORKER = "worker-1"
POLICY = ConstantBackoff(30)
WAIT = 10.0  # seconds for the backend's call to reach the lock it must wait for


@pytest.fixture
async def backend(pg_url: str) -> AsyncIterator[PostgresBackend]:
    store = open_backend(pg_url)
    assert isinstance(store, PostgresBackend)
    await store.open()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


def step(name: str, depends_on: tuple[int, ...] = (), *, max_attempts: int = 3) -> NewStep:
    """Step ``name`` in a queue of its own."""
    meta = step_meta({}, workflow=0, name=name, passes="none", dependents=True)
    new = NewJob(
        task="tests:noop",
        queue=name,
        args=[],
        kwargs={},
        priority=0,
        max_attempts=max_attempts,
        state=S.BLOCKED if depends_on else S.PENDING,
        scheduled_at=NOW,
        meta=meta,
    )
    return NewStep(name=name, job=new, depends_on=depends_on)


async def claim(backend: PostgresBackend, queue: str) -> Job:
    [job] = await backend.fetch(
        queue=queue,
        limit=1,
        worker_id=WORKER,
        now=NOW,
        lease_until=NOW + timedelta(seconds=60),
    )
    return job


async def finish(backend: PostgresBackend, job: Job, outcome: Any) -> None:
    [ok] = await backend.finish([next_update(job, outcome, NOW, POLICY)], worker_id=WORKER)
    assert ok


async def a_failed_c_cancelled(backend: PostgresBackend) -> tuple[WorkflowRecord, Job]:
    """C waits for A and B; A failed (so C is cancelled); B is running. Returns B's job."""
    flow = NewWorkflow(name="race", steps=(step("a", max_attempts=1), step("b"), step("c", (0, 1))))
    record = await backend.insert_workflow(flow, now=NOW)
    await finish(backend, await claim(backend, "a"), Failed("ValueError", "boom"))
    b = await claim(backend, "b")
    assert (await backend.get(record.step("c").job.id)).state is S.CANCELLED
    return record, b


async def wait_until_blocked_by(
    conn: psycopg.AsyncConnection[Any], call: asyncio.Task[Any]
) -> None:
    """Return once another session waits for ``conn``'s locks (or ``call`` is done already)."""
    pid = conn.info.backend_pid
    async with await psycopg.AsyncConnection.connect(conn.info.dsn, autocommit=True) as watch:
        deadline = time.monotonic() + WAIT
        while not call.done() and time.monotonic() < deadline:
            cursor = await watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                [pid],
            )
            row = await cursor.fetchone()
            if row is not None and row[0] > 0:
                return
            await asyncio.sleep(0.02)


async def c_waits_for_a_alone(backend: PostgresBackend, record: WorkflowRecord) -> None:
    c = record.step("c").job.id
    assert (await backend.get(record.step("b").job.id)).state is S.COMPLETED
    assert (await backend.get(c)).state is S.BLOCKED
    await finish(backend, await claim(backend, "a"), Completed("ok"))
    assert (await backend.get(c)).state is S.PENDING


async def test_a_retry_waits_for_the_end_of_another_dependency_in_flight(
    backend: PostgresBackend, pg_url: str
) -> None:
    """T2 (B's finish) wrote first and has not committed: the retry of A waits for it."""
    record, b = await a_failed_c_cancelled(backend)
    conninfo = parse_postgres_url(pg_url)[0]
    q = backend.q
    async with await psycopg.AsyncConnection.connect(conninfo) as t2:
        # What a finish of B does (finish_jobs, then finish_steps_ended), left uncommitted.
        await t2.execute(
            backend.config.fill(
                "UPDATE {schema}.taskward_jobs"
                " SET state = 'completed', completed_at = %s, lease_until = NULL WHERE id = %s"
            ),
            [NOW, b.id],
        )
        ended = {"ended": [b.id], "ended_ats": [NOW], "ended_texts": [NOW.isoformat()]}
        await t2.execute(q["finish_steps_ended"], ended)
        retry = asyncio.create_task(backend.retry(record.step("a").job.id, now=NOW))
        await wait_until_blocked_by(t2, retry)
        assert not retry.done(), "the retry did not wait for the end of B in flight"
        await t2.commit()
    assert (await retry).state is S.PENDING
    await c_waits_for_a_alone(backend, record)


async def test_an_end_after_a_retry_in_flight_counts_down_the_revived_step(
    backend: PostgresBackend, pg_url: str
) -> None:
    """T1 (the retry of A) ran first and has not committed: B's finish waits for it."""
    record, b = await a_failed_c_cancelled(backend)
    conninfo = parse_postgres_url(pg_url)[0]
    q = backend.q
    async with await psycopg.AsyncConnection.connect(conninfo) as t1:
        # What a retry of A does (retry_job, then step_retried), left uncommitted.
        a = record.step("a").job.id
        await t1.execute(q["retry_job"], {"id": a, "now": NOW})
        await t1.execute(q["step_retried"], {"id": a})
        done = asyncio.create_task(finish(backend, b, Completed("b")))
        await wait_until_blocked_by(t1, done)
        assert not done.done(), "the finish of B did not wait for the retry in flight"
        await t1.commit()
    await done
    await c_waits_for_a_alone(backend, record)


async def test_a_cancel_and_a_finish_of_a_shared_dependency_do_not_deadlock(
    backend: PostgresBackend, pg_url: str
) -> None:
    """C waits for A; D for A and C. An operator cancels C (T3, its job row locked first, as
    cancel does) while A's worker finishes A: each locks a step's job row before its steps
    row, in id order, so the finish waits for C and never holds D while it waits."""
    flow = NewWorkflow(name="race", steps=(step("a"), step("c", (0,)), step("d", (0, 1))))
    record = await backend.insert_workflow(flow, now=NOW)
    a = await claim(backend, "a")
    c, d = record.step("c").job.id, record.step("d").job.id
    conninfo = parse_postgres_url(pg_url)[0]
    fill = backend.config.fill
    async with await psycopg.AsyncConnection.connect(conninfo) as t3:
        await t3.execute(
            fill("UPDATE {schema}.taskward_jobs SET state = 'cancelled' WHERE id = %s"), [c]
        )
        done = asyncio.create_task(finish(backend, a, Completed("a")))
        await wait_until_blocked_by(t3, done)
        assert not done.done(), "the finish of A did not wait for the cancel of C"
        await t3.execute(
            fill(
                "SELECT {schema}.taskward_steps_ended("
                "%s::bigint[], %s::text[], %s::timestamptz[], %s::text[])"
            ),
            [[c], ["cancelled"], [NOW], [NOW.isoformat()]],
        )  # would deadlock if the finish held D's row while it waited for C's
        await t3.commit()
    await done
    assert (await backend.get(a.id)).state is S.COMPLETED
    assert (await backend.get(d)).state is S.CANCELLED  # C's end cancelled it first
