"""Contract: ``Backend.health_figures`` counts due, running, stuck and ended jobs the same way
on every store (the rules are ``taskward.health.figures``'), at an injected ``now``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from taskward.backends import Backend
from taskward.health.figures import Ended, HealthFigures, HealthQuery, QueueFigures, TaskFigures
from taskward.limits import PartitionBy, QueueLimits
from taskward.states import Cancelled, Completed, Discarded, Failed, Outcome

from .helpers import NOW, S, at, claim, fetch_one, finish_with, insert_one

GRACE = 30.0
STUCK_AFTER = 3600.0


def query(
    now: datetime, *, since: datetime | None = None, recent: datetime | None = None
) -> HealthQuery:
    """A query at ``now`` with the standard windows unless given."""
    standard = HealthQuery.at(now, lease_grace=GRACE, stuck_after=STUCK_AFTER)
    return HealthQuery(
        now=now,
        since=since or standard.since,
        recent_since=recent or standard.recent_since,
        lease_grace=GRACE,
        stuck_after=STUCK_AFTER,
    )


def queue_of(figures: HealthFigures, name: str) -> QueueFigures | None:
    return next((q for q in figures.queues if q.queue == name), None)


@pytest.mark.any_store
async def test_an_empty_store_has_no_figures(backend: Backend) -> None:
    assert await backend.health_figures(query(NOW)) == HealthFigures()


async def test_backlog_counts_pending_and_due_jobs_the_stager_has_not_moved(
    backend: Backend,
) -> None:
    await insert_one(backend, queue="a", scheduled_at=at(-50), priority=0)
    # Lower priority but older: the oldest due job is found whatever its priority.
    await insert_one(backend, queue="a", scheduled_at=at(-100), priority=9)
    # Scheduled, due 200 s ago, not promoted: due all the same, and the oldest.
    await insert_one(backend, queue="a", state=S.SCHEDULED, scheduled_at=at(-200))
    # Scheduled for later: not due.
    await insert_one(backend, queue="a", state=S.SCHEDULED, scheduled_at=at(100))
    await insert_one(backend, queue="b", state=S.SCHEDULED, scheduled_at=at(1))
    await backend.pause_queue("p")

    figures = await backend.health_figures(query(NOW))

    assert figures.queues == (QueueFigures(queue="a", backlog=3, oldest_due_at=at(-200)),)
    assert figures.paused == frozenset({"p"})
    assert figures.tasks == ()
    # At the scheduled job's due time (inclusive) it joins the backlog.
    later = await backend.health_figures(query(at(1)))
    assert queue_of(later, "b") == QueueFigures(queue="b", backlog=1, oldest_due_at=at(1))


async def test_a_partitioned_queue_s_oldest_due_job_is_found_in_any_key(
    backend: Backend,
) -> None:
    await backend.set_queue_limits("p", QueueLimits(partition_by=PartitionBy(kwarg="tenant")))
    await insert_one(backend, queue="p", kwargs={"tenant": "b"}, scheduled_at=at(-10))
    await insert_one(backend, queue="p", kwargs={"tenant": "a"}, scheduled_at=at(-5))
    await insert_one(backend, queue="p", kwargs={"tenant": "c"}, scheduled_at=at(-30), priority=9)

    figures = await backend.health_figures(query(NOW))

    assert queue_of(figures, "p") == QueueFigures(queue="p", backlog=3, oldest_due_at=at(-30))


async def test_a_retryable_job_is_due_once_its_backoff_ended(backend: Backend) -> None:
    job = await claim(backend, queue="r", max_attempts=3)
    assert await finish_with(backend, job, Failed("E", "x"), now=at(10))
    stored = await backend.get(job.id)
    assert stored.state is S.RETRYABLE

    before = await backend.health_figures(query(stored.scheduled_at - (at(1) - NOW)))
    assert queue_of(before, "r") is None
    due = await backend.health_figures(query(stored.scheduled_at))
    assert queue_of(due, "r") == QueueFigures(
        queue="r", backlog=1, oldest_due_at=stored.scheduled_at
    )


async def test_stuck_running_jobs_by_timeout_by_age_and_by_ended_lease(backend: Backend) -> None:
    long_lease = 100_000
    timed = await claim(backend, queue="t", timeout=60.0, lease_seconds=long_lease)
    untimed = await claim(backend, queue="n", lease_seconds=long_lease)
    leased = await claim(backend, queue="l", lease_seconds=60)

    # Timeout 60 s + grace 30 s: stuck strictly after 90 s.
    assert queue_of(await backend.health_figures(query(at(90))), "t") == QueueFigures(
        queue="t", running=1
    )
    assert queue_of(await backend.health_figures(query(at(91))), "t") == QueueFigures(
        queue="t", running=1, stuck=1, stuck_ids=(timed.id,)
    )
    # No timeout: stuck strictly after stuck_after.
    assert queue_of(await backend.health_figures(query(at(3600))), "n") == QueueFigures(
        queue="n", running=1
    )
    assert queue_of(await backend.health_figures(query(at(3601))), "n") == QueueFigures(
        queue="n", running=1, stuck=1, stuck_ids=(untimed.id,)
    )
    # A lease that ended more than the grace ago and was not rescued.
    assert queue_of(await backend.health_figures(query(at(90))), "l") == QueueFigures(
        queue="l", running=1
    )
    assert queue_of(await backend.health_figures(query(at(91))), "l") == QueueFigures(
        queue="l", running=1, stuck=1, stuck_ids=(leased.id,)
    )


async def test_stuck_ids_come_longest_running_first(backend: Backend) -> None:
    later = await claim(backend, queue="s", now=at(10), lease_seconds=100_000)
    earlier = await claim(backend, queue="s", now=at(0), lease_seconds=100_000)
    fresh = await claim(backend, queue="s", now=at(3000), lease_seconds=100_000)

    figures = await backend.health_figures(query(at(3700)))

    assert queue_of(figures, "s") == QueueFigures(
        queue="s", running=3, stuck=2, stuck_ids=(earlier.id, later.id)
    )
    assert fresh.id not in (earlier.id, later.id)


async def ended(backend: Backend, task: str, outcome: Outcome, when: float) -> None:
    job = await claim(backend, queue="w", task=task, max_attempts=1)
    assert await finish_with(backend, job, outcome, now=at(when))


async def test_runs_and_failures_per_task_in_each_window(backend: Backend) -> None:
    await ended(backend, "tests:a", Completed(), -1)  # before the long window
    await ended(backend, "tests:a", Completed(), 0)  # its first instant: counted
    await ended(backend, "tests:a", Completed(), 3300)  # the short window's first instant
    await ended(backend, "tests:a", Failed("E", "x"), 3400)
    await ended(backend, "tests:a", Discarded("x"), 3500)
    await ended(backend, "tests:a", Cancelled("x"), 3500)  # not a run
    retried = await claim(backend, queue="w", task="tests:a", max_attempts=3)
    assert await finish_with(backend, retried, Failed("E", "x"), now=at(3500))  # not a run
    await ended(backend, "tests:b", Completed(), 100)
    cancelled = await insert_one(backend, queue="w", task="tests:c")
    await backend.cancel(cancelled.id, reason="x", now=at(3500))  # only cancelled: no entry

    figures = await backend.health_figures(query(at(3600)))

    assert figures.tasks == (
        TaskFigures(
            queue="w",
            task="tests:a",
            last_5m=Ended(runs=3, failures=2),
            last_60m=Ended(runs=4, failures=2),
        ),
        TaskFigures(queue="w", task="tests:b", last_5m=Ended(), last_60m=Ended(runs=1, failures=0)),
    )
    # The retryable job's backoff ended at 3530: it is due, not running, not ended.
    stored = await backend.get(retried.id)
    assert stored.scheduled_at <= at(3600)
    assert queue_of(figures, "w") == QueueFigures(
        queue="w", backlog=1, oldest_due_at=stored.scheduled_at
    )


async def test_postgres_figures_are_one_snapshot(
    backend: Backend, second_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job claimed between two of the check's statements is counted once, as it was."""
    if not backend.url.startswith("postgres"):
        pytest.skip("PostgreSQL reads its figures with several statements")
    job = await insert_one(backend, queue="a", scheduled_at=at(-10))
    connections: Any = backend._connections  # type: ignore[attr-defined]
    pending = backend.q["health_pending"]  # type: ignore[attr-defined]
    real_run = connections.run
    claimed: list[Any] = []

    class Interleaved:
        """The check's connection; another process claims the job right after the backlog."""

        def __init__(self, conn: Any) -> None:
            self.conn = conn

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

        async def execute(self, query: Any, params: Any = None) -> Any:
            cursor = await self.conn.execute(query, params)
            if query == pending and not claimed:
                claimed.append(await fetch_one(second_backend, job))
            return cursor

    async def run(fn: Any) -> Any:
        return await real_run(lambda conn: fn(Interleaved(conn)))

    monkeypatch.setattr(connections, "run", run)
    figures = await backend.health_figures(query(NOW))
    assert claimed  # the claim committed while the check was reading
    [queue] = figures.queues
    assert (queue.backlog, queue.running) == (1, 0)  # as at the first statement, not both
