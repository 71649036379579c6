"""The health report: figures with their verdicts, per queue and overall, and its JSON form.

One data model for every reader: ``tw.health()`` returns a :class:`HealthReport`,
``GET /health/jobs`` and ``taskward health --json`` serve :meth:`HealthReport.as_json`, the
Prometheus gauges and the dashboard's overview read the same fields. It holds counts, ages,
job ids and task names, never a job's arguments, result or error text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from taskward.health.figures import Ended

__all__ = [
    "HealthReason",
    "HealthReport",
    "HealthVerdict",
    "QueueHealth",
    "TaskHealth",
]


class HealthVerdict(StrEnum):
    """How healthy a queue (or the whole store) is, from best to worst."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"

    @property
    def severity(self) -> int:
        """0 for ok, 1 for degraded, 2 for failing (the gauge's value and the CLI's exit code)."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, verdicts: list[HealthVerdict]) -> HealthVerdict:
        """The worst of ``verdicts``; ok when there are none."""
        return max(verdicts, key=lambda v: v.severity, default=cls.OK)


_SEVERITY = {HealthVerdict.OK: 0, HealthVerdict.DEGRADED: 1, HealthVerdict.FAILING: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReason:
    """One threshold that tripped: which, at which level, for what, by how much."""

    level: HealthVerdict
    """``degraded`` or ``failing``: the level whose limit was passed."""
    threshold: str
    """The limit's name in :class:`~taskward.health.thresholds.HealthLimits`."""
    queue: str
    value: float
    """The figure that passed it."""
    limit: float
    task: str | None = None
    """The task, for a failure rate."""

    @property
    def message(self) -> str:
        """One line for people: ``queue 'q': oldest due job waited 412 s (degraded above 300)``."""
        subject = f"queue {self.queue!r}" + (f", task {self.task!r}" if self.task else "")
        return f"{subject}: {_WHAT[self.threshold](self.value, self.limit, self.level)}"

    def as_json(self) -> dict[str, Any]:
        """The reason as JSON-ready values."""
        return {
            "level": self.level.value,
            "threshold": self.threshold,
            "queue": self.queue,
            "task": self.task,
            "value": self.value,
            "limit": self.limit,
            "message": self.message,
        }


_Say = Callable[[float, float, HealthVerdict], str]


def _above(what: str, unit: str = "") -> _Say:
    def say(value: float, limit: float, level: HealthVerdict) -> str:
        return f"{what} {value:,.{_digits(value)}f}{unit} ({level} above {limit:,g}{unit})"

    return say


def _rate(window: str) -> _Say:
    def say(value: float, limit: float, level: HealthVerdict) -> str:
        return f"failure rate {value:.0%} over {window} ({level} above {limit:.0%})"

    return say


def _workers(value: float, limit: float, level: HealthVerdict) -> str:
    return f"{value:.0f} live worker(s) serve it while jobs wait ({level} below {limit:g})"


def _digits(value: float) -> int:
    return 0 if float(value).is_integer() or value >= 10 else 1


_WHAT: dict[str, _Say] = {
    "max_oldest_due_age": _above("oldest due job waited", " s"),
    "max_backlog": _above("backlog of", " due jobs"),
    "max_stuck": _above("stuck running jobs:"),
    "max_failure_rate_5m": _rate("5 minutes"),
    "max_failure_rate_60m": _rate("60 minutes"),
    "min_workers": _workers,
}


def _window(ended: Ended) -> dict[str, Any]:
    return {"runs": ended.runs, "failures": ended.failures, "failure_rate": ended.rate}


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskHealth:
    """One task's runs in one queue over the last 5 and 60 minutes, and its run times."""

    queue: str
    task: str
    last_5m: Ended
    last_60m: Ended
    p50_seconds: float | None = None
    """Median run time of its runs that completed in the last hour (nearest rank, see
    :mod:`taskward.health.run_times`); None without one."""
    p95_seconds: float | None = None
    """95th percentile of the same run times; None without a completed run."""

    def as_json(self) -> dict[str, Any]:
        """The task's figures as JSON-ready values."""
        return {
            "task": self.task,
            "last_5m": _window(self.last_5m),
            "last_60m": _window(self.last_60m),
            "p50_seconds": self.p50_seconds,
            "p95_seconds": self.p95_seconds,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueHealth:
    """One queue's figures, its verdict and the reasons for it."""

    queue: str
    verdict: HealthVerdict
    reasons: tuple[HealthReason, ...]
    """Every limit that tripped, failing ones first."""
    oldest_due_age: float | None
    """Seconds the oldest due job has waited (0 if due in the future by clock skew); None
    without due jobs."""
    backlog: int
    running: int
    stuck: int
    stuck_ids: tuple[int, ...]
    paused: bool
    workers: int
    """Live workers serving this queue."""
    tasks: tuple[TaskHealth, ...]

    def as_json(self) -> dict[str, Any]:
        """The queue's figures, verdict and reasons as JSON-ready values."""
        return {
            "queue": self.queue,
            "verdict": self.verdict.value,
            "reasons": [reason.as_json() for reason in self.reasons],
            "oldest_due_age": self.oldest_due_age,
            "backlog": self.backlog,
            "running": self.running,
            "stuck": self.stuck,
            "stuck_ids": list(self.stuck_ids),
            "paused": self.paused,
            "workers": self.workers,
            "tasks": [task.as_json() for task in self.tasks],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """The whole check: the worst verdict, every reason, each queue, the live workers."""

    verdict: HealthVerdict
    reasons: tuple[HealthReason, ...]
    checked_at: datetime
    queues: tuple[QueueHealth, ...]
    workers_alive: int
    thresholds: dict[str, Any]
    """The thresholds judged against (:meth:`HealthThresholds.describe`)."""

    def queue(self, name: str) -> QueueHealth | None:
        """The queue named ``name``, or None if the report has no such queue."""
        return next((q for q in self.queues if q.queue == name), None)

    def only(self, name: str) -> HealthReport:
        """The report of queue ``name`` alone, with its verdict and reasons.

        Ok, without a row, when the store has nothing of it (no due, running or recently
        ended job, no pause, no worker).
        """
        found = self.queue(name)
        if found is None:
            return replace(self, verdict=HealthVerdict.OK, reasons=(), queues=())
        return replace(self, verdict=found.verdict, reasons=found.reasons, queues=(found,))

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (the HTTP endpoint's and ``--json``'s body)."""
        return {
            "verdict": self.verdict.value,
            "reasons": [reason.as_json() for reason in self.reasons],
            "checked_at": self.checked_at.isoformat(),
            "workers_alive": self.workers_alive,
            "queues": [queue.as_json() for queue in self.queues],
            "thresholds": self.thresholds,
        }
