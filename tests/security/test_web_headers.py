"""Security headers on every admin answer, the dashboard without inline code, docs opt-in.

The Content-Security-Policy only protects if nothing the dashboard needs is inline: the
templates are checked for inline scripts, inline handlers and inline styles, and the browser
suite (tests/browser/test_dashboard_csp.py) checks that real Chromium reports no violation.
"""

from __future__ import annotations

import re
from importlib import resources

import httpx
import pytest
from fastapi import FastAPI

from security.helpers import (
    BASIC,
    BEARER,
    PASSWORD,
    TOKEN,
    USER,
    client_for,
    failing_manager,
    make_app,
)
from taskward import TaskManager
from taskward.web import Admin, AdminAuth, create_admin_router, create_app, create_dashboard_router

EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@pytest.fixture
async def tw() -> TaskManager:
    return failing_manager()


def _policy(answer: httpx.Response) -> dict[str, list[str]]:
    """The Content-Security-Policy as {directive: sources}."""
    header = answer.headers.get("content-security-policy", "")
    directives = (part.split() for part in header.split(";") if part.strip())
    return {words[0]: words[1:] for words in directives}


def assert_secure(answer: httpx.Response, where: str) -> None:
    for name, value in EXPECTED.items():
        assert answer.headers.get(name) == value, (where, answer.status_code, name)
    policy = _policy(answer)
    assert policy.get("frame-ancestors") == ["'none'"], where
    assert policy.get("default-src") == ["'none'"], where
    assert policy.get("script-src") == ["'self'"], where  # no inline, no eval, no CDN
    assert policy.get("style-src") == ["'self'"], where


async def _answers(client: httpx.AsyncClient, job_id: int) -> dict[str, httpx.Response]:
    return {
        "dashboard": await client.get("/dashboard"),
        "jobs page": await client.get("/dashboard/jobs"),
        "job page": await client.get(f"/dashboard/jobs/{job_id}"),
        "fragment": await client.get("/dashboard/fragments/overview"),
        "static js": await client.get("/dashboard/static/htmx.min.js"),
        "static css": await client.get("/dashboard/static/style.css"),
        "api": await client.get("/api/jobs"),
        "anonymous 401": await client.get("/api/jobs", headers={"authorization": ""}),
        "csrf 403": await client.post(f"/api/jobs/{job_id}/retry"),
        "job 404": await client.get("/api/jobs/987654"),
        "page 404": await client.get("/dashboard/jobs/987654"),
        "static 404": await client.get("/dashboard/static/nope.js"),
        "422": await client.get("/api/jobs", params={"page": "0"}),
    }


async def test_every_answer_of_the_app_carries_the_headers(tw: TaskManager) -> None:
    async with tw, client_for(make_app(tw), authorization=BASIC) as client:
        job = await tw.enqueue_task("boom")
        answers = await _answers(client, job.id)
        answers |= {
            "health": await client.get("/health"),
            "metrics": await client.get("/metrics"),
            "unknown path 404": await client.get("/nothing-here"),
            "redirect": await client.get("/"),
            "405": await client.put("/api/jobs"),
        }
    statuses = {where: answer.status_code for where, answer in answers.items()}
    assert statuses["anonymous 401"] == 401
    assert statuses["csrf 403"] == 403
    assert statuses["unknown path 404"] == statuses["job 404"] == 404
    assert statuses["422"] == 422
    for where, answer in answers.items():
        assert_secure(answer, where)


async def test_the_routers_carry_the_headers_in_a_host_app(tw: TaskManager) -> None:
    """Mounted into an application without the middleware, errors included."""
    auth = AdminAuth(token=TOKEN, username=USER, password=PASSWORD)
    admin = Admin(tw, auth=auth)
    host = FastAPI()
    host.include_router(create_admin_router(admin))
    host.include_router(create_dashboard_router(admin))
    async with tw, client_for(host, authorization=BASIC) as client:
        job = await tw.enqueue_task("boom")
        answers = await _answers(client, job.id)
    assert answers["anonymous 401"].status_code == 401
    assert answers["anonymous 401"].headers["www-authenticate"] == 'Basic realm="taskward"'
    for where, answer in answers.items():
        assert_secure(answer, where)


def _templates() -> dict[str, str]:
    folder = resources.files("taskward.web").joinpath("templates")
    return {t.name: t.read_text() for t in folder.iterdir() if t.name.endswith(".html")}


def test_templates_hold_no_inline_script_handler_or_style() -> None:
    templates = _templates()
    assert "base.html" in templates
    for name, text in templates.items():
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, (name, tag)  # only packaged files, never inline code
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", text), name
        assert not re.search(r"\son[a-z]+\s*=", text), name  # onclick=, onload=…
        assert not re.search(r"\sstyle\s*=", text), name
        assert "<style" not in text, name
        assert "hx-on" not in text, name  # htmx inline handlers need eval
        assert "javascript:" not in text, name
        # htmx compiles trigger filters ([…]) with Function(): refused by the policy.
        for trigger in re.findall(r'hx-trigger="([^"]*)"', text):
            assert "[" not in trigger, (name, trigger)


async def test_htmx_is_told_not_to_eval_or_inject_styles(tw: TaskManager) -> None:
    async with tw, client_for(make_app(tw), authorization=BASIC) as client:
        page = (await client.get("/dashboard")).text
        script = await client.get("/dashboard/static/dashboard.js")
    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    assert config is not None
    assert '"allowEval": false' in config.group(1)
    assert '"includeIndicatorStyles": false' in config.group(1)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'src="/dashboard/static/dashboard.js"' in page


async def test_api_docs_are_off_by_default(tw: TaskManager) -> None:
    async with tw, client_for(make_app(tw), authorization=BEARER) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404
        assert (await client.get("/docs/oauth2-redirect")).status_code == 404
        # The schema stays, as documented in create_app: no data, the same for every install.
        schema = await client.get("/openapi.json", headers={"authorization": ""})
        assert schema.status_code == 200
        assert "/api/jobs" in schema.json()["paths"]
        assert_secure(schema, "openapi.json")


async def test_api_docs_can_be_turned_on(tw: TaskManager) -> None:
    """Opt-in: only the docs pages get the policy that lets their CDN scripts run."""
    app = create_app(tw, auth=AdminAuth(token=TOKEN), api_docs=True)
    async with tw, client_for(app, authorization=BEARER) as client:
        docs = await client.get("/docs")
        redoc = await client.get("/redoc")
        dashboard = await client.get("/dashboard")
    for page in (docs, redoc):
        assert page.status_code == 200
        assert "cdn.jsdelivr.net" in page.text
        assert "https://cdn.jsdelivr.net" in _policy(page)["script-src"]
        assert _policy(page)["frame-ancestors"] == ["'none'"]
        assert page.headers["x-frame-options"] == "DENY"
    assert_secure(dashboard, "dashboard with docs on")
