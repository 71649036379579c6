"""``tw.health()`` on every backend: real jobs, a frozen clock, the manager's and a call's
thresholds, the sync twin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskward import FrozenClock, TaskManager
from taskward.errors import InvalidOptions
from taskward.health import HealthLimits, HealthThresholds, HealthVerdict, QueueThresholds

START = datetime(2026, 3, 1, 9, tzinfo=UTC)
OK, DEGRADED, FAILING = HealthVerdict.OK, HealthVerdict.DEGRADED, HealthVerdict.FAILING


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def frozen(manager_url: str, clock: FrozenClock) -> AsyncIterator[TaskManager]:
    manager = TaskManager(manager_url, clock=clock, poll_interval=0.05, lease_seconds=5)
    async with manager:
        yield manager


def register(tw: TaskManager) -> None:
    @tw.task(name="reports.build", queue="reports", max_attempts=1)
    def build(n: int, *, fail: bool = False) -> int:
        if fail:
            raise RuntimeError("disk full")
        return n

    @tw.task(name="emails.send", queue="emails")
    def send(to: str) -> None:
        return None


async def test_a_failure_rate_over_five_minutes_degrades_its_queue(
    frozen: TaskManager, clock: FrozenClock
) -> None:
    register(frozen)
    for n in range(10):
        await frozen.enqueue_task("reports.build", args=[n], kwargs={"fail": n % 2 == 0})
    await frozen.drain(["reports"], timeout=30)

    report = await frozen.health()

    reports = report.queue("reports")
    assert reports is not None
    assert reports.verdict is DEGRADED
    [reason] = reports.reasons
    assert (reason.threshold, reason.task, reason.value) == (
        "max_failure_rate_5m",
        "reports.build",
        0.5,
    )
    [task] = reports.tasks
    assert (task.last_5m.runs, task.last_5m.failures) == (10, 5)
    assert (task.last_60m.runs, task.last_60m.failures) == (10, 5)
    assert report.verdict is DEGRADED
    assert "disk full" not in str(report.as_json())  # error texts are not figures

    clock.advance(301)  # out of the short window; the hour has fewer than 20 runs
    later = await frozen.health()
    assert later.verdict is OK
    [task] = later.queues[0].tasks
    assert (task.last_5m.runs, task.last_60m.runs) == (0, 10)


async def test_an_unserved_queue_degrades_then_fails_as_its_oldest_job_ages(
    frozen: TaskManager, clock: FrozenClock
) -> None:
    register(frozen)
    await frozen.enqueue_task("emails.send", args=["ada@example.com"])
    clock.advance(60)
    await frozen.enqueue_task("emails.send", args=["bob@example.com"])

    first = await frozen.health()
    emails = first.queue("emails")
    assert emails is not None
    assert (emails.backlog, emails.oldest_due_age, emails.workers) == (2, 60.0, 0)
    # Nobody serves a queue with due jobs: degraded at once (min_workers), not failing.
    assert [(r.level, r.threshold) for r in emails.reasons] == [(DEGRADED, "min_workers")]

    clock.advance(1741)  # the oldest has waited 1,801 s
    late = await frozen.health()
    emails = late.queue("emails")
    assert emails is not None
    assert emails.verdict is FAILING
    assert [(r.level, r.threshold) for r in emails.reasons] == [
        (FAILING, "max_oldest_due_age"),
        (DEGRADED, "max_oldest_due_age"),
        (DEGRADED, "min_workers"),
    ]
    assert late.verdict is FAILING


async def test_a_call_s_thresholds_beat_the_manager_s(manager_url: str, clock: FrozenClock) -> None:
    strict = HealthThresholds(
        degraded=HealthLimits(max_backlog=0), failing=HealthLimits(max_backlog=1)
    )
    lenient = HealthThresholds(
        degraded=HealthLimits(),
        failing=HealthLimits(),
        queues={"emails": QueueThresholds(failing=HealthLimits(max_backlog=5))},
    )
    async with TaskManager(manager_url, clock=clock, health_thresholds=strict) as tw:
        register(tw)
        for to in ("a", "b"):
            await tw.enqueue_task("emails.send", args=[to])
        assert tw.health_thresholds is strict
        assert (await tw.health()).verdict is FAILING  # 2 > 1
        assert (await tw.health(thresholds=lenient)).verdict is OK  # 2 <= 5
        assert (await tw.health()).thresholds == strict.describe()


async def test_bad_thresholds_are_refused_before_the_store_is_read(manager_url: str) -> None:
    with pytest.raises(InvalidOptions, match="HealthThresholds"):
        TaskManager(manager_url, health_thresholds={"max_backlog": 5})  # type: ignore[arg-type]
    async with TaskManager(manager_url) as tw:
        with pytest.raises(InvalidOptions, match="HealthThresholds"):
            await tw.health(thresholds=HealthLimits())  # type: ignore[arg-type]


def test_the_sync_twin_reports_the_same(tmp_path: Path) -> None:
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db", clock=FrozenClock(START))
    try:
        register(tw)
        tw.sync.enqueue_task("emails.send", args=["ada@example.com"])
        report = tw.sync.health()
        emails = report.queue("emails")
        assert emails is not None
        assert (emails.backlog, emails.oldest_due_age) == (1, 0.0)
        assert report.verdict is DEGRADED  # no worker serves it
    finally:
        tw.sync.shutdown()
