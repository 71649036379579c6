"""What the security tests share: credentials, the app, and the routes it serves."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from taskward import JobState, TaskManager
from taskward.web import AdminAuth, create_app

USER, PASSWORD, TOKEN = "admin", "correct horse", "s3cret-token"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BEARER = f"Bearer {TOKEN}"

OPEN_ROUTES = {
    "/health": "liveness probe, documented as open",
    "/health/tasks": "liveness probe, documented as open",
    "/health/jobs": "readiness probe: figures and verdicts, no job arguments or errors "
    "(documented as open; create_app(public_health=False) closes it)",
    "/dashboard/static/{name}": "htmx and the stylesheet: no data",
    "/": "a redirect to the dashboard: no data",
    "/openapi.json": "the API's schema (the same for every install): no data",
}
"""Routes that answer without credentials, each with the reason. Any other route must not."""

PATH_VALUES = {"job_id": "1", "workflow_id": "1", "name": "default", "action": "retry"}


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, with a concrete URL."""

    method: str
    path: str
    url: str

    @property
    def changes(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")


def make_app(tw: TaskManager, **auth: Any) -> FastAPI:
    return create_app(tw, auth=AdminAuth(token=TOKEN, username=USER, password=PASSWORD, **auth))


def routes(items: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute | Route]]:
    """Every route with its full path, descending into included routers.

    FastAPI ≥ 0.130 keeps an included router as one entry (``original_router`` plus an
    include context with its prefix) instead of copying its routes into the app.
    """
    for route in items:
        included = getattr(route, "original_router", None)
        if included is not None:
            extra = getattr(getattr(route, "include_context", None), "prefix", "")
            yield from routes(included.routes, prefix + extra)
        elif isinstance(route, APIRoute | Route):
            yield prefix + route.path, route
        else:
            raise AssertionError(f"unexpected route type {type(route).__name__}: check it by hand")


def endpoints(app: FastAPI) -> Iterator[Endpoint]:
    """Every method of every route the app serves, path parameters filled in."""
    for path, route in routes(app.routes):
        url = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES[m.group(1)], path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                yield Endpoint(method, path, url)


def client_for(app: Any, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    )


def _boom(*_: object) -> None:  # any arguments: a test stores a private one with it
    raise RuntimeError("boom")


def failing_manager() -> TaskManager:
    """A memory manager with one task, "boom", that fails at its one attempt."""
    manager = TaskManager("memory://")
    manager.task(name="boom", max_attempts=1)(_boom)
    return manager


async def failed_job(tw: TaskManager) -> int:
    """Enqueue "boom" on ``tw`` (from :func:`failing_manager`), run it; its id, now failed."""
    job = await tw.enqueue_task("boom")
    await tw.drain(timeout=10)
    assert (await tw.get_task_status(job.id)).state is JobState.FAILED
    return job.id
