"""The health half of the facade: ``tw.health()``, mixed into the TaskManager.

It gathers the store's figures (``Backend.health_figures``) and the live workers at one
instant of the manager's clock and hands them to the pure :func:`taskward.health.judge`. The
thresholds are the call's, else the manager's (``TaskManager(health_thresholds=...)``), else
the documented defaults.
"""

from __future__ import annotations

from datetime import timedelta

from taskward.backends.base import Backend
from taskward.clock import Clock
from taskward.errors import InvalidOptions
from taskward.health import HealthQuery, HealthReport, HealthThresholds, judge
from taskward.settings import Settings

__all__ = ["HealthOperations", "check_thresholds"]


def check_thresholds(thresholds: object) -> HealthThresholds | None:
    """Return ``thresholds`` if it is None or :class:`HealthThresholds`, else raise."""
    if thresholds is not None and not isinstance(thresholds, HealthThresholds):
        raise InvalidOptions(
            f"health thresholds must be a HealthThresholds, got {type(thresholds).__name__}"
        )
    return thresholds


class HealthOperations:
    """``health`` (its sync twin is ``manager.sync.health``)."""

    settings: Settings
    clock: Clock
    health_thresholds: HealthThresholds | None

    async def _backend(self) -> Backend:
        raise NotImplementedError

    async def health(self, thresholds: HealthThresholds | None = None) -> HealthReport:
        """Judge the store's health now: per queue and overall ``ok``, ``degraded`` or ``failing``.

        Per queue: the age of the oldest due job, the backlog, running and stuck jobs, paused,
        live workers; per task in it, runs and failures over the last 5 and 60 minutes and the
        p50 and p95 run time of its runs that completed in the last hour
        (:mod:`taskward.health.run_times`); and the reasons (each threshold that tripped).
        ``thresholds`` overrides the manager's for this call. Workers count as alive as in
        :meth:`get_statistics` (a heartbeat within two lease periods); a running job is stuck
        past its timeout plus one lease period.
        """
        chosen = check_thresholds(thresholds) or self.health_thresholds or HealthThresholds()
        backend = await self._backend()
        now = self.clock.now()
        lease = self.settings.lease_seconds
        query = HealthQuery.at(now, lease_grace=lease, stuck_after=chosen.stuck_after)
        figures = await backend.health_figures(query)
        workers = await backend.list_workers(alive_since=now - timedelta(seconds=lease * 2))
        return judge(figures, chosen, workers=workers, now=now)
