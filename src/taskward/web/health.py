"""Health endpoints for in-process background work: ``GET /health`` and ``GET /health/tasks``.

This module owns the FastAPI router that reports the :mod:`taskward.aio` failure counters, the
number of in-flight background tasks and the results of optional async checks (the durable job
manager plugs a backend ping in here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Response

from taskward.aio import (
    TaskSupervisor,
    background_tasks_report,
    get_default_supervisor,
    get_task_failure_counts,
)

__all__ = ["HealthCheck", "create_health_router", "health_router"]

logger = logging.getLogger(__name__)

#: An async readiness probe: True when healthy; False, an exception or a timeout means failing.
HealthCheck = Callable[[], Awaitable[bool]]


async def _run_check(name: str, check: HealthCheck, seconds: float) -> bool:
    """Run one check under a timeout; any exception (timeouts included) counts as failing."""
    try:
        async with asyncio.timeout(seconds):
            return bool(await check())
    except Exception:
        logger.warning("health check %r failed", name, exc_info=True)
        return False


async def _run_checks(checks: Mapping[str, HealthCheck], seconds: float) -> dict[str, bool]:
    """Run every check concurrently, so one slow check does not add up with the others."""
    results = await asyncio.gather(*(_run_check(n, c, seconds) for n, c in checks.items()))
    return dict(zip(checks, results, strict=True))


def create_health_router(
    *,
    degraded_threshold: int = 100,
    checks: Mapping[str, HealthCheck] | None = None,
    check_timeout: float = 5.0,
    degraded_status_code: int = 200,
    supervisor: TaskSupervisor | None = None,
) -> APIRouter:
    """Build a router serving ``GET /health`` and ``GET /health/tasks``.

    ``GET /health/tasks`` returns ``total_failures``, ``failures_by_task`` ({name: count}),
    ``tasks_with_failures`` and ``in_flight``. ``GET /health`` returns ``status``
    ("healthy" or "degraded"), ``background_task_failures``, ``degraded_threshold``,
    ``in_flight_tasks`` and ``checks`` ({name: bool}, empty without checks). The status is
    "degraded" when the failures reach ``degraded_threshold`` or when a check returns False,
    raises or exceeds ``check_timeout`` seconds.

    Degraded answers HTTP 200 by default, on purpose: the failure counters are cumulative for
    the life of the process, so a 503 would keep an instance out of the load balancer (or in a
    restart loop) long after the cause is gone. "degraded" is for dashboards and alerts. Pass
    ``degraded_status_code=503`` to use ``/health`` as a readiness probe that also gates on
    ``checks``. ``supervisor`` defaults to the one behind :func:`taskward.aio.safe_create_task`.
    """
    if degraded_threshold < 1:
        raise ValueError(f"degraded_threshold must be >= 1, got {degraded_threshold}")
    if check_timeout <= 0:
        raise ValueError(f"check_timeout must be > 0, got {check_timeout}")
    named_checks = dict(checks or {})
    tasks = supervisor if supervisor is not None else get_default_supervisor()
    router = APIRouter(tags=["health"])

    @router.get("/health/tasks")
    async def background_tasks_health() -> dict[str, Any]:
        """Failure counts by task name and the number of in-flight background tasks."""
        return background_tasks_report(tasks)

    @router.get("/health")
    async def health(response: Response) -> dict[str, Any]:
        """Overall status: degraded when failures reach the threshold or a check fails."""
        failures = sum(get_task_failure_counts().values())
        results = await _run_checks(named_checks, check_timeout)
        degraded = failures >= degraded_threshold or not all(results.values())
        if degraded:
            response.status_code = degraded_status_code
        return {
            "status": "degraded" if degraded else "healthy",
            "background_task_failures": failures,
            "degraded_threshold": degraded_threshold,
            "in_flight_tasks": tasks.in_flight,
            "checks": results,
        }

    return router


#: The router with default settings, for ``app.include_router(health_router)``.
health_router = create_health_router()
