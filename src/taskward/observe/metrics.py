"""Prometheus exporters for taskward; the only module that imports ``prometheus_client``.

``prometheus_client`` is an optional dependency (the ``metrics`` extra). It is imported lazily,
inside the functions that need it, so this module can be imported without it and every caller
learns from a ``bool`` whether a metric was registered.

This module must not import :mod:`taskward.aio` (aio imports this module at import time). Data
flows in through callables handed to the ``register_*`` functions instead.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["BACKGROUND_FAILURES_METRIC", "register_background_failures"]

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
