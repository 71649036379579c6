"""``GET /health/jobs`` over HTTP, and the same figures as gauges in ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from taskward import FrozenClock, TaskManager
from taskward.errors import BackendUnavailable
from taskward.health import HealthFigures, HealthReport, HealthThresholds, judge
from taskward.observe.metrics import HealthCollector
from taskward.web import AdminAuth, create_app
from taskward.web.job_health import create_jobs_health_router
from web.helpers import BEARER, client_for

START = datetime(2026, 3, 1, 9, tzinfo=UTC)
SECRET = "hunter2-do-not-leak"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def frozen(manager_url: str, clock: FrozenClock) -> AsyncIterator[TaskManager]:
    manager = TaskManager(manager_url, clock=clock, poll_interval=0.05, lease_seconds=5)
    async with manager:
        yield manager


def register(tw: TaskManager) -> None:
    @tw.task(name="emails.send", queue="emails", max_attempts=1)
    def send(to: str, *, fail: bool = False) -> None:
        if fail:
            raise RuntimeError(f"cannot reach {to}")


async def get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    # The report is cached per app (1 s): a test that changes the store makes a new app.
    async with client_for(app, **headers) as client:
        return await client.get(path)


async def test_ok_is_200_and_readable_without_credentials(
    frozen: TaskManager, auth: AdminAuth
) -> None:
    app = create_app(frozen, auth=auth)  # reads of the admin API need credentials
    response = await get(app, "/health/jobs")
    assert response.status_code == 200
    body = response.json()
    assert (body["verdict"], body["queues"], body["reasons"]) == ("ok", [], [])
    assert body["workers_alive"] == 0
    assert (await get(app, "/api/stats")).status_code == 401


async def test_degraded_is_200_unless_strict_and_failing_is_503(
    frozen: TaskManager, clock: FrozenClock
) -> None:
    register(frozen)
    await frozen.enqueue_task("emails.send", args=["ada@example.com"])
    app = create_app(frozen)

    degraded = await get(app, "/health/jobs")
    assert degraded.status_code == 200
    assert degraded.json()["verdict"] == "degraded"
    [queue] = degraded.json()["queues"]
    assert (queue["queue"], queue["backlog"], queue["workers"]) == ("emails", 1, 0)
    assert [r["threshold"] for r in queue["reasons"]] == ["min_workers"]
    assert (await get(app, "/health/jobs?strict=true")).status_code == 503

    clock.advance(1801)
    failing = await get(create_app(frozen), "/health/jobs")
    assert failing.status_code == 503
    assert failing.json()["verdict"] == "failing"
    assert failing.json()["reasons"][0]["threshold"] == "max_oldest_due_age"


async def test_one_queue_is_judged_alone(frozen: TaskManager) -> None:
    register(frozen)
    await frozen.enqueue_task("emails.send", args=["ada@example.com"])
    app = create_app(frozen)
    other = await get(app, "/health/jobs?queue=reports&strict=true")
    assert other.status_code == 200
    assert (other.json()["verdict"], other.json()["queues"]) == ("ok", [])
    emails = await get(app, "/health/jobs?queue=emails&strict=true")
    assert emails.status_code == 503
    assert [q["queue"] for q in emails.json()["queues"]] == ["emails"]
    bad = await get(app, "/health/jobs?queue=no%20spaces")
    assert bad.status_code == 400
    assert "invalid queue name 'no spaces'" in bad.json()["detail"]


async def test_no_argument_or_error_text_leaks(frozen: TaskManager) -> None:
    register(frozen)
    for n in range(12):
        await frozen.enqueue_task("emails.send", args=[SECRET], kwargs={"fail": n < 6})
    await frozen.drain(["emails"], timeout=30)
    await frozen.enqueue_task("emails.send", args=[SECRET])
    app = create_app(frozen)

    response = await get(app, "/health/jobs")

    assert SECRET not in response.text
    assert "cannot reach" not in response.text
    [queue] = response.json()["queues"]
    assert queue["tasks"] == [
        {
            "task": "emails.send",
            "last_5m": {"runs": 12, "failures": 6, "failure_rate": 0.5},
            "last_60m": {"runs": 12, "failures": 6, "failure_rate": 0.5},
            "p50_seconds": 0.0,  # the frozen clock: every run took no time
            "p95_seconds": 0.0,
        }
    ]


async def test_the_app_can_put_the_probe_behind_its_read_access(
    frozen: TaskManager, auth: AdminAuth
) -> None:
    app = create_app(frozen, auth=auth, public_health=False)
    assert (await get(app, "/health/jobs")).status_code == 401
    assert (await get(app, "/health/jobs", authorization=BEARER)).status_code == 200


async def test_the_gauges_carry_the_same_figures(frozen: TaskManager, clock: FrozenClock) -> None:
    register(frozen)
    for n in range(10):
        await frozen.enqueue_task("emails.send", args=["x"], kwargs={"fail": n < 3})
    await frozen.drain(["emails"], timeout=30)
    await frozen.enqueue_task("emails.send", args=["y"])
    clock.advance(400)
    app = create_app(frozen)

    async with client_for(app) as client:
        text = (await client.get("/metrics")).text
        body = (await client.get("/health/jobs")).json()

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    emails = (("queue", "emails"),)
    [queue] = body["queues"]
    assert samples["taskward_queue_backlog", emails] == queue["backlog"] == 1
    assert samples["taskward_queue_oldest_due_age_seconds", emails] == 400
    assert samples["taskward_queue_stuck_jobs", emails] == 0
    assert samples["taskward_queue_workers_alive", emails] == 0
    assert samples["taskward_workers_alive", ()] == 0
    # Waited 400 s (degraded above 300) with no worker: degraded.
    assert (
        samples["taskward_health_verdict", emails] == 1 == ["ok", "degraded"].index(body["verdict"])
    )
    assert samples["taskward_health_overall_verdict", ()] == 1
    hour = (("queue", "emails"), ("task", "emails.send"), ("window", "60m"))
    assert samples["taskward_task_runs", hour] == 10
    assert samples["taskward_task_failures", hour] == 3
    assert samples["taskward_task_failure_rate", hour] == pytest.approx(0.3)
    short = (("queue", "emails"), ("task", "emails.send"), ("window", "5m"))
    assert samples["taskward_task_runs", short] == 0  # they ended 400 s ago
    assert ("taskward_task_failure_rate", short) not in samples  # no runs: no rate


class Counting:
    """A health source that counts its checks (the router's seam, not a store)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    async def health(self, thresholds: HealthThresholds | None = None) -> HealthReport:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return judge(HealthFigures(), HealthThresholds(), workers=[], now=START)


async def test_reports_are_cached_so_probes_do_not_hammer_the_store() -> None:
    source = Counting()
    app = FastAPI()
    app.include_router(create_jobs_health_router(source, max_age=3600))
    async with client_for(app) as client:
        for _ in range(5):
            assert (await client.get("/health/jobs")).status_code == 200
    assert source.calls == 1

    fresh = Counting()
    app = FastAPI()
    app.include_router(create_jobs_health_router(fresh, max_age=0))
    async with client_for(app) as client:
        for _ in range(3):
            await client.get("/health/jobs")
    assert fresh.calls == 3


async def test_a_store_that_cannot_be_read_is_503_with_one_line() -> None:
    down = Counting(BackendUnavailable("cannot reach redis://db:6379"))
    app = FastAPI()
    app.include_router(create_jobs_health_router(down))
    async with client_for(app) as client:
        response = await client.get("/health/jobs")
    assert response.status_code == 503
    assert response.json() == {"verdict": "failing", "error": "cannot reach redis://db:6379"}

    broken = Counting(RuntimeError(f"bug with {SECRET}"))
    app = FastAPI()
    app.include_router(create_jobs_health_router(broken))
    async with client_for(app) as client:
        response = await client.get("/health/jobs")
    assert response.status_code == 503
    assert response.json() == {"verdict": "failing", "error": "RuntimeError"}


class Hung:
    """A health source whose check never answers (a store that accepts but never replies)."""

    def __init__(self) -> None:
        self.calls = 0

    async def health(self, thresholds: HealthThresholds | None = None) -> HealthReport:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_hung_check_answers_503_and_holds_no_probe_forever() -> None:
    hung = Hung()
    app = FastAPI()
    app.include_router(create_jobs_health_router(hung, max_age=3600, timeout=0.2))
    async with client_for(app) as client:
        async with asyncio.timeout(5):  # without the bound these would wait forever
            responses = await asyncio.gather(*(client.get("/health/jobs") for _ in range(3)))
        assert [r.status_code for r in responses] == [503] * 3
        assert "took longer than 0.2 s" in responses[0].json()["error"]
        again = await client.get("/health/jobs")  # cached: the store is not asked again
        assert again.status_code == 503
    assert hung.calls == 1


async def test_a_failing_or_hung_check_keeps_the_last_gauges() -> None:
    good = judge(HealthFigures(), HealthThresholds(), workers=[], now=START)
    outcomes: list[Any] = [good, RuntimeError(f"bug with {SECRET}"), "hang"]
    calls: list[int] = []

    async def snapshot() -> HealthReport:
        calls.append(1)
        outcome = outcomes.pop(0)
        if outcome == "hang":
            await asyncio.Event().wait()
        if isinstance(outcome, Exception):
            raise outcome
        return cast(HealthReport, outcome)

    collector = HealthCollector(snapshot, max_age=0, timeout=0.2)

    def gauges() -> dict[str, float]:
        return {s.name: s.value for m in collector.collect() for s in m.samples if not s.labels}

    await collector.refresh()
    assert gauges() == {
        "taskward_health_overall_verdict": 0,
        "taskward_workers_alive": 0,
        "taskward_health_check_up": 1,
    }
    await collector.refresh()  # raises inside: the scrape goes on, the last gauges stay
    assert gauges()["taskward_health_check_up"] == 0
    assert gauges()["taskward_health_overall_verdict"] == 0
    async with asyncio.timeout(5):
        await collector.refresh()  # hangs inside: cut at 0.2 s
    assert gauges()["taskward_health_check_up"] == 0
    assert len(calls) == 3
    slow = HealthCollector(snapshot, max_age=3600, timeout=0.2)
    outcomes[:] = [RuntimeError("down")]
    await slow.refresh()
    await slow.refresh()  # a failed check is not repeated on every scrape
    assert len(calls) == 4
