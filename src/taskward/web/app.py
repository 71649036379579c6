"""The whole admin web app in one call: health, metrics, JSON API and dashboard.

``taskward dashboard --app module:manager`` serves :func:`create_app`; applications that
already have a FastAPI app include the routers instead (:func:`create_admin_router`,
:func:`create_dashboard_router`, :func:`create_metrics_router`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from taskward.aio import get_task_failure_counts
from taskward.manager import TaskManager
from taskward.observe.metrics import (
    EXPOSITION_CONTENT_TYPE,
    exposition,
    install_metrics,
    new_registry,
    register_background_failures,
)
from taskward.web.api import Admin, create_admin_router
from taskward.web.auth import AdminAuth
from taskward.web.dashboard import create_dashboard_router
from taskward.web.headers import DOCS_CONTENT_SECURITY_POLICY, SecurityHeadersMiddleware
from taskward.web.health import create_health_router
from taskward.web.job_health import create_jobs_health_router
from taskward.web.pages import create_not_found_handler

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = ["create_app", "create_metrics_router"]


def create_metrics_router(
    manager: TaskManager | Admin, registry: CollectorRegistry | None = None
) -> APIRouter:
    """Build ``GET /metrics``: job metrics, queue gauges and in-process task failures.

    ``registry`` defaults to a new one owned by this router (so several apps in one process,
    as in tests, never clash). Reads follow the admin access policy when given an Admin.
    """
    admin = manager if isinstance(manager, Admin) else Admin(manager)
    target = registry if registry is not None else new_registry()
    metrics = install_metrics(admin.manager, target)
    register_background_failures(get_task_failure_counts, target)
    router = APIRouter(tags=["metrics"])

    @router.get(
        "/metrics",
        dependencies=[Depends(admin.access.read)],
        response_class=Response,
        responses={200: {"content": {EXPOSITION_CONTENT_TYPE: {}}}},
    )
    async def scrape() -> Response:
        """Prometheus text exposition (queue gauges refreshed at most once a second)."""
        await metrics.refresh()
        body, content_type = exposition(target)
        return Response(body, media_type=content_type)

    return router


def create_app(
    manager: TaskManager,
    *,
    auth: AdminAuth | None = None,
    read_only: bool = False,
    registry: CollectorRegistry | None = None,
    title: str = "taskward",
    api_docs: bool = False,
    public_health: bool = True,
) -> FastAPI:
    """A FastAPI app serving /health, /health/tasks, /health/jobs, /metrics, /api/… and /dashboard.

    ``/health/jobs`` (:mod:`taskward.web.job_health`) is the store's SLO health for load
    balancers and Kubernetes probes, judged against the manager's ``health_thresholds``. Like
    ``/health`` it is readable without credentials (it holds counts, ages, job ids and names,
    never a job's arguments); ``public_health=False`` puts it behind the read access of
    ``auth`` instead.

    The app opens ``manager`` on startup and closes it on shutdown. Every response carries
    the security headers of :mod:`taskward.web.headers` (a strict Content-Security-Policy,
    no framing, ``nosniff``, ``Referrer-Policy: same-origin``), 401, 403 and 404 included.

    ``/openapi.json`` stays served to anyone, like ``/health``: it is the same schema for
    every install (routes and models, no job data, no configuration), and API clients use it.
    The interactive pages ``/docs`` (Swagger UI) and ``/redoc`` are off unless
    ``api_docs=True``: FastAPI's pages load their scripts from a CDN (cdn.jsdelivr.net) and
    start them with an inline script, which would run third-party code on the admin origin,
    where the CSRF token and the basic-auth session live. With ``api_docs=True`` only those
    two pages get a policy that allows that CDN and inline scripts; everything else keeps
    the strict one.
    """
    admin = Admin(manager, auth=auth, read_only=read_only)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await manager.open()
        try:
            yield
        finally:
            await manager.close()

    async def backend_ok() -> bool:
        await manager.get_statistics()
        return True

    docs_pages = ["/docs", "/docs/oauth2-redirect", "/redoc"] if api_docs else []
    app = FastAPI(
        title=f"{title} admin",
        lifespan=lifespan,
        docs_url="/docs" if api_docs else None,
        redoc_url="/redoc" if api_docs else None,
    )
    app.add_middleware(
        SecurityHeadersMiddleware,
        policies=dict.fromkeys(docs_pages, DOCS_CONTENT_SECURITY_POLICY),
    )
    app.include_router(create_health_router(checks={"backend": backend_ok}))
    guard = [] if public_health else [Depends(admin.access.read)]
    app.include_router(create_jobs_health_router(manager, dependencies=guard))
    app.include_router(create_metrics_router(admin, registry))
    app.include_router(create_admin_router(admin))
    app.include_router(create_dashboard_router(admin))
    # An address below /dashboard that no route serves answers the dashboard's 404 page.
    app.add_exception_handler(404, create_not_found_handler(admin))

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(request.url_for("dashboard").path, status_code=307)

    return app
