"""The health verdict: every threshold pinned at both levels (just below, at, just above)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskward.errors import InvalidOptions
from taskward.health import (
    DEFAULT_DEGRADED,
    DEFAULT_FAILING,
    Ended,
    HealthFigures,
    HealthLimits,
    HealthQuery,
    HealthThresholds,
    HealthVerdict,
    QueueFigures,
    QueueThresholds,
    TaskFigures,
    judge,
)
from taskward.jobs import WorkerInfo

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
OK, DEGRADED, FAILING = HealthVerdict.OK, HealthVerdict.DEGRADED, HealthVerdict.FAILING


def worker(n: int, queue: str = "q") -> WorkerInfo:
    return WorkerInfo(
        id=f"w{n}", hostname="h", pid=n, queues={queue: 4}, started_at=NOW, heartbeat_at=NOW
    )


def only(name: str, degraded: Any, failing: Any, **extra: Any) -> HealthThresholds:
    """Thresholds with one limit on at each level and every other limit off."""
    return HealthThresholds(
        degraded=HealthLimits(**{name: degraded}, **extra),
        failing=HealthLimits(**{name: failing}, **extra),
    )


def verdict_of(figures: HealthFigures, thresholds: HealthThresholds, workers: int = 0) -> Any:
    report = judge(figures, thresholds, workers=[worker(i) for i in range(workers)], now=NOW)
    [queue] = report.queues
    assert report.verdict is queue.verdict
    return queue.verdict, [(r.level, r.threshold) for r in queue.reasons]


def age(seconds: float) -> HealthFigures:
    return HealthFigures(
        queues=(QueueFigures(queue="q", backlog=1, oldest_due_at=NOW - timedelta(seconds=seconds)),)
    )


def backlog(n: int) -> HealthFigures:
    return HealthFigures(queues=(QueueFigures(queue="q", backlog=n, oldest_due_at=NOW),))


def stuck(n: int) -> HealthFigures:
    return HealthFigures(queues=(QueueFigures(queue="q", running=n, stuck=n),))


def rate_5m(runs: int, failures: int) -> HealthFigures:
    ended = Ended(runs=runs, failures=failures)
    return HealthFigures(tasks=(TaskFigures(queue="q", task="t", last_5m=ended, last_60m=ended),))


def rate_60m(runs: int, failures: int) -> HealthFigures:
    ended = Ended(runs=runs, failures=failures)
    return HealthFigures(tasks=(TaskFigures(queue="q", task="t", last_60m=ended),))


# (threshold, degraded limit, failing limit, figures of a value, values: below/at/above each)
CASES = [
    ("max_oldest_due_age", 300.0, 1800.0, age, (299, 300, 301, 1800, 1801)),
    ("max_backlog", 10, 20, backlog, (9, 10, 11, 20, 21)),
    ("max_stuck", 1, 3, stuck, (0, 1, 2, 3, 4)),
]


@pytest.mark.parametrize(("name", "degraded", "failing", "make", "values"), CASES)
def test_a_maximum_trips_strictly_above_its_limit_at_each_level(
    name: str, degraded: float, failing: float, make: Any, values: tuple[float, ...]
) -> None:
    thresholds = only(name, degraded, failing)
    below, at_degraded, above_degraded, at_failing, above_failing = values
    assert verdict_of(make(below), thresholds) == (OK, [])
    assert verdict_of(make(at_degraded), thresholds) == (OK, [])
    assert verdict_of(make(above_degraded), thresholds) == (DEGRADED, [(DEGRADED, name)])
    assert verdict_of(make(at_failing), thresholds) == (DEGRADED, [(DEGRADED, name)])
    assert verdict_of(make(above_failing), thresholds) == (
        FAILING,
        [(FAILING, name), (DEGRADED, name)],
    )


@pytest.mark.parametrize(
    ("name", "make"), [("max_failure_rate_5m", rate_5m), ("max_failure_rate_60m", rate_60m)]
)
def test_a_failure_rate_trips_strictly_above_its_limit_at_each_level(name: str, make: Any) -> None:
    thresholds = only(name, 0.2, 0.5, min_runs_5m=10, min_runs_60m=10)
    assert verdict_of(make(10, 1), thresholds) == (OK, [])  # 10 %
    assert verdict_of(make(10, 2), thresholds) == (OK, [])  # 20 %: at the limit
    assert verdict_of(make(10, 3), thresholds) == (DEGRADED, [(DEGRADED, name)])
    assert verdict_of(make(10, 5), thresholds) == (DEGRADED, [(DEGRADED, name)])
    assert verdict_of(make(10, 6), thresholds) == (FAILING, [(FAILING, name), (DEGRADED, name)])


@pytest.mark.parametrize(
    ("name", "runs_field", "make"),
    [
        ("max_failure_rate_5m", "min_runs_5m", rate_5m),
        ("max_failure_rate_60m", "min_runs_60m", rate_60m),
    ],
)
def test_a_rate_counts_only_from_its_minimum_runs_at_each_level(
    name: str, runs_field: str, make: Any
) -> None:
    degraded: dict[str, Any] = {name: 0.1, runs_field: 5}
    failing: dict[str, Any] = {name: 0.5, runs_field: 8}
    thresholds = HealthThresholds(
        degraded=HealthLimits(**degraded), failing=HealthLimits(**failing)
    )
    assert verdict_of(make(4, 4), thresholds) == (OK, [])  # 100 %, below both minimums
    assert verdict_of(make(5, 5), thresholds) == (DEGRADED, [(DEGRADED, name)])  # at degraded's
    assert verdict_of(make(7, 7), thresholds) == (DEGRADED, [(DEGRADED, name)])  # below failing's
    assert verdict_of(make(8, 8), thresholds) == (FAILING, [(FAILING, name), (DEGRADED, name)])


def test_a_rate_is_judged_per_task_and_names_the_task() -> None:
    figures = HealthFigures(
        tasks=(
            TaskFigures(queue="q", task="good", last_5m=Ended(runs=20, failures=0)),
            TaskFigures(queue="q", task="bad", last_5m=Ended(runs=20, failures=20)),
        )
    )
    report = judge(figures, only("max_failure_rate_5m", 0.2, 0.9), workers=[], now=NOW)
    assert [(r.task, r.level) for r in report.reasons] == [("bad", FAILING), ("bad", DEGRADED)]
    assert report.reasons[0].message == (
        "queue 'q', task 'bad': failure rate 100% over 5 minutes (failing above 90%)"
    )


def test_min_workers_trips_strictly_below_its_limit_at_each_level() -> None:
    thresholds = only("min_workers", 2, 1)
    waiting = backlog(1)
    assert verdict_of(waiting, thresholds, workers=3) == (OK, [])
    assert verdict_of(waiting, thresholds, workers=2) == (OK, [])  # at the degraded minimum
    assert verdict_of(waiting, thresholds, workers=1) == (DEGRADED, [(DEGRADED, "min_workers")])
    assert verdict_of(waiting, thresholds, workers=0) == (
        FAILING,
        [(FAILING, "min_workers"), (DEGRADED, "min_workers")],
    )


def test_min_workers_is_not_judged_without_due_jobs_nor_on_a_paused_queue() -> None:
    thresholds = only("min_workers", 2, 1)
    running = HealthFigures(queues=(QueueFigures(queue="q", running=3),))
    assert verdict_of(running, thresholds) == (OK, [])
    paused = replace(backlog(5), paused=frozenset({"q"}))
    assert verdict_of(paused, thresholds) == (OK, [])


def test_workers_are_counted_per_queue_they_serve() -> None:
    report = judge(
        HealthFigures(),
        HealthThresholds(),
        workers=[worker(1, "a"), worker(2, "a"), worker(3, "b")],
        now=NOW,
    )
    assert [(q.queue, q.workers) for q in report.queues] == [("a", 2), ("b", 1)]
    assert report.workers_alive == 3


def test_a_queue_override_replaces_that_queue_s_levels_only() -> None:
    thresholds = HealthThresholds(
        degraded=HealthLimits(max_backlog=10),
        failing=HealthLimits(max_backlog=100),
        queues={"bulk": QueueThresholds(degraded=HealthLimits(max_backlog=1000))},
    )
    figures = HealthFigures(
        queues=(
            QueueFigures(queue="bulk", backlog=500, oldest_due_at=NOW),
            QueueFigures(queue="web", backlog=500, oldest_due_at=NOW),
        )
    )
    report = judge(figures, thresholds, workers=[], now=NOW)
    bulk, web = report.queues
    # bulk: its own degraded limit (1000) and the app-wide failing one (100).
    assert (bulk.verdict, [r.threshold for r in bulk.reasons]) == (FAILING, ["max_backlog"])
    assert web.verdict is FAILING
    assert report.verdict is FAILING
    assert [r.queue for r in report.reasons if r.level is FAILING] == ["bulk", "web"]


def test_the_overall_verdict_is_the_worst_queue_s() -> None:
    thresholds = only("max_backlog", 10, 20)
    figures = HealthFigures(
        queues=(
            QueueFigures(queue="a", backlog=1, oldest_due_at=NOW),
            QueueFigures(queue="b", backlog=15, oldest_due_at=NOW),
        )
    )
    report = judge(figures, thresholds, workers=[], now=NOW)
    assert [q.verdict for q in report.queues] == [OK, DEGRADED]
    assert report.verdict is DEGRADED
    assert judge(HealthFigures(), thresholds, workers=[], now=NOW).verdict is OK


def test_a_job_due_in_the_future_by_clock_skew_has_waited_zero_seconds() -> None:
    skewed = HealthFigures(
        queues=(QueueFigures(queue="q", backlog=1, oldest_due_at=NOW + timedelta(seconds=5)),)
    )
    [queue] = judge(skewed, HealthThresholds(), workers=[], now=NOW).queues
    assert queue.oldest_due_age == 0.0


def test_the_defaults_are_the_documented_ones() -> None:
    thresholds = HealthThresholds()
    assert thresholds.degraded == DEFAULT_DEGRADED
    assert thresholds.failing == DEFAULT_FAILING
    assert (DEFAULT_DEGRADED.max_oldest_due_age, DEFAULT_FAILING.max_oldest_due_age) == (300, 1800)
    assert (DEFAULT_DEGRADED.max_backlog, DEFAULT_FAILING.max_backlog) == (10_000, 100_000)
    assert (DEFAULT_DEGRADED.max_failure_rate_5m, DEFAULT_FAILING.max_failure_rate_5m) == (
        0.25,
        0.75,
    )
    assert (DEFAULT_DEGRADED.max_failure_rate_60m, DEFAULT_FAILING.max_failure_rate_60m) == (
        0.10,
        0.50,
    )
    assert (DEFAULT_DEGRADED.max_stuck, DEFAULT_FAILING.max_stuck) == (0, 10)
    assert (DEFAULT_DEGRADED.min_workers, DEFAULT_FAILING.min_workers) == (1, None)
    assert (DEFAULT_DEGRADED.min_runs_5m, DEFAULT_DEGRADED.min_runs_60m) == (10, 20)
    assert thresholds.stuck_after == 3600


@pytest.mark.parametrize(
    "bad",
    [
        {"max_oldest_due_age": -1},
        {"max_oldest_due_age": math.nan},
        {"max_oldest_due_age": math.inf},
        {"max_oldest_due_age": "300"},
        {"max_backlog": -1},
        {"max_backlog": 1.5},
        {"max_backlog": True},
        {"max_stuck": -1},
        {"min_workers": -1},
        {"min_runs_5m": None},
        {"min_runs_60m": -3},
        {"max_failure_rate_5m": 1.5},
        {"max_failure_rate_5m": -0.1},
        {"max_failure_rate_60m": math.nan},
        {"max_failure_rate_60m": "10%"},
    ],
)
def test_bad_limits_are_refused_with_the_limit_s_name(bad: dict[str, Any]) -> None:
    [name] = bad
    with pytest.raises(InvalidOptions, match=name):
        HealthLimits(**bad)


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(InvalidOptions, match="invalid queue name"):
        HealthThresholds(queues={"no spaces": QueueThresholds()})
    with pytest.raises(InvalidOptions, match="QueueThresholds"):
        HealthThresholds(queues={"q": HealthLimits()})  # type: ignore[dict-item]
    with pytest.raises(InvalidOptions, match="stuck_after"):
        HealthThresholds(stuck_after=0)
    with pytest.raises(InvalidOptions, match="degraded"):
        HealthThresholds(degraded={"max_backlog": 5})  # type: ignore[arg-type]
    with pytest.raises(InvalidOptions, match="failing"):
        QueueThresholds(failing=5)  # type: ignore[arg-type]


def test_the_thresholds_keep_their_own_copy_of_the_overrides() -> None:
    overrides = {"q": QueueThresholds(degraded=HealthLimits(max_backlog=1))}
    thresholds = HealthThresholds(queues=overrides)
    overrides.clear()
    assert thresholds.levels("q")[0] == HealthLimits(max_backlog=1)


def test_the_report_is_json_with_every_figure() -> None:
    figures = HealthFigures(
        queues=(
            QueueFigures(
                queue="q",
                backlog=2,
                oldest_due_at=NOW - timedelta(seconds=400),
                running=1,
                stuck=1,
                stuck_ids=(7,),
            ),
        ),
        tasks=(
            TaskFigures(
                queue="q",
                task="t",
                last_5m=Ended(runs=4, failures=1),
                last_60m=Ended(runs=10, failures=1),
            ),
        ),
        paused=frozenset({"q"}),
    )
    body = judge(figures, HealthThresholds(), workers=[], now=NOW).as_json()
    assert json.loads(json.dumps(body)) == body
    assert body["verdict"] == "degraded"
    assert body["checked_at"] == NOW.isoformat()
    [queue] = body["queues"]
    assert {k: queue[k] for k in ("oldest_due_age", "backlog", "running", "stuck", "paused")} == {
        "oldest_due_age": 400.0,
        "backlog": 2,
        "running": 1,
        "stuck": 1,
        "paused": True,
    }
    assert queue["stuck_ids"] == [7]
    assert queue["tasks"] == [
        {
            "task": "t",
            "last_5m": {"runs": 4, "failures": 1, "failure_rate": 0.25},
            "last_60m": {"runs": 10, "failures": 1, "failure_rate": 0.1},
            "p50_seconds": None,
            "p95_seconds": None,
        }
    ]
    assert sorted(r["threshold"] for r in queue["reasons"]) == ["max_oldest_due_age", "max_stuck"]
    assert body["thresholds"]["degraded"]["max_backlog"] == 10_000


def test_severity_orders_the_verdicts() -> None:
    assert [v.severity for v in (OK, DEGRADED, FAILING)] == [0, 1, 2]
    assert HealthVerdict.worst([]) is OK
    assert HealthVerdict.worst([DEGRADED, OK]) is DEGRADED


def test_the_stuck_rule_is_strictly_past_each_cutoff() -> None:
    query = HealthQuery.at(NOW, lease_grace=30, stuck_after=3600)
    start = NOW - timedelta(seconds=90)
    far = NOW + timedelta(hours=1)
    assert not query.is_stuck(attempted_at=start, timeout=60, lease_until=far)
    assert query.is_stuck(attempted_at=start - timedelta(seconds=1), timeout=60, lease_until=far)
    hour = NOW - timedelta(seconds=3600)
    assert not query.is_stuck(attempted_at=hour, timeout=None, lease_until=far)
    assert query.is_stuck(attempted_at=hour - timedelta(seconds=1), timeout=None, lease_until=far)
    lease = NOW - timedelta(seconds=30)
    assert not query.is_stuck(attempted_at=NOW, timeout=None, lease_until=lease)
    assert query.is_stuck(attempted_at=NOW, timeout=None, lease_until=lease - timedelta(seconds=1))
    assert query.since == NOW - timedelta(hours=1)
    assert query.recent_since == NOW - timedelta(minutes=5)
