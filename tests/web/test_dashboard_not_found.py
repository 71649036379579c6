"""Dashboard addresses for things that do not exist answer an HTML 404 page; the API keeps JSON."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from taskward import TaskManager
from taskward.web import AdminAuth, create_app
from taskward.web.api import Admin
from taskward.web.dashboard import create_dashboard_router
from taskward.web.headers import CONTENT_SECURITY_POLICY
from web.helpers import BASIC, BEARER, client_for, seed

pytestmark = pytest.mark.parametrize("manager_url", ["memory://", "sqlite"], indirect=True)


@pytest.fixture
def manager_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    return "memory://" if request.param == "memory://" else f"sqlite:///{tmp_path}/d.db"


def assert_page(answer: httpx.Response, text: str, back: str) -> None:
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page = answer.text
    assert page.startswith("<!doctype html>")
    assert "<h1>Not found</h1>" in page
    assert text in page
    assert f'<a class="btn" href="{back}">Back to' in page
    assert '<link rel="stylesheet" href="/dashboard/static/style.css">' in page


async def test_unknown_things_answer_the_page(tw: TaskManager, auth: AdminAuth) -> None:
    await seed(tw)
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        job = await browser.get("/dashboard/jobs/424242")
        assert_page(
            job, "job 424242 not found (it never existed or was cleaned up)", "/dashboard/jobs"
        )
        assert_page(
            await browser.get("/dashboard/workflows/777"),
            "no workflow with id 777",
            "/dashboard/jobs",
        )
        # The polled fragment of a job gone since: swapped in (200), and it polls no more.
        fragment = await browser.get("/dashboard/fragments/jobs/424242")
        assert fragment.status_code == 200
        assert "job 424242 no longer exists" in fragment.text
        assert "hx-get" not in fragment.text
        for bad_id in ("abc", "0", "99999999999999999999999"):
            assert_page(
                await browser.get(f"/dashboard/jobs/{bad_id}"),
                "nothing has that id",
                "/dashboard/jobs",
            )
        assert_page(
            await browser.get("/dashboard/static/nope.js"), "no dashboard page", "/dashboard"
        )
        # An address no route serves, below the dashboard: the page too.
        for path in ("/dashboard/nope", "/dashboard/jobs/1/history/more"):
            assert_page(await browser.get(path), "no dashboard page at this address", "/dashboard")
        # A form posted for a job deleted since: back to the list, saying so (not JSON).
        page = await browser.get("/dashboard")
        token = browser.cookies["taskward_csrf"]
        posted = await browser.post("/dashboard/jobs/424242/retry", data={"csrf_token": token})
        assert posted.status_code == 303
        location = posted.headers["location"]
        assert location.startswith("/dashboard/jobs?flash=job+424242+no+longer+exists&")
        assert page.status_code == 200


async def test_the_api_and_other_addresses_keep_json(tw: TaskManager, auth: AdminAuth) -> None:
    async with client_for(create_app(tw, auth=auth), authorization=BEARER) as api:
        for path in ("/api/jobs/424242", "/api/workflows/777", "/nothing-here", "/dashboardx"):
            answer = await api.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "application/json", path
            assert "detail" in answer.json()
        assert (await api.get("/api/jobs/abc")).status_code == 422  # the API's own rule


async def test_the_page_needs_the_same_credentials(tw: TaskManager, auth: AdminAuth) -> None:
    """The lookup runs after the access check: a stranger learns nothing from a 404."""
    async with client_for(create_app(tw, auth=auth)) as anonymous:
        assert (await anonymous.get("/dashboard/jobs/424242")).status_code == 401


async def test_the_page_follows_the_mount_prefix(tw: TaskManager, auth: AdminAuth) -> None:
    host = FastAPI()
    host.mount("/ops/taskward", create_app(tw, auth=auth))
    async with client_for(host, authorization=BASIC) as browser:
        for path in ("/ops/taskward/dashboard/jobs/424242", "/ops/taskward/dashboard/nope"):
            answer = await browser.get(path)
            assert answer.status_code == 404
            assert 'href="/ops/taskward/dashboard/static/style.css"' in answer.text


async def test_routers_in_a_host_app_answer_their_own_404_page(
    tw: TaskManager, auth: AdminAuth
) -> None:
    host = FastAPI()
    host.include_router(create_dashboard_router(Admin(tw, auth=auth)))
    async with client_for(host, authorization=BASIC) as browser:
        answer = await browser.get("/dashboard/jobs/424242")
        assert answer.status_code == 404
        assert "job 424242 not found" in answer.text
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
