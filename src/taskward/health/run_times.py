"""Run-time percentiles of a task's successful runs over the health check's long window.

The rules every store follows (:class:`RunTimes` is what it reports):

- A **run time** is ``completed_at - attempted_at`` of a job that *completed* in the window
  (by ``completed_at``): the attempt that ended, not the job's life since it was enqueued.
  Failed and discarded runs are left out: a timeout or a crash ends a run at an arbitrary
  point, and a burst of them would pass for slow work. Their count is in the failure rate.
- **p50** and **p95** are nearest-rank percentiles: the run time at rank ``ceil(p * n / 100)``
  of the ``n`` run times in ascending order, so each is the time of a real run (PostgreSQL's
  ``percentile_disc``). Of 20 runs taking 1 to 20 s, p50 is 10 s and p95 19 s.
- The SQL and memory stores are exact (SQLite to the microsecond). The Redis store counts
  run times in log-scale buckets (:func:`bucket_of`, each :data:`BUCKET_RATIO` times as wide
  as the one below) and reports the middle of the bucket the rank falls in: within
  :data:`RELATIVE_ERROR` of the exact value.
- A run time below zero (clocks of two hosts) counts as 0. On PostgreSQL a job an idle
  worker took straight from the insert (direct dispatch) has ``attempted_at`` from the
  enqueuing process's clock and ``completed_at`` from the worker's: its run time includes
  the two clocks' difference and any delay before the worker picked it up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BUCKET_RATIO",
    "MICROSECOND",
    "PERCENTILES",
    "RELATIVE_ERROR",
    "RunTimes",
    "bucket_of",
    "from_buckets",
    "from_sorted",
    "rank",
]

PERCENTILES: Final = (50, 95)
"""The percentiles the health check reports."""
BUCKET_RATIO: Final = 1.02
"""Upper over lower bound of one run-time bucket of the Redis store (microseconds)."""
RELATIVE_ERROR: Final = math.sqrt(BUCKET_RATIO) - 1 + 1e-9
"""The most a bucketed percentile differs from the exact one, relative to it (about 1 %)."""
MICROSECOND: Final = 1e-6
"""Seconds in a microsecond: the unit of run times the SQLite and Redis stores count in."""
ZERO_BUCKET: Final = -1
"""The bucket of run times under a microsecond (a clock step back counts as no time)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTimes:
    """One task's run times in one queue: successful runs measured, p50 and p95 in seconds."""

    queue: str
    task: str
    runs: int
    """Completed runs with both times known (the ``n`` of the percentiles)."""
    p50_seconds: float
    p95_seconds: float


def rank(percent: int, count: int) -> int:
    """The 1-based nearest rank of ``percent`` among ``count`` values (integers: no float edge)."""
    return max(1, (percent * count + 99) // 100)


def from_sorted(
    queue: str, task: str, times: Sequence[float], *, unit: float = 1.0
) -> RunTimes | None:
    """The percentiles of run times in ascending order, ``unit`` seconds each; None if none."""
    if not times:
        return None
    p50, p95 = (max(0.0, times[rank(p, len(times)) - 1] * unit) for p in PERCENTILES)
    return RunTimes(queue=queue, task=task, runs=len(times), p50_seconds=p50, p95_seconds=p95)


def bucket_of(microseconds: float) -> int:
    """The bucket of a run time: ``floor(log(us) / log(BUCKET_RATIO))`` (``health_ended.lua``)."""
    if microseconds < 1:
        return ZERO_BUCKET
    return math.floor(math.log(microseconds) / math.log(BUCKET_RATIO))


def _middle(bucket: int) -> float:
    """Seconds in the geometric middle of ``bucket`` (the least relative error either way)."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return float(BUCKET_RATIO ** (bucket + 0.5)) / 1e6


def from_buckets(queue: str, task: str, counts: Mapping[int, int]) -> RunTimes | None:
    """The percentiles of run times counted per bucket; None when there are none."""
    total = sum(counts.values())
    if total <= 0:
        return None
    found: list[float] = []
    for percent in PERCENTILES:
        wanted, seen = rank(percent, total), 0
        for bucket in sorted(counts):
            seen += counts[bucket]
            if seen >= wanted:
                found.append(_middle(bucket))
                break
    p50, p95 = found
    return RunTimes(queue=queue, task=task, runs=total, p50_seconds=p50, p95_seconds=p95)
