"""The Acker writes outcomes in batches: one ``finish`` call per flush, on every real store.

Each test runs the Acker on a real backend (memory, SQLite, PostgreSQL) seen through
``Counting``, a delegate that records the job ids of every ``finish`` call and can make the
store fail at that seam. Every test asserts the exact calls, so an Acker that wrote outcomes
one ``finish`` per outcome fails each of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from taskward.backends import Backend, open_backend
from taskward.backoff import ConstantBackoff
from taskward.errors import BackendUnavailable
from taskward.jobs import Job, JobState, JobUpdate, NewJob
from taskward.runtime.acker import Acker
from taskward.states import Completed, Orphaned, next_update

S = JobState
NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = ConstantBackoff(30)
WORKER = "worker-1"
ACKER_LOGGER = "taskward.runtime.acker"
BOUND = 10.0  # generous: each wait below ends in milliseconds


class StoreRefused(Exception):
    """What a store raises for a row it cannot take (not an outage)."""


class Counting:
    """A real backend whose ``finish`` calls are recorded (job ids per call) and can fail.

    ``failures``: raised by the next calls, one each, before anything is written.
    ``refused``: job ids whose outcome the store refuses; a batch holding one is refused whole.
    ``lost_replies``: that many next calls write, then lose the reply (``BackendUnavailable``).
    ``gate``: when set, a call waits for it after signalling ``entered`` (a write in flight).
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.calls: list[list[int]] = []
        self.failures: list[Exception] = []
        self.refused: set[int] = set()
        self.lost_replies = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        ids = [u.job_id for u in updates]
        self.calls.append(ids)
        if self.failures:
            raise self.failures.pop(0)
        if self.refused & set(ids):
            raise StoreRefused(f"cannot store the outcome of job(s) {sorted(self.refused)}")
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        flags = await self.backend.finish(updates, worker_id=worker_id)
        if self.lost_replies:
            self.lost_replies -= 1
            raise BackendUnavailable("connection dropped after the commit")
        return flags

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh, opened and migrated real backend."""
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path}/jobs.db"}
    url = urls.get(request.param) or str(request.getfixturevalue("pg_url"))
    backend = open_backend(url)
    await backend.open()
    try:
        await backend.migrate()
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def counting(store: Backend) -> Counting:
    return Counting(store)


@pytest.fixture
def acker(counting: Counting) -> Acker:
    return Acker(cast(Backend, counting), WORKER)


async def claim(backend: Backend, n: int) -> list[Job]:
    """Insert ``n`` jobs and fetch them as ``WORKER``: running, attempt 1, in id order."""
    new = NewJob(
        task="tests:noop",
        queue="default",
        args=[],
        kwargs={},
        priority=5,
        max_attempts=3,
        scheduled_at=NOW,
        state=S.PENDING,
    )
    await backend.insert([new] * n, now=NOW)
    jobs = await backend.fetch(
        queue="default", limit=n, worker_id=WORKER, now=NOW, lease_until=NOW + timedelta(seconds=60)
    )
    assert len(jobs) == n
    return sorted(jobs, key=lambda job: job.id)


def completed(job: Job) -> JobUpdate:
    return next_update(job, Completed(f"done {job.id}"), NOW + timedelta(seconds=1), POLICY)


async def states(backend: Backend, jobs: list[Job]) -> list[JobState]:
    return [(await backend.get(job.id)).state for job in jobs]


async def test_one_flush_writes_every_queued_outcome_in_one_finish_call(
    store: Backend, counting: Counting, acker: Acker
) -> None:
    jobs = await claim(store, 3)
    for job in jobs:
        acker.add(completed(job))
    assert counting.calls == []  # adding writes nothing

    await acker.flush()

    assert counting.calls == [[job.id for job in jobs]]
    assert await states(store, jobs) == [S.COMPLETED] * 3
    assert [(await store.get(job.id)).result for job in jobs] == [f"done {j.id}" for j in jobs]
    assert acker.held == frozenset()
    await acker.flush()  # nothing queued: no call
    assert len(counting.calls) == 1


@pytest.mark.parametrize(
    "outage",
    [BackendUnavailable("database went away"), ConnectionResetError("connection reset")],
    ids=["BackendUnavailable", "OSError"],
)
async def test_an_outage_keeps_the_batch_for_the_next_flush(
    store: Backend, counting: Counting, acker: Acker, outage: OSError
) -> None:
    a, b, c = await claim(store, 3)
    acker.add(completed(a))
    acker.add(completed(b))
    counting.failures = [outage]

    with pytest.raises(type(outage)):
        await acker.flush()
    assert await states(store, [a, b]) == [S.RUNNING] * 2  # nothing written, nothing lost
    assert acker.held == {a.id, b.id}

    acker.add(completed(c))
    await acker.flush()

    assert counting.calls == [[a.id, b.id], [a.id, b.id, c.id]]  # the kept batch first
    assert await states(store, [a, b, c]) == [S.COMPLETED] * 3
    assert acker.held == frozenset()


async def test_a_row_the_store_refuses_is_retried_alone_and_dropped_while_others_are_written(
    store: Backend, counting: Counting, acker: Acker, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c = await claim(store, 3)
    counting.refused = {b.id}
    for job in (a, b, c):
        acker.add(completed(job))

    with caplog.at_level(logging.WARNING, logger=ACKER_LOGGER):
        await acker.flush()  # no error: the others were written

    assert counting.calls == [[a.id, b.id, c.id], [a.id], [b.id], [c.id]]
    # The refused outcome's job stays running, leased: the Rescuer gives it an outcome later.
    assert await states(store, [a, b, c]) == [S.COMPLETED, S.RUNNING, S.COMPLETED]
    assert acker.held == frozenset()  # dropped: the heartbeat no longer keeps it leased
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == ACKER_LOGGER]
    assert logged[0] == (
        logging.WARNING,
        "writing 3 outcome(s) failed; writing them one by one",
    )
    [refusal] = [message for level, message in logged if level == logging.ERROR]
    assert refusal.startswith(f"job {b.id}: the store refused its outcome (completed); dropped")

    await acker.flush()  # the dropped outcome is not sent again
    assert len(counting.calls) == 4


async def test_when_every_row_is_refused_the_store_is_at_fault_and_all_are_kept(
    store: Backend, counting: Counting, acker: Acker
) -> None:
    a, b = await claim(store, 2)
    counting.refused = {a.id, b.id}
    acker.add(completed(a))
    acker.add(completed(b))

    with pytest.raises(StoreRefused):
        await acker.flush()
    assert counting.calls == [[a.id, b.id], [a.id], [b.id]]
    assert acker.held == {a.id, b.id}

    counting.refused = set()  # the disk has room again
    await acker.flush()
    assert counting.calls[3:] == [[a.id, b.id]]
    assert await states(store, [a, b]) == [S.COMPLETED] * 2
    assert acker.held == frozenset()


async def test_held_reports_the_jobs_whose_outcome_waits_until_it_is_written(
    store: Backend, counting: Counting, acker: Acker
) -> None:
    a, b, c = await claim(store, 3)
    assert acker.held == frozenset()
    acker.add(completed(a))
    acker.add(completed(b))
    assert acker.held == {a.id, b.id}

    counting.gate = asyncio.Event()
    flushing = asyncio.create_task(acker.flush())
    await asyncio.wait_for(counting.entered.wait(), BOUND)
    # One write in flight, carrying both outcomes: they are still held (kept leased).
    assert counting.calls == [[a.id, b.id]]
    assert acker.held == {a.id, b.id}
    acker.add(completed(c))  # arrives during the write: waits for the next flush
    assert acker.held == {a.id, b.id, c.id}

    counting.gate.set()
    await asyncio.wait_for(flushing, BOUND)
    assert acker.held == {c.id}
    assert await states(store, [a, b, c]) == [S.COMPLETED, S.COMPLETED, S.RUNNING]

    counting.gate = None
    await acker.flush()
    assert counting.calls == [[a.id, b.id], [c.id]]
    assert acker.held == frozenset()


async def test_a_write_whose_reply_was_lost_is_sent_again_and_reported_as_stored(
    store: Backend, counting: Counting, acker: Acker, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await claim(store, 2)
    acker.add(completed(a))
    acker.add(completed(b))
    counting.lost_replies = 1

    with pytest.raises(BackendUnavailable):
        await acker.flush()
    assert await states(store, [a, b]) == [S.COMPLETED] * 2  # written; the reply was lost
    assert acker.held == {a.id, b.id}

    with caplog.at_level(logging.INFO, logger=ACKER_LOGGER):
        await acker.flush()  # sent again; the fence refuses it: it is stored already

    assert counting.calls == [[a.id, b.id], [a.id, b.id]]
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == ACKER_LOGGER]
    assert logged == [
        (
            logging.INFO,
            f"job {job.id}: its outcome (completed) was stored before the store's reply was lost",
        )
        for job in (a, b)
    ]
    assert acker.held == frozenset()


async def test_an_outcome_the_fence_refuses_is_reported_as_a_lost_lease(
    store: Backend, counting: Counting, acker: Acker, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await claim(store, 2)
    # b's worker was presumed dead: its lease expired and the Rescuer gave it an outcome.
    later = NOW + timedelta(seconds=120)
    [expired] = [job for job in await store.expired_leases(now=later, limit=10) if job.id == b.id]
    assert await store.finish([next_update(expired, Orphaned(), later, POLICY)], worker_id=WORKER)
    acker.add(completed(a))
    acker.add(completed(b))

    with caplog.at_level(logging.INFO, logger=ACKER_LOGGER):
        await acker.flush()

    assert counting.calls == [[a.id, b.id]]
    assert await states(store, [a, b]) == [S.COMPLETED, S.RETRYABLE]
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == ACKER_LOGGER]
    assert logged == [
        (
            logging.WARNING,
            f"job {b.id}: lease lost before its outcome (completed) was written; "
            "another run owns it",
        )
    ]
    assert acker.held == frozenset()
