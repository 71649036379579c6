"""Unit: the run-time percentiles' rules (nearest rank, the Redis buckets' error bound) and how
the verdict hands them to the report and its JSON."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from taskward.health import HealthFigures, HealthReport, HealthThresholds, TaskFigures, judge
from taskward.health.figures import Ended, FiguresBuilder
from taskward.health.run_times import (
    RELATIVE_ERROR,
    RunTimes,
    bucket_of,
    from_buckets,
    from_sorted,
    rank,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("percent", "count", "expected"),
    [(50, 1, 1), (95, 1, 1), (50, 20, 10), (95, 20, 19), (50, 21, 11), (95, 21, 20), (95, 100, 95)],
)
def test_nearest_rank(percent: int, count: int, expected: int) -> None:
    assert rank(percent, count) == expected


def test_percentiles_of_sorted_run_times() -> None:
    found = from_sorted("q", "t", [float(s) for s in range(1, 21)])
    assert found == RunTimes(queue="q", task="t", runs=20, p50_seconds=10.0, p95_seconds=19.0)
    assert from_sorted("q", "t", []) is None


def test_the_builder_sorts_run_times_and_keeps_stores_own() -> None:
    builder = FiguresBuilder()
    for seconds in (5.0, 1.0, 3.0):
        builder.run_time("q", "a", seconds)
    builder.run_times(RunTimes(queue="q", task="b", runs=4, p50_seconds=2.0, p95_seconds=9.0))
    builder.run_times(None)
    figures = builder.build(frozenset())
    assert figures.run_times == (
        RunTimes(queue="q", task="a", runs=3, p50_seconds=3.0, p95_seconds=5.0),
        RunTimes(queue="q", task="b", runs=4, p50_seconds=2.0, p95_seconds=9.0),
    )


def test_bucketed_percentiles_stay_within_the_documented_bound() -> None:
    rng = random.Random(26)
    for _ in range(50):
        seconds = sorted(rng.lognormvariate(0, 2) for _ in range(rng.randint(1, 500)))
        exact = from_sorted("q", "t", seconds)
        counts = Counter(bucket_of(s * 1e6) for s in seconds)
        approximate = from_buckets("q", "t", counts)
        assert exact is not None
        assert approximate is not None
        assert approximate.runs == exact.runs
        for found, expected in (
            (approximate.p50_seconds, exact.p50_seconds),
            (approximate.p95_seconds, exact.p95_seconds),
        ):
            assert abs(found - expected) <= expected * RELATIVE_ERROR
    assert RELATIVE_ERROR < 0.0100001
    assert from_buckets("q", "t", {}) is None
    assert from_buckets("q", "t", {bucket_of(0): 3}) == RunTimes(
        queue="q", task="t", runs=3, p50_seconds=0.0, p95_seconds=0.0
    )


def test_the_report_and_its_json_carry_each_task_s_run_times() -> None:
    figures = HealthFigures(
        tasks=(
            TaskFigures(queue="q", task="a", last_60m=Ended(runs=20, failures=0)),
            TaskFigures(queue="q", task="b", last_60m=Ended(runs=2, failures=2)),
        ),
        run_times=(RunTimes(queue="q", task="a", runs=20, p50_seconds=1.5, p95_seconds=8.25),),
    )
    report = judge(figures, HealthThresholds(), workers=[], now=NOW)
    [queue] = report.queues
    a, b = queue.tasks
    assert (a.p50_seconds, a.p95_seconds) == (1.5, 8.25)
    assert (b.p50_seconds, b.p95_seconds) == (None, None)
    [a_json, b_json] = report.as_json()["queues"][0]["tasks"]
    assert (a_json["p50_seconds"], a_json["p95_seconds"]) == (1.5, 8.25)
    assert (b_json["p50_seconds"], b_json["p95_seconds"]) == (None, None)


async def test_the_metrics_export_run_times_of_tasks_that_completed_a_run() -> None:
    from taskward.observe.metrics import HealthCollector

    figures = HealthFigures(
        tasks=(
            TaskFigures(queue="q", task="a", last_60m=Ended(runs=20, failures=0)),
            TaskFigures(queue="q", task="b", last_60m=Ended(runs=2, failures=2)),
        ),
        run_times=(RunTimes(queue="q", task="a", runs=20, p50_seconds=1.5, p95_seconds=8.25),),
    )
    report = judge(figures, HealthThresholds(), workers=[], now=NOW)

    async def snapshot() -> HealthReport:
        return report

    collector = HealthCollector(snapshot, max_age=60)
    await collector.refresh()
    [family] = [f for f in collector.collect() if f.name == "taskward_task_run_time_seconds"]
    assert sorted((s.labels["task"], s.labels["quantile"], s.value) for s in family.samples) == [
        ("a", "0.5", 1.5),
        ("a", "0.95", 8.25),
    ]


def test_the_cli_table_shows_each_task_s_run_times() -> None:
    from rich.console import Console

    from taskward.cli.health import health_tables

    figures = HealthFigures(
        tasks=(
            TaskFigures(queue="q", task="a", last_60m=Ended(runs=20, failures=0)),
            TaskFigures(queue="q", task="b", last_60m=Ended(runs=2, failures=2)),
        ),
        run_times=(RunTimes(queue="q", task="a", runs=20, p50_seconds=0.25, p95_seconds=200.0),),
    )
    report = judge(figures, HealthThresholds(), workers=[], now=NOW)
    console = Console(width=200, record=True)
    for table in health_tables(report):
        console.print(table)
    lines = console.export_text().splitlines()
    [a_row] = [line for line in lines if " a " in line]
    [b_row] = [line for line in lines if " b " in line]
    assert "250 ms" in a_row
    assert "3 min 20 s" in a_row
    assert b_row.count("—") == 2  # no completed run: no run time
