"""Shared values and small steps for the contract tests (time is always passed in explicitly).

Times are whole seconds: SQL backends store float epoch seconds, so equality is only safe at
values that survive that round trip.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from taskward.backends import Backend
from taskward.backoff import ConstantBackoff
from taskward.jobs import Job, JobFilter, JobState, NewJob, Page
from taskward.states import Completed, Discarded, Failed, Outcome, next_update

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RETRY_DELAY = 30
POLICY = ConstantBackoff(RETRY_DELAY)
WORKER = "worker-1"
OTHER_WORKER = "worker-2"
LEASE_SECONDS = 60
S = JobState


def at(seconds: float) -> datetime:
    """Return ``NOW`` plus ``seconds``."""
    return NOW + timedelta(seconds=seconds)


def new_job(**overrides: Any) -> NewJob:
    """Return a valid pending ``NewJob`` due at ``NOW``, with ``overrides`` applied."""
    fields: dict[str, Any] = {
        "task": "tests:noop",
        "queue": "default",
        "args": [],
        "kwargs": {},
        "priority": 5,
        "max_attempts": 3,
        "scheduled_at": NOW,
        "state": S.PENDING,
    }
    fields.update(overrides)
    return NewJob(**fields)


def assert_utc(*values: datetime | None) -> None:
    """Assert every given datetime is timezone-aware UTC."""
    for value in values:
        if value is None:
            continue
        assert value.tzinfo is not None, f"{value!r} is naive"
        assert value.utcoffset() == timedelta(0), f"{value!r} is not UTC"


async def insert_one(backend: Backend, *, now: datetime = NOW, **overrides: Any) -> Job:
    """Insert one new job and return it."""
    [inserted] = await backend.insert([new_job(**overrides)], now=now)
    assert not inserted.duplicate
    return inserted.job


async def claim(
    backend: Backend,
    *,
    worker: str = WORKER,
    now: datetime = NOW,
    lease_seconds: float = LEASE_SECONDS,
    **overrides: Any,
) -> Job:
    """Insert one job and fetch it as ``worker``: return it running (attempt 1).

    The job's queue must hold no other pending job, so that fetch hands out this one.
    """
    job = await insert_one(backend, now=now, **overrides)
    return await fetch_one(backend, job, worker=worker, now=now, lease_seconds=lease_seconds)


async def fetch_one(
    backend: Backend,
    job: Job,
    *,
    worker: str = WORKER,
    now: datetime = NOW,
    lease_seconds: float = LEASE_SECONDS,
) -> Job:
    """Fetch ``job`` (the only pending job of its queue) and return it running."""
    lease_until = now + timedelta(seconds=lease_seconds)
    fetched = await backend.fetch(
        queue=job.queue, limit=1, worker_id=worker, now=now, lease_until=lease_until
    )
    assert [j.id for j in fetched] == [job.id]
    return fetched[0]


async def finish_with(
    backend: Backend,
    job: Job,
    outcome: Outcome,
    *,
    now: datetime = NOW,
    worker: str | None = None,
) -> bool:
    """Write ``outcome`` for running ``job`` as ``worker`` (default: its owner)."""
    update = next_update(job, outcome, now, POLICY)
    [ok] = await backend.finish([update], worker_id=worker or job.attempted_by or WORKER)
    return ok


async def reach(backend: Backend, state: JobState, **overrides: Any) -> Job:
    """Drive a fresh job to ``state`` through public operations; return it as stored.

    Uses ``NOW`` for every step; the job's queue must hold no other pending job.
    """
    if state is S.SCHEDULED:
        overrides = {"state": S.SCHEDULED, "scheduled_at": at(3600), **overrides}
        return await insert_one(backend, **overrides)
    if state is S.PENDING:
        return await insert_one(backend, **overrides)
    if state is S.CANCELLED:
        job = await insert_one(backend, **overrides)
        return await backend.cancel(job.id, reason="test", now=NOW)
    if state is S.FAILED:
        overrides = {"max_attempts": 1, **overrides}
    job = await claim(backend, **overrides)
    outcomes: dict[JobState, Outcome] = {
        S.COMPLETED: Completed("ok"),
        S.RETRYABLE: Failed("ValueError", "boom"),
        S.FAILED: Failed("ValueError", "boom"),
        S.DISCARDED: Discarded("bad input"),
    }
    if state is not S.RUNNING:
        assert await finish_with(backend, job, outcomes[state])
    stored = await backend.get(job.id)
    assert stored.state is state
    return stored


async def list_all(backend: Backend, **filters: Any) -> Page[Job]:
    """Return the first page (up to 1000) of jobs matching ``filters``, by id."""
    return await backend.list_jobs(JobFilter(per_page=1000, sort_by="id", **filters))


def pretend_running(job: Job) -> Job:
    """Return ``job`` as a confused worker might believe it is: running (to build an update)."""
    return replace(job, state=S.RUNNING, attempt=max(job.attempt, 1))


async def fetch(
    backend: Backend,
    limit: int = 10,
    *,
    now: datetime = NOW,
    worker: str = WORKER,
    queue: str = "q",
) -> list[Job]:
    """Claim up to ``limit`` jobs of ``queue`` as ``worker`` at ``now``."""
    return await backend.fetch(
        queue=queue,
        limit=limit,
        worker_id=worker,
        now=now,
        lease_until=now + timedelta(seconds=LEASE_SECONDS),
    )


async def fill(backend: Backend, n: int, queue: str = "q") -> None:
    """Insert ``n`` pending jobs into ``queue`` (``args`` number them)."""
    await backend.insert([new_job(queue=queue, args=[i]) for i in range(n)], now=NOW)
