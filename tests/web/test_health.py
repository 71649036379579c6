"""The /health and /health/tasks endpoints, served by a real FastAPI app over ASGI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import ModuleType

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from taskward.aio import (
    TaskSupervisor,
    cancel_background_tasks,
    reset_task_failure_counts,
    safe_create_task,
)
from taskward.web import create_health_router, health_router
from taskward.web.health import HealthCheck
from tests_support.examples import loaded_example


@pytest.fixture(autouse=True)
def _reset_counters() -> Iterator[None]:
    reset_task_failure_counts()
    yield
    reset_task_failure_counts()


def make_client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def make_client(router: APIRouter = health_router) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(router)
    return make_client_for(app)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c
    await cancel_background_tasks()


async def fail(times: int, name: str = "emails.send") -> None:
    async def broken() -> None:
        raise RuntimeError("smtp down")

    await asyncio.gather(*(safe_create_task(broken(), name=name) for _ in range(times)))


async def test_healthy_at_zero(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    tasks = await client.get("/health/tasks")

    assert health.status_code == 200
    assert health.json() == {
        "status": "healthy",
        "background_task_failures": 0,
        "degraded_threshold": 100,
        "in_flight_tasks": 0,
        "checks": {},
    }
    assert tasks.json() == {
        "total_failures": 0,
        "failures_by_task": {},
        "tasks_with_failures": 0,
        "in_flight": 0,
    }


async def test_counts_after_failures(client: httpx.AsyncClient) -> None:
    await fail(3, "emails.send")
    await fail(1, "reports.build")

    tasks = (await client.get("/health/tasks")).json()
    health = (await client.get("/health")).json()

    assert tasks == {
        "total_failures": 4,
        "failures_by_task": {"emails.send": 3, "reports.build": 1},
        "tasks_with_failures": 2,
        "in_flight": 0,
    }
    assert health["status"] == "healthy"
    assert health["background_task_failures"] == 4


async def test_in_flight_tasks_are_reported(client: httpx.AsyncClient) -> None:
    release = asyncio.Event()
    task = safe_create_task(release.wait(), name="waiting")

    assert (await client.get("/health/tasks")).json()["in_flight"] == 1
    assert (await client.get("/health")).json()["in_flight_tasks"] == 1

    release.set()
    await task
    assert (await client.get("/health/tasks")).json()["in_flight"] == 0


async def test_degraded_at_the_threshold() -> None:
    async with make_client(create_health_router(degraded_threshold=3)) as client:
        await fail(2)
        assert (await client.get("/health")).json()["status"] == "healthy"

        await fail(1)
        response = await client.get("/health")

    assert response.status_code == 200  # degraded is a signal for dashboards, not a 503
    assert response.json()["status"] == "degraded"
    assert response.json()["background_task_failures"] == 3
    assert response.json()["degraded_threshold"] == 3


async def test_degraded_status_code_is_configurable() -> None:
    router = create_health_router(degraded_threshold=1, degraded_status_code=503)
    async with make_client(router) as client:
        assert (await client.get("/health")).status_code == 200
        await fail(1)
        assert (await client.get("/health")).status_code == 503


async def test_failing_or_raising_check_makes_it_degraded() -> None:
    async def ok() -> bool:
        return True

    async def down() -> bool:
        return False

    async def broken() -> bool:
        raise ConnectionError("backend unreachable")

    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    checks: dict[str, HealthCheck] = {"ok": ok}
    async with make_client(create_health_router(checks=checks)) as client:
        healthy = (await client.get("/health")).json()
    assert healthy["status"] == "healthy"
    assert healthy["checks"] == {"ok": True}

    for failing in (down, broken, hangs):
        router = create_health_router(checks={"ok": ok, "backend": failing}, check_timeout=0.05)
        async with make_client(router) as client:
            body = (await client.get("/health")).json()
        assert body["status"] == "degraded", failing.__name__
        assert body["checks"] == {"ok": True, "backend": False}
        assert body["background_task_failures"] == 0


async def test_router_can_watch_its_own_supervisor() -> None:
    sup = TaskSupervisor()
    release = asyncio.Event()
    sup.create_task(release.wait())
    async with make_client(create_health_router(supervisor=sup)) as client:
        assert (await client.get("/health/tasks")).json()["in_flight"] == 1
    release.set()
    assert await sup.drain(timeout=5) is True


@pytest.mark.parametrize(
    "kwargs", [{"degraded_threshold": 0}, {"check_timeout": 0}], ids=["threshold", "timeout"]
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        create_health_router(**kwargs)  # type: ignore[arg-type]


# --- the example app ---------------------------------------------------------------------------


@pytest.fixture
def example_app() -> Iterator[ModuleType]:
    with loaded_example("fastapi_app.py") as module:
        yield module


async def test_example_app_serves_health_and_drains_at_shutdown(example_app: ModuleType) -> None:
    # starlette's TestClient is avoided: with plain httpx it emits a deprecation warning.
    app: FastAPI = example_app.app
    async with app.router.lifespan_context(app), make_client_for(app) as client:
        assert (await client.get("/health")).json()["status"] == "healthy"
        assert (await client.post("/signup/after/2")).status_code == 202
        assert (await client.post("/signup/decorated/3")).status_code == 202
    # Leaving the lifespan ran its shutdown, which drained both background tasks.
    assert sorted(example_app.sent_emails) == [2, 3]
