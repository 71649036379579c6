"""Auth on every route, CSRF on every change, JSON-only bodies with limits: by enumeration.

The routes are read from ``app.routes``, so a route added later without the access policy, or
with a body parser of its own, fails here without anyone remembering to add a test.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from security.helpers import (
    BASIC,
    BEARER,
    OPEN_ROUTES,
    TOKEN,
    Endpoint,
    client_for,
    endpoints,
    failed_job,
    failing_manager,
    make_app,
)
from taskward import JobState, Step, TaskManager
from taskward.serialize import MAX_DEPTH
from taskward.web import AdminAuth, create_app
from taskward.web.guard import MAX_BODY_BYTES


@pytest.fixture
async def tw() -> TaskManager:
    return failing_manager()


def _guarded(app_endpoints: list[Endpoint]) -> list[Endpoint]:
    return [e for e in app_endpoints if e.path not in OPEN_ROUTES]


async def test_every_route_needs_credentials(tw: TaskManager) -> None:
    app = make_app(tw)
    found = list(endpoints(app))
    guarded = _guarded(found)
    assert {e.path for e in found} >= set(OPEN_ROUTES) - {"/docs/oauth2-redirect"}
    assert len(guarded) >= 25  # the API and the dashboard; fewer means routes were lost
    # Every path in the OpenAPI schema (built by FastAPI itself) was enumerated.
    schema_paths = set(app.openapi()["paths"])
    # The schema writes a converter-typed parameter ({name:path}) without its converter.
    assert schema_paths <= {re.sub(r":\w+\}", "}", e.path) for e in found}
    async with tw, client_for(app) as anonymous:
        job_id = await failed_job(tw)
        for endpoint in guarded:
            url = endpoint.url.replace("/1", f"/{job_id}")
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic ???"}):
                answer = await anonymous.request(endpoint.method, url, headers=headers)
                assert answer.status_code == 401, (endpoint, headers, answer.text)
        # Nothing changed: the one job is still failed, no queue paused.
        assert (await tw.get_task_status(job_id)).state is JobState.FAILED
        assert (await tw.get_statistics())["paused"] == []


async def test_open_routes_hold_no_data(tw: TaskManager) -> None:
    async with tw, client_for(make_app(tw)) as anonymous:
        await tw.enqueue_task("boom", args=["private-arg-value"])
        for endpoint in endpoints(make_app(tw)):
            if endpoint.path in OPEN_ROUTES and endpoint.method == "GET":
                url = endpoint.url.replace("{name}", "style.css").replace("default", "style.css")
                answer = await anonymous.get(url)
                assert answer.status_code in (200, 307, 404), (endpoint, answer.status_code)
                assert "private-arg-value" not in answer.text
                assert "boom" not in answer.text or endpoint.path.startswith("/health")


async def test_credentials_open_every_read(tw: TaskManager) -> None:
    """The positive control: the 401s above come from the policy, not from broken routes."""
    app = make_app(tw)
    async with tw, client_for(app, authorization=BEARER) as admin:
        job_id = await failed_job(tw)
        flow = await tw.enqueue_workflow(Step("boom"))
        # The path value for {name} is "default": a schedule of that name has a history.
        await tw.schedule_recurring_task("default", "boom", cron="0 * * * *")
        for endpoint in _guarded(list(endpoints(app))):
            if not endpoint.changes:
                if "{workflow_id}" in endpoint.path:
                    url = endpoint.url.replace("/1", f"/{flow.id}")
                else:
                    url = endpoint.url.replace("/1", f"/{job_id}")
                answer = await admin.get(url)
                assert answer.status_code == 200, (endpoint, answer.text)


async def test_every_change_needs_the_csrf_token_with_basic_auth(tw: TaskManager) -> None:
    """Browsers resend basic auth on their own: every non-GET route demands the CSRF token."""
    app = make_app(tw)
    changes = [e for e in _guarded(list(endpoints(app))) if e.changes]
    assert {e.path for e in changes if e.path.startswith("/dashboard")} == {
        "/dashboard/jobs/{job_id}/{action}",
        "/dashboard/queues/{name}/{action}",
        "/dashboard/jobs/bulk",
        "/dashboard/jobs/bulk/run",
        "/dashboard/dead/bulk",
        "/dashboard/dead/bulk/run",
        "/dashboard/workflows/{workflow_id}/cancel",
        "/dashboard/replay/{job_id}",
        "/dashboard/schedules/{name:path}/{action}",
    }
    async with tw, client_for(app, authorization=BASIC) as browser:
        job_id = await failed_job(tw)
        page = await browser.get("/dashboard")
        token = browser.cookies["taskward_csrf"]
        assert f'value="{token}"' in page.text
        for endpoint in changes:
            url = endpoint.url.replace("/1/", f"/{job_id}/").replace("/jobs/1", f"/jobs/{job_id}")
            missing = await browser.request(endpoint.method, url, headers={"x-csrf-token": ""})
            forged = await browser.request(endpoint.method, url, headers={"x-csrf-token": "x"})
            form = await browser.request(endpoint.method, url, data={"csrf_token": "forged"})
            assert {missing.status_code, forged.status_code} == {403}, endpoint
            # The API takes JSON only, so a form there is refused before the CSRF check.
            assert form.status_code in (403, 415), endpoint
        assert (await tw.get_task_status(job_id)).state is JobState.FAILED
        assert (await tw.get_statistics())["paused"] == []
        # The positive control: the same request with the token goes through.
        done = await browser.post(
            f"/dashboard/jobs/{job_id}/retry", data={"csrf_token": token}, follow_redirects=False
        )
        assert done.status_code == 303
        assert (await tw.get_task_status(job_id)).state is JobState.PENDING


async def test_without_auth_or_read_only_nothing_changes(tw: TaskManager) -> None:
    for app in (
        create_app(tw),
        create_app(tw, auth=AdminAuth(token=TOKEN), read_only=True),
    ):
        async with tw, client_for(app, authorization=BEARER) as client:
            job_id = await failed_job(tw)
            for endpoint in _guarded(list(endpoints(app))):
                if endpoint.changes:
                    url = endpoint.url.replace("/1", f"/{job_id}")
                    answer = await client.request(endpoint.method, url, json={})
                    assert answer.status_code == 403, (endpoint, answer.text)
            assert (await tw.get_task_status(job_id)).state is JobState.FAILED


def _api_changes(app_endpoints: list[Endpoint]) -> list[Endpoint]:
    return [e for e in app_endpoints if e.changes and e.path.startswith("/api/")]


async def test_the_api_accepts_json_bodies_only(tw: TaskManager) -> None:
    app = make_app(tw)
    changes = _api_changes(list(endpoints(app)))
    # The queue hold (POST, DELETE), the workflow cancel, 4 schedule changes, 3 bulk actions.
    assert len(changes) == 16
    async with tw, client_for(app, authorization=BEARER) as admin:
        job_id = await failed_job(tw)
        refused = {
            "application/x-www-form-urlencoded": b"state=dead",
            "text/plain": b'{"state": "dead"}',
            "application/python-pickle": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N.",
            "multipart/form-data; boundary=x": b'--x\r\nContent-Disposition: form-data; name="q"'
            b"\r\n\r\n1\r\n--x--\r\n",
        }
        for endpoint in changes:
            url = endpoint.url.replace("/1/", f"/{job_id}/")
            for content_type, body in refused.items():
                answer = await admin.request(
                    endpoint.method, url, content=body, headers={"content-type": content_type}
                )
                assert answer.status_code == 415, (endpoint, content_type, answer.text)
                assert "application/json" in answer.json()["detail"]
        assert (await tw.get_task_status(job_id)).state is JobState.FAILED
        # The schema promises the same: every request body is application/json.
        schema = (await admin.get("/openapi.json")).json()
        bodies = [
            op["requestBody"]["content"]
            for path in schema["paths"].values()
            for op in path.values()
            if "requestBody" in op
        ]
        assert bodies
        assert all(set(content) == {"application/json"} for content in bodies)
        # And JSON goes through.
        ok = await admin.post("/api/jobs/bulk/retry", json={"state": "dead"})
        assert ok.json() == {"matched": 1, "changed": [job_id]}


async def test_request_body_size_and_depth_limits(tw: TaskManager) -> None:
    app = make_app(tw)
    async with tw, client_for(app, authorization=BEARER) as admin:
        job_id = await failed_job(tw)
        for endpoint in [e for e in endpoints(app) if e.changes and e.path not in OPEN_ROUTES]:
            url = endpoint.url.replace("/1/", f"/{job_id}/")
            big = json.dumps({"q": "x" * MAX_BODY_BYTES}).encode()
            answer = await admin.request(
                endpoint.method, url, content=big, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 413, endpoint
            assert f"limit of {MAX_BODY_BYTES} bytes" in answer.json()["detail"]

            # Chunked, with no Content-Length: refused while reading, not after.
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(MAX_BODY_BYTES // 8192 + 2):
                    yield b"x" * 8192

            streamed = await admin.request(endpoint.method, url, content=chunks())
            assert streamed.status_code == 413, endpoint
        for depth, status in ((MAX_DEPTH, 200), (MAX_DEPTH + 1, 400), (20_000, 400)):
            body = '{"q": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
            answer = await admin.post(
                "/api/jobs/bulk/retry", content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code in (status, 422 if status == 200 else status), answer.text
            if status == 400:
                assert "not valid JSON" in answer.text or "levels" in answer.text
        assert (await tw.get_task_status(job_id)).state is JobState.FAILED


def test_the_enumeration_sees_a_route_added_without_the_policy() -> None:
    """The check itself can fail: an unguarded route added to the app is found."""
    tw = TaskManager("memory://")
    app = make_app(tw)

    @app.get("/api/leak")
    async def leak() -> dict[str, str]:
        return {"leak": "yes"}

    unguarded = [e.path for e in endpoints(app) if e.path not in OPEN_ROUTES]
    assert "/api/leak" in unguarded


async def test_added_unguarded_route_answers_without_credentials(tw: TaskManager) -> None:
    app = make_app(tw)

    @app.get("/api/leak")
    async def leak() -> dict[str, str]:
        return {"leak": "yes"}

    async with tw, client_for(app) as anonymous:
        statuses = {
            e.path: (await anonymous.get(e.url)).status_code
            for e in endpoints(app)
            if e.path not in OPEN_ROUTES and e.method == "GET"
        }
    assert statuses["/api/leak"] == 200  # what test_every_route_needs_credentials would catch
    assert {s for p, s in statuses.items() if p != "/api/leak"} == {401}
