"""SLO health of the job store: figures, thresholds, the verdict, and the report.

Pure values and one pure function, below the backends in the layers (a backend returns
:class:`HealthFigures`; the manager, the web app, the metrics and the CLI read a
:class:`HealthReport`):

- :mod:`~taskward.health.figures`: what a store counts (due, backlog, running, stuck, runs and
  failures per task over 5 and 60 minutes), and the rules every store counts by;
- :mod:`~taskward.health.run_times`: :class:`RunTimes`, p50 and p95 of a task's successful
  runs, and how each store computes them;
- :mod:`~taskward.health.thresholds`: :class:`HealthThresholds`, its defaults and validation;
- :mod:`~taskward.health.report`: :class:`HealthReport` and its JSON form;
- :mod:`~taskward.health.verdict`: :func:`judge`, figures + thresholds → report.
"""

from taskward.health.figures import (
    Ended,
    FiguresBuilder,
    HealthFigures,
    HealthQuery,
    QueueFigures,
    TaskFigures,
)
from taskward.health.report import (
    HealthReason,
    HealthReport,
    HealthVerdict,
    QueueHealth,
    TaskHealth,
)
from taskward.health.run_times import RunTimes
from taskward.health.thresholds import (
    DEFAULT_DEGRADED,
    DEFAULT_FAILING,
    HealthLimits,
    HealthThresholds,
    QueueThresholds,
)
from taskward.health.verdict import judge

__all__ = [
    "DEFAULT_DEGRADED",
    "DEFAULT_FAILING",
    "Ended",
    "FiguresBuilder",
    "HealthFigures",
    "HealthLimits",
    "HealthQuery",
    "HealthReason",
    "HealthReport",
    "HealthThresholds",
    "HealthVerdict",
    "QueueFigures",
    "QueueHealth",
    "QueueThresholds",
    "RunTimes",
    "TaskFigures",
    "TaskHealth",
    "judge",
]
