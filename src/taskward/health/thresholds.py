"""The thresholds of the health check: what makes a queue ``degraded`` or ``failing``.

A :class:`HealthLimits` is one level's set of limits; :class:`HealthThresholds` holds one for
``degraded`` and one for ``failing``, per-queue overrides, and the stuck rule. A limit set to
None is off. Every ``max_*`` trips when the figure is *above* it (equal is fine); ``min_workers``
trips when fewer workers serve the queue. Bad values raise :class:`InvalidOptions` when the
thresholds are made, never at check time.

Defaults (:data:`DEFAULT_DEGRADED`, :data:`DEFAULT_FAILING`):

=========================  ================  =================
limit                      degraded above    failing above
=========================  ================  =================
max_oldest_due_age         300 s (5 min)     1,800 s (30 min)
max_backlog                10,000 jobs       100,000 jobs
max_failure_rate_5m        25 % (≥ 10 runs)  75 % (≥ 10 runs)
max_failure_rate_60m       10 % (≥ 20 runs)  50 % (≥ 20 runs)
max_stuck                  0 jobs            10 jobs
min_workers                below 1           off
=========================  ================  =================

``min_workers`` is judged only for a queue that has due jobs and is not paused: a queue with
nothing waiting needs no worker. It is off for ``failing`` by default so that a web process
probing a store whose workers are being redeployed is not taken out of its load balancer; a
queue nobody serves still becomes failing once its oldest job is 30 minutes late.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Final

from taskward.errors import InvalidOptions
from taskward.jobs import MAX_DELAY_SECONDS, validate_queue_name

__all__ = [
    "DEFAULT_DEGRADED",
    "DEFAULT_FAILING",
    "DEFAULT_STUCK_AFTER",
    "HealthLimits",
    "HealthThresholds",
    "QueueThresholds",
]

DEFAULT_STUCK_AFTER: Final = 3600.0
"""Seconds a running job without a timeout may run before it counts as stuck."""

_SECONDS = ("max_oldest_due_age",)
_COUNTS = ("max_backlog", "max_stuck", "min_workers", "min_runs_5m", "min_runs_60m")
_RATES = ("max_failure_rate_5m", "max_failure_rate_60m")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthLimits:
    """One level's limits (see the module docstring); None turns a limit off."""

    max_oldest_due_age: float | None = None
    """Seconds the oldest due job of a queue may have waited."""
    max_backlog: int | None = None
    """Due jobs a queue may hold."""
    max_failure_rate_5m: float | None = None
    """Failure rate (0 to 1) of a task in a queue over the last 5 minutes."""
    max_failure_rate_60m: float | None = None
    """Failure rate (0 to 1) of a task in a queue over the last hour."""
    min_runs_5m: int = 10
    """Runs in the last 5 minutes before the 5-minute rate is judged at all."""
    min_runs_60m: int = 20
    """Runs in the last hour before the hourly rate is judged at all."""
    max_stuck: int | None = None
    """Stuck running jobs a queue may have."""
    min_workers: int | None = None
    """Live workers that must serve a queue with due jobs (not paused)."""

    def __post_init__(self) -> None:
        for name in _SECONDS:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 <= value <= MAX_DELAY_SECONDS
            ):
                raise InvalidOptions(
                    f"health threshold {name} must be a number of seconds >= 0 or None, "
                    f"got {value!r}"
                )
        for name in _COUNTS:
            value = getattr(self, name)
            optional = not name.startswith("min_runs")
            if value is None and optional:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                allowed = " or None" if optional else ""
                raise InvalidOptions(
                    f"health threshold {name} must be an int >= 0{allowed}, got {value!r}"
                )
        for name in _RATES:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 1  # NaN fails this too
            ):
                raise InvalidOptions(
                    f"health threshold {name} must be a rate between 0 and 1 or None, got {value!r}"
                )


DEFAULT_DEGRADED: Final = HealthLimits(
    max_oldest_due_age=300.0,
    max_backlog=10_000,
    max_failure_rate_5m=0.25,
    max_failure_rate_60m=0.10,
    max_stuck=0,
    min_workers=1,
)
"""The ``degraded`` limits used unless the app gives its own."""
DEFAULT_FAILING: Final = HealthLimits(
    max_oldest_due_age=1800.0,
    max_backlog=100_000,
    max_failure_rate_5m=0.75,
    max_failure_rate_60m=0.50,
    max_stuck=10,
)
"""The ``failing`` limits used unless the app gives its own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueThresholds:
    """One queue's own limits; a level left None keeps the app-wide one.

    Each given level replaces the app-wide level whole (build it from the default with
    ``dataclasses.replace(DEFAULT_DEGRADED, max_backlog=50_000)`` to change one limit).
    """

    degraded: HealthLimits | None = None
    failing: HealthLimits | None = None

    def __post_init__(self) -> None:
        for name in ("degraded", "failing"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, HealthLimits):
                raise InvalidOptions(f"QueueThresholds.{name} must be HealthLimits or None")


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthThresholds:
    """What the health check judges against: two levels, per-queue overrides, the stuck rule.

    ``HealthThresholds()`` is the documented defaults. Give it to ``TaskManager(...,
    health_thresholds=...)`` or to one call of ``tw.health(thresholds=...)``.
    """

    degraded: HealthLimits = DEFAULT_DEGRADED
    failing: HealthLimits = DEFAULT_FAILING
    queues: Mapping[str, QueueThresholds] = field(default_factory=dict)
    """Per-queue overrides, by queue name."""
    stuck_after: float = DEFAULT_STUCK_AFTER
    """Seconds a running job without a timeout may run before it counts as stuck."""

    def __post_init__(self) -> None:
        for name in ("degraded", "failing"):
            if not isinstance(getattr(self, name), HealthLimits):
                raise InvalidOptions(f"HealthThresholds.{name} must be HealthLimits")
        if not isinstance(self.queues, Mapping):
            raise InvalidOptions("HealthThresholds.queues must map queue names to QueueThresholds")
        for queue, override in self.queues.items():
            validate_queue_name(queue)
            if not isinstance(override, QueueThresholds):
                raise InvalidOptions(
                    f"HealthThresholds.queues[{queue!r}] must be QueueThresholds, "
                    f"got {type(override).__name__}"
                )
        # A private copy: the caller's dict changing later must not change these thresholds.
        object.__setattr__(self, "queues", dict(self.queues))
        value = self.stuck_after
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 < value <= MAX_DELAY_SECONDS
        ):
            raise InvalidOptions(
                f"health threshold stuck_after must be a number of seconds > 0, got {value!r}"
            )

    def levels(self, queue: str) -> tuple[HealthLimits, HealthLimits]:
        """``(degraded, failing)`` limits that apply to ``queue``."""
        override = self.queues.get(queue)
        if override is None:
            return self.degraded, self.failing
        return override.degraded or self.degraded, override.failing or self.failing

    def describe(self) -> dict[str, object]:
        """The thresholds as JSON-ready values (the report and the CLI show them)."""

        def limits(level: HealthLimits) -> dict[str, object]:
            return {f.name: getattr(level, f.name) for f in fields(level)}

        return {
            "degraded": limits(self.degraded),
            "failing": limits(self.failing),
            "stuck_after": self.stuck_after,
            "queues": {
                name: {
                    level: limits(getattr(override, level))
                    for level in ("degraded", "failing")
                    if getattr(override, level) is not None
                }
                for name, override in sorted(self.queues.items())
            },
        }
