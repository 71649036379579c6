"""``GET /health/jobs``: the job store's SLO health as a probe for load balancers and Kubernetes.

The body is :meth:`taskward.health.HealthReport.as_json` (counts, ages, job ids, task and
queue names: never a job's arguments, result or error text). The status is 200 for ``ok`` and
``degraded``, 503 for ``failing``; ``?strict=true`` makes ``degraded`` 503 too, and
``?queue=NAME`` judges one queue alone (a queue with nothing to report is ``ok``; a name no
queue can have is 400). A store that cannot be read answers 503 with ``{"verdict":
"failing", "error": ...}``.

Reports are cached ``max_age`` seconds (1 by default), so a fleet of probes costs the store one
check per second, not one per probe. A check is bounded (``timeout``, 10 s by default): one
that hangs answers 503 rather than holding every probe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol

from fastapi import APIRouter, Query
from fastapi.params import Depends
from fastapi.responses import JSONResponse

from taskward.errors import BackendUnavailable, InvalidOptions
from taskward.health import HealthReport, HealthThresholds, HealthVerdict
from taskward.jobs import validate_queue_name

__all__ = [
    "CHECK_TIMEOUT",
    "HealthSource",
    "ReportCache",
    "create_jobs_health_router",
    "probe_status",
]

logger = logging.getLogger(__name__)


class HealthSource(Protocol):
    """Anything with the manager's ``health`` coroutine (a TaskManager fits)."""

    async def health(self, thresholds: HealthThresholds | None = None) -> HealthReport:
        """Judge the store now."""
        ...


CHECK_TIMEOUT: Final = 10.0
"""Seconds one health check (or a probe's wait for another's) may take: past it the probe
answers 503 ("took longer than ..."), so one hung query never holds every probe."""


class ReportCache:
    """The last report (or the last error) of a source, kept ``max_age`` seconds.

    Concurrent requests that find it stale wait for one check instead of starting their own;
    both the check and that wait are bounded by ``timeout`` seconds, so a check that hangs
    (a store that accepts connections but never answers) answers 503 instead of holding the
    lock, and every probe behind it, forever. A check past ``timeout`` is cancelled and
    cached as an error like any other.
    """

    def __init__(
        self, source: HealthSource, max_age: float, timeout: float = CHECK_TIMEOUT
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.source = source
        self.max_age = max_age
        self.timeout = timeout
        self._value: HealthReport | Exception | None = None
        self._taken = -float("inf")
        self._lock = asyncio.Lock()

    async def get(self) -> HealthReport:
        """The cached report, refreshed if older than ``max_age``; raises the check's error."""
        try:
            async with asyncio.timeout(self.timeout):  # another request's check is running
                await self._lock.acquire()
        except TimeoutError:
            raise self._too_slow() from None
        try:
            if self._value is None or time.monotonic() - self._taken >= self.max_age:
                try:
                    async with asyncio.timeout(self.timeout):
                        self._value = await self.source.health()
                except TimeoutError:
                    self._value = self._too_slow()
                except Exception as exc:  # cached too: a down store is not asked by every probe
                    self._value = exc
                self._taken = time.monotonic()
            value = self._value
        finally:
            self._lock.release()
        if isinstance(value, Exception):
            raise value
        return value

    def _too_slow(self) -> BackendUnavailable:
        return BackendUnavailable(f"the job health check took longer than {self.timeout:g} s")


def probe_status(verdict: HealthVerdict, *, strict: bool) -> int:
    """The HTTP status of a verdict: 503 for failing (and for degraded when ``strict``)."""
    if verdict is HealthVerdict.FAILING or (strict and verdict is HealthVerdict.DEGRADED):
        return 503
    return 200


def _error_body(exc: Exception) -> dict[str, Any]:
    # BackendUnavailable says which server without its password; anything else is named only.
    text = str(exc) if isinstance(exc, BackendUnavailable) else type(exc).__name__
    return {"verdict": HealthVerdict.FAILING.value, "error": text}


def create_jobs_health_router(
    source: HealthSource,
    *,
    dependencies: Sequence[Depends] = (),
    max_age: float = 1.0,
    timeout: float = CHECK_TIMEOUT,
) -> APIRouter:
    """Build ``GET /health/jobs`` for ``source`` (see the module docstring).

    ``dependencies`` guard the route (``create_app`` passes its read access when the app asks
    for a protected probe); by default anyone may read it, as ``/health``. ``timeout``: the
    longest a check may take (see :class:`ReportCache`).
    """
    if max_age < 0:
        raise ValueError(f"max_age must be >= 0, got {max_age}")
    cache = ReportCache(source, max_age, timeout)
    router = APIRouter(tags=["health"])

    @router.get("/health/jobs", dependencies=list(dependencies))
    async def jobs_health(
        strict: bool = Query(False, description="answer 503 for degraded too"),
        queue: str | None = Query(None, description="judge this queue alone"),
    ) -> JSONResponse:
        """SLO health of the job store: 200 for ok and degraded, 503 for failing."""
        if queue is not None:
            try:
                validate_queue_name(queue)
            except InvalidOptions as exc:
                return JSONResponse({"detail": str(exc)}, status_code=400)
        try:
            report = await cache.get()
        except Exception as exc:
            logger.warning("job health check failed: %s", exc, exc_info=True)
            return JSONResponse(_error_body(exc), status_code=503)
        if queue is not None:
            report = report.only(queue)
        return JSONResponse(
            report.as_json(), status_code=probe_status(report.verdict, strict=strict)
        )

    return router
