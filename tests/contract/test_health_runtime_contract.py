"""Contract: every store reports p50 and p95 run times of each task's completed runs in the
health check's long window (the rules are ``taskward.health.run_times``'): exact on memory,
SQLite and PostgreSQL, within the documented bound on Redis."""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.health.figures import HealthFigures, HealthQuery
from taskward.health.run_times import RELATIVE_ERROR, RunTimes
from taskward.states import Completed, Discarded, Failed, Outcome

from .helpers import at, claim, finish_with

WINDOW_START = 0.0
CHECK_AT = 3600.0


def query() -> HealthQuery:
    """A check at the end of the hour that starts at ``NOW``."""
    return HealthQuery.at(at(CHECK_AT), lease_grace=30.0, stuck_after=3600.0)


async def ran(
    backend: Backend, task: str, seconds: float, *, ends: float, outcome: Outcome | None = None
) -> None:
    """One run of ``task`` that started ``seconds`` before ``ends`` and ended with ``outcome``."""
    job = await claim(backend, queue="w", task=task, max_attempts=1, now=at(ends - seconds))
    assert await finish_with(backend, job, outcome or Completed(), now=at(ends))


def exact(backend: Backend) -> bool:
    """Whether the store computes exact percentiles (Redis counts them in buckets)."""
    return not backend.url.startswith("redis")


def run_times_of(figures: HealthFigures, task: str) -> RunTimes | None:
    return next((r for r in figures.run_times if r.task == task), None)


def assert_close(backend: Backend, found: float, expected: float) -> None:
    if exact(backend):
        assert found == pytest.approx(expected, abs=1e-6)
    else:
        assert abs(found - expected) <= expected * RELATIVE_ERROR, (found, expected)


async def test_p50_and_p95_of_twenty_completed_runs(backend: Backend) -> None:
    # 1..20 s, finished out of order over the hour: p50 is the 10th (10 s), p95 the 19th.
    for n, seconds in enumerate((7, 19, 1, 12, 20, 3, 15, 9, 5, 18, 2, 11, 14, 6, 16, 4, 10)):
        await ran(backend, "tests:timed", seconds, ends=100 + n * 60)
    for seconds in (13, 8, 17):
        await ran(backend, "tests:timed", seconds, ends=3500)

    figures = await backend.health_figures(query())

    found = run_times_of(figures, "tests:timed")
    assert found is not None
    assert (found.queue, found.runs) == ("w", 20)
    assert_close(backend, found.p50_seconds, 10.0)
    assert_close(backend, found.p95_seconds, 19.0)


async def test_failed_runs_and_runs_before_the_window_are_not_timed(backend: Backend) -> None:
    await ran(backend, "tests:timed", 2, ends=50)
    await ran(backend, "tests:timed", 4, ends=60)
    # Slow failures, and a slow success that ended before the window: none of them count.
    await ran(backend, "tests:timed", 900, ends=1000, outcome=Failed("E", "x"))
    await ran(backend, "tests:timed", 800, ends=1000, outcome=Discarded("x"))
    await ran(backend, "tests:timed", 500, ends=-1)
    # A task that only failed has runs but no run times.
    await ran(backend, "tests:broken", 3, ends=200, outcome=Failed("E", "x"))

    figures = await backend.health_figures(query())

    found = run_times_of(figures, "tests:timed")
    assert found is not None
    assert found.runs == 2
    assert_close(backend, found.p50_seconds, 2.0)
    assert_close(backend, found.p95_seconds, 4.0)
    assert run_times_of(figures, "tests:broken") is None
    assert {t.task for t in figures.tasks} == {"tests:timed", "tests:broken"}


async def test_one_run_is_both_percentiles_and_sub_second_runs_keep_their_size(
    backend: Backend,
) -> None:
    await ran(backend, "tests:once", 0.25, ends=300)
    await ran(backend, "tests:instant", 0, ends=400)

    figures = await backend.health_figures(query())

    once = run_times_of(figures, "tests:once")
    assert once is not None
    assert once.runs == 1
    assert_close(backend, once.p50_seconds, 0.25)
    assert_close(backend, once.p95_seconds, 0.25)
    instant = run_times_of(figures, "tests:instant")
    assert instant is not None
    assert (instant.p50_seconds, instant.p95_seconds) == (0.0, 0.0)


async def test_a_run_that_ends_before_it_starts_counts_as_zero(backend: Backend) -> None:
    # Two hosts' clocks: the finish is stamped 3 s before the start. It still counts as a run.
    await ran(backend, "tests:skewed", -3, ends=300)
    await ran(backend, "tests:skewed", 5, ends=400)

    found = run_times_of(await backend.health_figures(query()), "tests:skewed")

    assert found is not None
    assert found.runs == 2
    assert found.p50_seconds == 0.0
    assert_close(backend, found.p95_seconds, 5.0)


async def test_the_same_task_in_two_queues_is_timed_per_queue(backend: Backend) -> None:
    for seconds, queue in ((2, "w"), (4, "w"), (30, "other"), (50, "other")):
        job = await claim(backend, queue=queue, task="tests:both", max_attempts=1, now=at(0))
        assert await finish_with(backend, job, Completed(), now=at(seconds))

    figures = await backend.health_figures(query())

    found = {r.queue: r for r in figures.run_times if r.task == "tests:both"}
    assert sorted(found) == ["other", "w"]
    assert found["w"].runs == found["other"].runs == 2
    assert_close(backend, found["w"].p95_seconds, 4.0)
    assert_close(backend, found["other"].p50_seconds, 30.0)
