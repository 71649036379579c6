"""Dashboard pages over ASGI: rendering, escaping, forms with CSRF, fragments, static files."""

from __future__ import annotations

import re

import httpx
import pytest

from taskward import JobState, TaskManager
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, client_for, pretend_estimated, seed

pytestmark = pytest.mark.parametrize("manager_url", ["memory://", "sqlite"], indirect=True)

XSS_ARG = '<script>alert("x")</script>'
XSS_ERROR = "<img src=x onerror=alert(1)>"


@pytest.fixture
def manager_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    return "memory://" if request.param == "memory://" else f"sqlite:///{tmp_path}/d.db"


@pytest.fixture
async def browser(tw: TaskManager, auth: AdminAuth) -> httpx.AsyncClient:
    return client_for(create_app(tw, auth=auth), authorization=BASIC)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


async def test_pages_render_with_data(tw: TaskManager, browser: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    async with browser:
        overview = await browser.get("/dashboard")
        assert overview.status_code == 200
        assert '<svg class="chart"' in overview.text
        assert '<span class="num">3</span><span>completed</span>' in overview.text
        assert '<span class="num">2</span><span>dead letters</span>' in overview.text
        assert 'hx-trigger="every 2s' in overview.text
        failed = await browser.get("/dashboard/jobs", params={"state": "failed"})
        for job_id in ids["failed"]:
            assert f'/dashboard/jobs/{job_id}"' in failed.text
        for job_id in ids["done"]:
            assert f'/dashboard/jobs/{job_id}"' not in failed.text
        detail = await browser.get(f"/dashboard/jobs/{ids['failed'][0]}")
        assert "Traceback (most recent call last)" in detail.text
        assert "report 10: disk full" in detail.text
        assert ">Retry</button>" in detail.text
        dead = await browser.get("/dashboard/dead")
        assert "Retry all matching" in dead.text
        fragment = await browser.get("/dashboard/fragments/jobs", params={"state": "failed"})
        assert fragment.text.startswith('<div id="jobs"')
        assert (await browser.get("/dashboard/schedules")).status_code == 200
        assert (await browser.get("/dashboard/jobs/424242")).status_code == 404
        assert "~" not in overview.text.split('<section class="panel" id="workers">')[0]
        assert "estimated" not in overview.text


async def test_estimated_counts_read_approximate(
    tw: TaskManager, browser: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An estimated count reads "~N", like "about N" of an estimated listing total."""
    await seed(tw)
    pretend_estimated(tw, monkeypatch, ("reports", JobState.COMPLETED))
    async with browser:
        overview = (await browser.get("/dashboard/fragments/overview")).text
    assert '<span class="num">~3</span><span>completed</span>' in overview
    assert '<span class="num">2</span><span>dead letters</span>' in overview  # exact
    assert 'state=completed" title="estimated">~3</a>' in overview
    assert 'state=failed">2</a>' in overview
    assert "~ estimated: past 10,000 finished jobs" in overview


async def test_untrusted_text_is_escaped(tw: TaskManager, browser: httpx.AsyncClient) -> None:
    @tw.task(name="xss.job", max_attempts=1)
    def hostile(payload: str) -> None:
        raise ValueError(XSS_ERROR)

    job = await hostile.enqueue(XSS_ARG)
    await tw.drain(timeout=30)
    async with browser:
        for path in (f"/dashboard/jobs/{job.id}", "/dashboard/jobs", "/dashboard/dead"):
            page = (await browser.get(path)).text
            assert "<script>alert" not in page
            assert "<img src=x" not in page
        detail = (await browser.get(f"/dashboard/jobs/{job.id}")).text
        assert "&lt;script&gt;alert(" in detail
        assert "&lt;img src=x onerror=alert(1)&gt;" in detail


async def test_forms_need_the_csrf_token(tw: TaskManager, browser: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    failed = ids["failed"][0]
    async with browser:
        page = await browser.get(f"/dashboard/jobs/{failed}")
        token = csrf_of(page.text)
        assert browser.cookies["taskward_csrf"] == token
        action = f"/dashboard/jobs/{failed}/retry"
        assert (await browser.post(action, data={})).status_code == 403
        assert (await browser.post(action, data={"csrf_token": "forged"})).status_code == 403
        done = await browser.post(action, data={"csrf_token": token})
        assert done.status_code == 303
        assert done.headers["location"].startswith(f"/dashboard/jobs/{failed}?flash=")
        assert (await tw.get_task_status(failed)).state is JobState.PENDING

        paused = await browser.post("/dashboard/queues/emails/pause", data={"csrf_token": token})
        assert paused.status_code == 303
        assert "emails" in (await tw.get_statistics())["paused"]
        overview = await browser.get("/dashboard")
        assert ">Resume</button>" in overview.text

        await tw.retry_task(failed)  # still pending: a bulk retry of dead letters takes the other
        # A bulk retry: confirmed first (the exact ids), then done; each step needs the token.
        ask = {"csrf_token": token, "action": "retry-all"}
        assert (
            await browser.post("/dashboard/dead/bulk", data={"action": "retry-all"})
        ).status_code == 403
        confirm = await browser.post("/dashboard/dead/bulk", data=ask)
        assert confirm.status_code == 200
        joined = re.search(r'name="ids" value="([0-9,]*)"', confirm.text)
        assert joined is not None
        run = {"csrf_token": token, "action": "retry", "ids": joined.group(1)}
        refused = {k: v for k, v in run.items() if k != "csrf_token"}
        assert (await browser.post("/dashboard/dead/bulk/run", data=refused)).status_code == 403
        bulk = await browser.post("/dashboard/dead/bulk/run", data=run)
        assert bulk.status_code == 303
        assert {(await tw.get_task_status(i)).state for i in ids["failed"]} == {JobState.PENDING}


async def test_read_only_dashboard_has_no_buttons(tw: TaskManager) -> None:
    ids = await seed(tw)
    async with client_for(create_app(tw)) as anonymous:
        page = await anonymous.get(f"/dashboard/jobs/{ids['failed'][0]}")
        assert page.status_code == 200
        assert "<button" not in page.text
        assert "read-only" in page.text
        # Nobody is signed in, so there is no token to give and no cookie is set.
        assert "taskward_csrf" not in anonymous.cookies
        assert 'name="csrf_token"' not in page.text
        action = f"/dashboard/jobs/{ids['failed'][0]}/retry"
        assert (await anonymous.post(action, data={"csrf_token": "x"})).status_code == 403


async def test_static_files_are_served_locally(browser: httpx.AsyncClient) -> None:
    async with browser:
        htmx = await browser.get("/dashboard/static/htmx.min.js")
        assert htmx.status_code == 200
        assert "htmx" in htmx.text[:200]
        assert (await browser.get("/dashboard/static/style.css")).status_code == 200
        assert (await browser.get("/dashboard/static/..%2Fapi.py")).status_code == 404
        page = (await browser.get("/dashboard")).text
        assert "http://" not in page.replace("http://test", "")  # nothing from elsewhere


async def test_links_follow_the_mount_prefix(tw: TaskManager, auth: AdminAuth) -> None:
    from fastapi import FastAPI

    ids = await seed(tw)
    host = FastAPI()
    host.mount("/ops/taskward", create_app(tw, auth=auth))
    async with client_for(host, authorization=BASIC) as client:
        home = await client.get("/ops/taskward/")
        assert home.headers["location"] == "/ops/taskward/dashboard"
        page = (await client.get("/ops/taskward/dashboard")).text
        assert 'src="/ops/taskward/dashboard/static/htmx.min.js"' in page
        assert 'href="/ops/taskward/dashboard/dead"' in page
        assert 'hx-get="/ops/taskward/dashboard/fragments/overview"' in page
        jobs = (await client.get("/ops/taskward/dashboard/jobs")).text
        assert f'href="/ops/taskward/dashboard/jobs/{ids["failed"][0]}"' in jobs
        api = await client.get("/ops/taskward/api/jobs", params={"state": "failed"})
        assert api.json()["total"] == 2
