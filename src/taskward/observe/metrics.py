"""Prometheus exporters for taskward; the only module that imports ``prometheus_client``.

``prometheus_client`` is an optional dependency (the ``metrics`` extra). It is imported lazily,
inside the functions that need it, so this module can be imported without it and every caller
learns from a ``bool`` whether a metric was registered.

This module must not import :mod:`taskward.aio` (aio imports this module at import time). Data
flows in through callables handed to the ``register_*`` functions instead. Durable-job metrics
are event subscribers (:func:`install_metrics`); queue depths are read from the store at
scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from taskward.health import HealthReport, HealthThresholds
from taskward.limits import parse_rate
from taskward.observe.events import OUTCOME_EVENTS, Event, EventBus

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "BACKGROUND_FAILURES_METRIC",
    "HealthCollector",
    "JobMetrics",
    "StatsCollector",
    "exposition",
    "install_metrics",
    "new_registry",
    "register_background_failures",
]

logger = logging.getLogger(__name__)

#: Family name of the background-failure counter; the exposition adds the ``_total`` suffix.
BACKGROUND_FAILURES_METRIC = "taskward_background_task_failures"


class _BackgroundFailuresCollector:
    """Prometheus collector that reads the in-process failure counts at scrape time.

    A custom collector, rather than a ``Counter`` incremented on each failure, keeps
    :mod:`taskward.aio` free of Prometheus: the counts stay the single source of truth and are
    read (thread-safely, by the callable) only when a scrape happens.
    """

    def __init__(self, get_counts: Callable[[], Mapping[str, int]]) -> None:
        self.get_counts = get_counts

    def _family(self, counts: Mapping[str, int]) -> Metric:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            BACKGROUND_FAILURES_METRIC,
            "In-process background tasks that raised an exception, by task name.",
            labels=["task"],
        )
        for task, count in sorted(counts.items()):
            family.add_metric([task], count)
        return family

    def describe(self) -> Iterator[Metric]:
        """Yield the empty family, so registering never calls ``get_counts``."""
        yield self._family({})

    def collect(self) -> Iterator[Metric]:
        """Yield the family with one sample per task name that has failed."""
        yield self._family(self.get_counts())


# One collector per registry, keyed weakly so a registry dropped by a test is not kept alive.
_background_collectors: weakref.WeakKeyDictionary[
    CollectorRegistry, _BackgroundFailuresCollector
] = weakref.WeakKeyDictionary()


def register_background_failures(
    get_counts: Callable[[], Mapping[str, int]],
    registry: CollectorRegistry | None = None,
) -> bool:
    """Register the ``taskward_background_task_failures_total{task}`` counter; True if exported.

    ``get_counts`` is called at every scrape, possibly from another thread, and must return a
    consistent snapshot ``{task name: failures}``. ``registry`` defaults to
    ``prometheus_client.REGISTRY``.

    Idempotent: registering again into the same registry keeps one collector and points it at
    the new ``get_counts`` (so re-importing a module does not raise "Duplicated timeseries").
    Returns False, without raising, when ``prometheus_client`` is not installed or when another
    collector already owns the metric name in that registry (that clash is logged).
    """
    try:
        from prometheus_client import REGISTRY
    except ImportError:
        return False
    target = REGISTRY if registry is None else registry
    existing = _background_collectors.get(target)
    if existing is not None:
        existing.get_counts = get_counts
        return True
    collector = _BackgroundFailuresCollector(get_counts)
    try:
        target.register(collector)
    except ValueError:
        # Someone else's collector owns the name; failing the caller's import would be worse.
        logger.warning(
            "metric %s is already registered; not exporting it", BACKGROUND_FAILURES_METRIC
        )
        return False
    _background_collectors[target] = collector
    return True


# -- durable jobs ---------------------------------------------------------------------------
#: Buckets for the time a job waited between being due and starting: ms to an hour.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Observed(Protocol):
    """What :func:`install_metrics` needs: a TaskManager fits (metrics never import it)."""

    @property
    def events(self) -> EventBus:
        """The bus the manager and its workers emit on."""
        ...

    async def get_statistics(self) -> dict[str, Any]:
        """Counts by queue and state, paused queues, live workers."""
        ...

    async def health(self, thresholds: HealthThresholds | None = None) -> HealthReport:
        """The SLO health report (``taskward.health``)."""
        ...


class StatsCollector:
    """Scrape-time gauges from one ``get_statistics()`` call, cached ``max_age`` seconds.

    ``collect`` is synchronous (prometheus_client calls it from any thread) while the backend
    is async, so the async ``/metrics`` route calls :meth:`refresh` before rendering; the
    cache also keeps a busy scraper from costing more than one statistics query per second.
    """

    def __init__(self, snapshot: Callable[[], Awaitable[dict[str, Any]]], max_age: float) -> None:
        self.snapshot = snapshot
        self.max_age = max_age
        self._stats: dict[str, Any] | None = None
        self._taken = -math.inf
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the statistics again unless the cached copy is younger than ``max_age``."""
        async with self._lock:
            if time.monotonic() - self._taken < self.max_age:
                return
            self._stats = await self.snapshot()
            self._taken = time.monotonic()

    def describe(self) -> Iterator[Metric]:
        """Yield the empty families (registering never queries the backend)."""
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges from the last refresh (none before the first)."""
        yield from self._families(self._stats or {})

    def _families(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        jobs = GaugeMetricFamily(
            "taskward_queue_jobs",
            "Jobs by queue and state (from the store).",
            labels=["queue", "state"],
        )
        active = GaugeMetricFamily(
            "taskward_workers_active",
            "Worker slots busy running a job, by queue.",
            labels=["queue"],
        )
        available = GaugeMetricFamily(
            "taskward_workers_available",
            "Free worker slots of live workers, by queue.",
            labels=["queue"],
        )
        paused = GaugeMetricFamily(
            "taskward_queue_paused", "1 if the queue is paused.", labels=["queue"]
        )
        global_limit = GaugeMetricFamily(
            "taskward_queue_global_limit",
            "The queue's global limit: at most this many of its jobs run at once on all nodes.",
            labels=["queue"],
        )
        rate_limit = GaugeMetricFamily(
            "taskward_queue_rate_limit",
            "The queue's rate limit: at most this many of its jobs start per window.",
            labels=["queue", "window_seconds"],
        )
        limited = GaugeMetricFamily(
            "taskward_queue_limited",
            "1 while a limit holds the queue's waiting jobs back; reason: global_limit (full), "
            "rate_limit (the window is full), held (a job raised RateLimited).",
            labels=["queue", "reason"],
        )
        waits = CounterMetricFamily(
            "taskward_queue_limit_waits",
            "Claims of the queue a limit turned away while its jobs were due, by reason "
            "(held, global_limit, rate_limit); kept by the store since the queue's limits "
            "were set.",
            labels=["queue", "reason"],
        )
        slots: dict[str, int] = {}
        for node in stats.get("workers", {}).get("nodes", []):
            for queue, concurrency in node["queues"].items():
                slots[queue] = slots.get(queue, 0) + int(concurrency)
        queues: Mapping[str, Mapping[str, int]] = stats.get("queues", {})
        paused_set = set(stats.get("paused", []))
        limits: Mapping[str, Mapping[str, Any]] = stats.get("limits", {})
        for queue, limit in sorted(limits.items()):
            cap = limit.get("global_limit")
            if cap is not None:
                global_limit.add_metric([queue], cap)
                running = queues.get(queue, {}).get("running", 0)
                limited.add_metric([queue, "global_limit"], 1 if running >= cap else 0)
            rate = limit.get("rate_limit")
            if rate is not None:
                parsed = parse_rate(rate)
                if parsed is not None:
                    rate_limit.add_metric([queue, f"{parsed.seconds:g}"], parsed.count)
                limited.add_metric([queue, "rate_limit"], 1 if limit.get("rate_full") else 0)
            limited.add_metric([queue, "held"], 1 if limit.get("held_until") else 0)
            for reason, count in sorted(limit.get("waits", {}).items()):
                waits.add_metric([queue, reason], count)
        for queue in sorted(set(queues) | set(slots) | paused_set):
            counts = queues.get(queue, {})
            for state, count in sorted(counts.items()):
                jobs.add_metric([queue, state], count)
            running = counts.get("running", 0)
            active.add_metric([queue], running)
            available.add_metric([queue], max(0, slots.get(queue, 0) - running))
            paused.add_metric([queue], 1 if queue in paused_set else 0)
        yield from (jobs, active, available, paused, global_limit, rate_limit, limited, waits)


HEALTH_CHECK_TIMEOUT = 10.0
"""Seconds the health check of one ``/metrics`` scrape may take (its gauges then stay)."""


class HealthCollector:
    """Scrape-time gauges of the SLO health report, cached ``max_age`` seconds.

    The figures of ``GET /health/jobs`` and ``tw.health()``, refreshed as
    :class:`StatsCollector` is: the async ``/metrics`` route calls :meth:`refresh` first.
    ``taskward_health_verdict{queue}`` and ``taskward_health_overall_verdict`` are 0 (ok),
    1 (degraded) or 2 (failing). A check that fails or takes longer than ``timeout`` seconds
    never fails the scrape: the gauges of the last good report stay, and
    ``taskward_health_check_up`` says 0 (1 after a good check). A failed check is not
    repeated before ``max_age`` either, so a down store is not asked on every scrape.
    ``taskward_task_run_time_seconds{queue,task,quantile}`` is the p50 and p95 (``0.5``,
    ``0.95``, the label Prometheus summaries use) run time of the task's runs that completed
    in the last hour, on the whole store.
    """

    def __init__(
        self,
        snapshot: Callable[[], Awaitable[HealthReport]],
        max_age: float,
        timeout: float = HEALTH_CHECK_TIMEOUT,
    ) -> None:
        self.snapshot = snapshot
        self.max_age = max_age
        self.timeout = timeout
        self._report: HealthReport | None = None
        self._up: bool | None = None
        self._taken = -math.inf
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Judge the store again unless the last check is younger than ``max_age``."""
        try:
            async with asyncio.timeout(self.timeout):  # another scrape's check may be running
                await self._lock.acquire()
        except TimeoutError:
            return  # that check is hung: scrape with the last gauges, it marks itself down
        try:
            if time.monotonic() - self._taken < self.max_age:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    self._report = await self.snapshot()
                self._up = True
            except Exception as exc:  # a timeout too: the scrape's other metrics still count
                self._up = False
                logger.warning(
                    "job health check for /metrics failed (%s): keeping the last gauges",
                    type(exc).__name__ if isinstance(exc, TimeoutError) else exc,
                )
            self._taken = time.monotonic()
        finally:
            self._lock.release()

    def describe(self) -> Iterator[Metric]:
        """Yield the empty families (registering never queries the backend)."""
        yield from self._families(None, None)

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges of the last good report (none before the first) and the check's."""
        yield from self._families(self._report, self._up)

    def _families(self, report: HealthReport | None, up: bool | None) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        queue, task = ["queue"], ["queue", "task", "window"]
        g = {
            name: GaugeMetricFamily(name, text, labels=labels)
            for name, text, labels in (
                ("taskward_health_verdict", "0 ok, 1 degraded, 2 failing.", queue),
                ("taskward_health_overall_verdict", "The worst queue's verdict.", []),
                (
                    "taskward_queue_oldest_due_age_seconds",
                    "How long the oldest due job of the queue has waited (0 without one).",
                    queue,
                ),
                ("taskward_queue_backlog", "Due jobs waiting in the queue.", queue),
                (
                    "taskward_queue_stuck_jobs",
                    "Running jobs past their timeout plus a lease, or past stuck_after.",
                    queue,
                ),
                ("taskward_queue_workers_alive", "Live workers serving the queue.", queue),
                ("taskward_workers_alive", "Live workers (heartbeat within 2 leases).", []),
                ("taskward_task_runs", "Jobs of the task that ended in the window.", task),
                ("taskward_task_failures", "Runs that ended failed or discarded.", task),
                ("taskward_task_failure_rate", "Failures / runs in the window.", task),
                (
                    "taskward_task_run_time_seconds",
                    "p50 or p95 run time of the task's runs that completed in the last hour.",
                    ["queue", "task", "quantile"],
                ),
                (
                    "taskward_health_check_up",
                    "1 if the last health check succeeded, 0 if it failed or timed out.",
                    [],
                ),
            )
        }
        if report is not None:
            _health_samples(report, g)
        if up is not None:
            g["taskward_health_check_up"].add_metric([], 1.0 if up else 0.0)
        yield from g.values()


def _health_samples(report: HealthReport, g: Mapping[str, Any]) -> None:
    """Add the report's samples to the gauge families ``g`` (by metric name)."""
    g["taskward_health_overall_verdict"].add_metric([], report.verdict.severity)
    g["taskward_workers_alive"].add_metric([], report.workers_alive)
    for queue in report.queues:
        name = [queue.queue]
        g["taskward_health_verdict"].add_metric(name, queue.verdict.severity)
        g["taskward_queue_oldest_due_age_seconds"].add_metric(name, queue.oldest_due_age or 0.0)
        g["taskward_queue_backlog"].add_metric(name, queue.backlog)
        g["taskward_queue_stuck_jobs"].add_metric(name, queue.stuck)
        g["taskward_queue_workers_alive"].add_metric(name, queue.workers)
        for task in queue.tasks:
            for window, ended in (("5m", task.last_5m), ("60m", task.last_60m)):
                key = [queue.queue, task.task, window]
                g["taskward_task_runs"].add_metric(key, ended.runs)
                g["taskward_task_failures"].add_metric(key, ended.failures)
                if ended.rate is not None:  # no runs: no rate, rather than a made-up 0
                    g["taskward_task_failure_rate"].add_metric(key, ended.rate)
            for quantile, value in (("0.5", task.p50_seconds), ("0.95", task.p95_seconds)):
                if value is not None:  # no completed run: no sample, rather than a made-up 0
                    g["taskward_task_run_time_seconds"].add_metric(
                        [queue.queue, task.task, quantile], value
                    )


class JobMetrics:
    """Counters and histograms of durable jobs, fed by events, plus the scrape-time gauges.

    ``taskward_jobs_enqueued_total{queue,task}``, ``taskward_jobs_processed_total{queue,task,
    status}`` (status: the state an attempt ended in, or ``rescued_<state>`` for an orphan),
    ``taskward_job_execution_seconds{queue,task}``, ``taskward_job_wait_seconds{queue,task}``
    (due → started), and from :class:`StatsCollector` ``taskward_queue_jobs{queue,state}``,
    ``taskward_workers_active{queue}``, ``taskward_workers_available{queue}``,
    ``taskward_queue_paused{queue}``, ``taskward_queue_global_limit{queue}``,
    ``taskward_queue_rate_limit{queue,window_seconds}`` and
    ``taskward_queue_limited{queue,reason}`` (1 while a limit holds jobs back),
    ``taskward_queue_limit_waits_total{queue,reason}`` (claims a limit turned away while jobs
    were due, counted by the store), and from :class:`HealthCollector` the SLO health
    figures (``taskward_health_verdict{queue}``, ``taskward_queue_oldest_due_age_seconds``,
    ``taskward_queue_backlog``, ``taskward_queue_stuck_jobs``, ``taskward_task_failure_rate
    {queue,task,window}``…). Labels are bounded: queue, task and state names only.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        stats: StatsCollector,
        health: HealthCollector | None = None,
    ) -> None:
        from prometheus_client import Counter, Histogram

        self.registry = registry
        self.stats = stats
        self.health = health
        self.enqueued = Counter(
            "taskward_jobs_enqueued",
            "Jobs enqueued by this process.",
            ["queue", "task"],
            registry=registry,
        )
        self.processed = Counter(
            "taskward_jobs_processed",
            "Attempts that ended, by the state they ended in.",
            ["queue", "task", "status"],
            registry=registry,
        )
        self.execution = Histogram(
            "taskward_job_execution_seconds",
            "How long an attempt ran.",
            ["queue", "task"],
            registry=registry,
        )
        self.wait = Histogram(
            "taskward_job_wait_seconds",
            "How long a job waited from due to started.",
            ["queue", "task"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        registry.register(stats)
        if health is not None:
            registry.register(health)

    def attach(self, bus: EventBus) -> JobMetrics:
        """Subscribe to the events the metrics count; return self."""
        bus.on("job.enqueued", self._enqueued)
        bus.on("job.started", self._started)
        for name in (*OUTCOME_EVENTS.values(), "job.rescued"):
            bus.on(name, self._ended)
        return self

    async def refresh(self) -> None:
        """Refresh the scrape-time gauges (cached); call before rendering the registry."""
        await self.stats.refresh()
        if self.health is not None:
            await self.health.refresh()

    def _enqueued(self, event: Event) -> None:
        self.enqueued.labels(event.queue, event.task).inc()

    def _started(self, event: Event) -> None:
        wait = event.data.get("wait")
        if wait is not None:
            self.wait.labels(event.queue, event.task).observe(wait)

    def _ended(self, event: Event) -> None:
        state = str(event.data.get("state"))
        status = f"rescued_{state}" if event.name == "job.rescued" else state
        self.processed.labels(event.queue, event.task, status).inc()
        duration = event.data.get("duration")
        if duration is not None:
            self.execution.labels(event.queue, event.task).observe(duration)


_job_metrics: weakref.WeakKeyDictionary[CollectorRegistry, JobMetrics] = weakref.WeakKeyDictionary()


def install_metrics(
    manager: Observed, registry: CollectorRegistry | None = None, *, stats_max_age: float = 1.0
) -> JobMetrics:
    """Export ``manager``'s job metrics into ``registry`` (default: the global registry).

    Idempotent per registry: installing a second manager into the same registry feeds the same
    metrics from both. Raises ImportError without ``prometheus_client`` (the ``metrics`` extra).
    """
    from prometheus_client import REGISTRY

    target = REGISTRY if registry is None else registry
    metrics = _job_metrics.get(target)
    if metrics is None:
        metrics = JobMetrics(
            target,
            StatsCollector(manager.get_statistics, stats_max_age),
            HealthCollector(manager.health, stats_max_age),
        )
        _job_metrics[target] = metrics
    return metrics.attach(manager.events)


def new_registry() -> CollectorRegistry:
    """Return an empty registry (an app of its own, so tests and many apps never clash)."""
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """Return the text exposition of ``registry`` and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST


#: The media type of :func:`exposition` for API docs (the version parameter varies by release).
EXPOSITION_CONTENT_TYPE = "text/plain"
