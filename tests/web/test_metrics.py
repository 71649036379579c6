"""/metrics scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from taskward import FrozenClock, TaskManager
from taskward.aio import reset_task_failure_counts, safe_create_task
from taskward.jobs import WorkerInfo
from taskward.observe.metrics import install_metrics
from taskward.runtime.maintenance import Rescuer
from taskward.web import create_app
from web.helpers import BEARER, client_for, seed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def _reset_counters() -> Iterator[None]:
    reset_task_failure_counts()
    yield
    reset_task_failure_counts()


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_job_metrics_and_queue_gauges(tw: TaskManager) -> None:
    app = create_app(tw)  # installs the metrics before the jobs run
    async with client_for(app, authorization=BEARER) as client:
        await seed(tw)
        # A live worker with 4 slots on "emails", one of them busy.
        worker = tw.make_worker({"emails": 4})
        (claimed,) = await worker.fetch("emails", 1)
        now = tw.clock.now()
        await tw.backend.record_worker(
            WorkerInfo(
                id="w1",
                hostname="h",
                pid=1,
                queues={"emails": 4},
                started_at=now,
                heartbeat_at=now,
                running=1,
            )
        )
        samples = await scrape(client)

    build = {"queue": "reports", "task": "reports.build"}
    assert value(samples, "taskward_jobs_enqueued_total", **build) == 5
    assert value(samples, "taskward_jobs_enqueued_total", queue="emails", task="emails.send") == 1
    processed = "taskward_jobs_processed_total"
    assert value(samples, processed, status="completed", **build) == 3
    assert value(samples, processed, status="failed", **build) == 2
    assert value(samples, "taskward_job_execution_seconds_count", **build) == 5
    assert value(samples, "taskward_job_wait_seconds_count", **build) == 5
    assert value(samples, "taskward_job_wait_seconds_bucket", le="+Inf", **build) == 5
    assert value(samples, "taskward_queue_jobs", queue="reports", state="completed") == 3
    assert value(samples, "taskward_queue_jobs", queue="reports", state="failed") == 2
    assert value(samples, "taskward_queue_jobs", queue="emails", state="running") == 1
    assert value(samples, "taskward_workers_active", queue="emails") == 1
    assert value(samples, "taskward_workers_available", queue="emails") == 3
    assert value(samples, "taskward_workers_available", queue="reports") == 0
    assert value(samples, "taskward_queue_paused", queue="emails") == 0
    assert claimed.queue == "emails"


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_queue_gauges_are_cached_between_scrapes(tw: TaskManager) -> None:
    registry = CollectorRegistry()
    metrics = install_metrics(tw, registry, stats_max_age=3600)
    await tw.enqueue_task("tests_support.jobs:add", args=[1])
    await metrics.refresh()
    await tw.enqueue_task("tests_support.jobs:add", args=[2])
    await metrics.refresh()  # within max_age: no second statistics query
    text = _render(registry)
    assert 'taskward_queue_jobs{queue="default",state="pending"} 1.0' in text
    metrics.stats.max_age = 0
    await metrics.refresh()
    assert 'taskward_queue_jobs{queue="default",state="pending"} 2.0' in _render(registry)
    # Installing again into the same registry reuses the metrics (no duplicate timeseries).
    assert install_metrics(tw, registry) is metrics


def _render(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


async def test_rescued_jobs_and_background_failures_are_counted(clock: FrozenClock) -> None:
    async def broken() -> None:
        raise RuntimeError("in-process failure")

    tw = TaskManager("memory://", clock=clock, lease_seconds=5)
    async with client_for(create_app(tw)) as client:
        await safe_create_task(broken(), name="emails.flush")  # logged, counted, returns
        job = await tw.enqueue_task("tests_support.jobs:add", args=[1], max_attempts=1)
        await tw.make_worker({"default": 1}).fetch("default", 1)  # then its worker "dies"
        clock.advance(60)
        rescuer = Rescuer(
            tw.backend,
            clock,
            1,
            leadership=None,
            resolve=tw._lookup,
            default_policy=tw.default_policy,
            events=tw.events,
        )
        await rescuer.run_once()
        samples = await scrape(client)
    labels = {"queue": "default", "task": job.task}
    assert value(samples, "taskward_jobs_processed_total", status="rescued_failed", **labels) == 1
    assert value(samples, "taskward_background_task_failures_total", task="emails.flush") == 1
    await tw.close()


async def test_global_limits_are_gauges_and_say_when_full(tw: TaskManager) -> None:
    registry = CollectorRegistry()
    metrics = install_metrics(tw, registry, stats_max_age=0)
    await tw.configure_queue("emails", global_limit=2)
    for n in range(3):
        await tw.enqueue_task("tests_support.jobs:add", args=[n], queue="emails")
    await metrics.refresh()
    text = _render(registry)
    assert 'taskward_queue_global_limit{queue="emails"} 2.0' in text
    assert 'taskward_queue_limited{queue="emails",reason="global_limit"} 0.0' in text
    now = tw.clock.now()
    claimed = await tw.backend.fetch(
        queue="emails", limit=5, worker_id="w", now=now, lease_until=now + timedelta(seconds=60)
    )
    assert len(claimed) == 2  # the limit
    await metrics.refresh()
    assert 'taskward_queue_limited{queue="emails",reason="global_limit"} 1.0' in _render(registry)
    assert (await tw.get_statistics())["limits"] == {
        "emails": {
            "partition_by": None,
            "global_limit": 2,
            "rate_limit": None,
            "rate_used": None,
            "rate_full": False,
            "held_until": None,
            "waits": {"global_limit": 1},  # the claim left one job waiting
        }
    }
    assert 'taskward_queue_limit_waits_total{queue="emails",reason="global_limit"} 1.0' in (
        _render(registry)
    )
    # A full rate window and a hold say so too.
    await tw.configure_queue("sms", rate_limit="1/h")
    await tw.enqueue_task("tests_support.jobs:add", args=[1], queue="sms")
    await tw.backend.fetch(
        queue="sms", limit=5, worker_id="w", now=now, lease_until=now + timedelta(seconds=60)
    )
    await tw.hold_queue("media", seconds=600)
    await metrics.refresh()
    text = _render(registry)
    assert 'taskward_queue_rate_limit{queue="sms",window_seconds="3600"} 1.0' in text
    assert 'taskward_queue_limited{queue="sms",reason="rate_limit"} 1.0' in text
    assert 'taskward_queue_limited{queue="media",reason="held"} 1.0' in text
    assert 'taskward_queue_limited{queue="emails",reason="held"} 0.0' in text
