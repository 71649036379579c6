"""The JSON admin API on every backend: listings, detail, changes, queues, stats, security."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from taskward import JobState, TaskManager
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, client_for, pretend_estimated, seed


async def test_list_filters_and_pages(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    everything = (await api.get("/api/jobs")).json()
    assert everything["total"] == 6
    every_id = [i for kind in ids.values() for i in kind]
    assert [j["id"] for j in everything["items"]] == sorted(every_id, reverse=True)

    failed = (await api.get("/api/jobs", params={"state": "failed"})).json()
    assert sorted(j["id"] for j in failed["items"]) == ids["failed"]
    assert failed["items"][0]["last_error"].startswith("RuntimeError: report 11")

    dead = (await api.get("/api/jobs", params={"state": "dead", "queue": "reports"})).json()
    assert dead["total"] == 2
    emails = (await api.get("/api/jobs", params={"task": "emails.send"})).json()
    assert [j["id"] for j in emails["items"]] == ids["pending"]

    page2 = (await api.get("/api/jobs", params={"per_page": 4, "page": 2})).json()
    assert (page2["total"], page2["pages"], len(page2["items"])) == (6, 2, 2)


async def test_text_search_in_args_and_errors(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    by_arg = (await api.get("/api/jobs", params={"q": "ada@example"})).json()
    assert [j["id"] for j in by_arg["items"]] == ids["pending"]
    assert by_arg["search_scanned"] == 6
    by_error = (await api.get("/api/jobs", params={"q": "DISK FULL"})).json()
    assert sorted(j["id"] for j in by_error["items"]) == ids["failed"]
    none = (await api.get("/api/jobs", params={"q": "no such text", "state": "completed"})).json()
    assert none["total"] == 0


async def test_job_detail_has_traceback_history_and_timings(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    ids = await seed(tw)
    detail = (await api.get(f"/api/jobs/{ids['failed'][0]}")).json()
    assert detail["state"] == "failed"
    assert detail["args"] == [10]
    assert detail["kwargs"] == {"fail": True}
    (error,) = detail["errors"]
    assert error["kind"] == "RuntimeError"
    assert "Traceback (most recent call last)" in error["traceback"]
    assert 'raise RuntimeError(f"report {n}: disk full")' in error["traceback"]
    kinds = [h["kind"] for h in detail["history"]]
    assert kinds[0] == "enqueued"
    assert "failed_attempt" in kinds
    assert kinds[-1] == "failed"
    assert detail["timings"]["run_seconds"] >= 0
    assert detail["timings"]["wait_seconds"] >= 0
    missing = await api.get("/api/jobs/999999")
    assert missing.status_code == 404


async def test_retry_cancel_delete(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    retried = await api.post(f"/api/jobs/{ids['failed'][0]}/retry")
    assert retried.status_code == 200
    assert retried.json()["state"] == "pending"
    cancelled = await api.post(f"/api/jobs/{ids['pending'][0]}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    deleted = await api.delete(f"/api/jobs/{ids['done'][0]}")
    assert deleted.json() == {"deleted": True}
    assert (await api.get(f"/api/jobs/{ids['done'][0]}")).status_code == 404
    assert (await api.delete(f"/api/jobs/{ids['done'][0]}")).status_code == 404
    now = tw.clock.now()
    (running,) = await tw.backend.fetch(
        queue="reports", limit=1, worker_id="w", now=now, lease_until=now + timedelta(seconds=60)
    )
    refused = await api.delete(f"/api/jobs/{running.id}")
    assert refused.status_code == 409
    assert "cancel it first" in refused.json()["detail"]
    assert (await tw.get_task_status(running.id)).state is JobState.RUNNING
    events = (await api.get("/api/events", params={"limit": 5})).json()
    assert [e["name"] for e in events[:2]] == ["job.cancelled", "job.retried"]


async def test_bulk_retry_and_cancel_by_filter(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    only_11 = await api.post("/api/jobs/bulk/retry", json={"q": "report 11"})
    assert only_11.json() == {"matched": 1, "changed": [ids["failed"][1]]}
    rest = await api.post("/api/jobs/bulk/retry", json={"queue": "reports"})
    assert rest.json() == {"matched": 1, "changed": [ids["failed"][0]]}
    cancelled = await api.post("/api/jobs/bulk/cancel", json={"state": "pending"})
    assert sorted(cancelled.json()["changed"]) == sorted(ids["failed"] + ids["pending"])
    states = {(await tw.get_task_status(i)).state for i in ids["failed"] + ids["pending"]}
    assert states == {JobState.CANCELLED}


async def test_queues_pause_resume(tw: TaskManager, api: httpx.AsyncClient) -> None:
    await seed(tw)
    queues = {q["name"]: q for q in (await api.get("/api/queues")).json()}
    assert set(queues) == {"reports", "emails"}
    assert queues["reports"]["counts"]["completed"] == 3
    assert queues["emails"]["counts"]["pending"] == 1
    assert queues["reports"]["estimated"] == []  # few jobs: every count is exact
    paused = await api.post("/api/queues/emails/pause")
    assert paused.json()["paused"] is True
    assert "emails" in (await tw.get_statistics())["paused"]
    resumed = await api.post("/api/queues/emails/resume")
    assert resumed.json()["paused"] is False
    bad = await api.post("/api/queues/not a queue!/pause")
    assert bad.status_code == 400


async def test_schedules_and_stats(tw: TaskManager, api: httpx.AsyncClient) -> None:
    await seed(tw)
    await tw.schedule_recurring_task("nightly", "emails.send", args=["ops@x"], cron="0 3 * * *")
    (schedule,) = (await api.get("/api/schedules")).json()
    assert schedule["name"] == "nightly"
    assert schedule["next_run_at"].endswith(("03:00:00Z", "03:00:00+00:00"))
    stats = (await api.get("/api/stats")).json()
    timeline = stats["timeline"]
    assert len(timeline["minutes"]) == len(timeline["completed"]) == 60
    assert sum(timeline["completed"]) == 3
    assert sum(timeline["failed"]) == 2
    assert timeline["completed"][-1] + timeline["completed"][-2] == 3  # this minute (or last)


async def test_estimated_counts_are_named(
    tw: TaskManager, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(tw)
    pretend_estimated(tw, monkeypatch, ("reports", JobState.COMPLETED))
    queues = {q["name"]: q for q in (await api.get("/api/stats")).json()["queues"]}
    assert queues["reports"]["estimated"] == ["completed"]
    assert queues["reports"]["counts"]["completed"] == 3
    assert queues["emails"]["estimated"] == []
    (reports,) = [q for q in (await api.get("/api/queues")).json() if q["name"] == "reports"]
    assert reports["estimated"] == ["completed"]
    assert (await tw.get_statistics())["estimated"] == {"reports": ["completed"]}


async def test_bad_input_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/jobs", params={"state": "exploded"})
    assert response.status_code == 400
    assert "unknown state" in response.json()["detail"]
    assert (await api.get("/api/jobs", params={"sort_by": "args"})).status_code == 400


async def test_openapi_names_the_response_models(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    paths = schema["paths"]

    def model(path: str, method: str = "get") -> str:
        content = paths[path][method]["responses"]["200"]["content"]["application/json"]
        return str(content["schema"])

    assert "JobListOut" in model("/api/jobs")
    assert "JobDetailOut" in model("/api/jobs/{job_id}")
    assert "BulkOut" in model("/api/jobs/bulk/retry", "post")
    assert "QueueOut" in model("/api/queues")
    assert "StatsOut" in model("/api/stats")
    detail = schema["components"]["schemas"]["JobDetailOut"]["properties"]
    assert {"errors", "history", "timings", "args"} <= set(detail)
    assert not any(p.startswith("/dashboard") for p in paths)


# -- security -----------------------------------------------------------------------------------
@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_reads_and_changes_need_credentials(tw: TaskManager, auth: AdminAuth) -> None:
    ids = await seed(tw)
    retry = f"/api/jobs/{ids['failed'][0]}/retry"
    async with client_for(create_app(tw, auth=auth)) as anonymous:
        assert (await anonymous.get("/api/jobs")).status_code == 401
        response = await anonymous.post(retry)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="taskward"'
    async with client_for(create_app(tw, auth=auth), authorization="Bearer wrong") as wrong:
        assert (await wrong.post(retry)).status_code == 401
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as basic:
        assert (await basic.get("/api/jobs")).status_code == 200
        # Basic auth is resent by browsers on their own: a change also needs the CSRF token.
        refused = await basic.post(retry)
        assert (refused.status_code, refused.json()["detail"]) == (
            403,
            "missing or wrong CSRF token",
        )
        # A cookie the client chose, sent back as the header too, is no token (double submit
        # alone would accept it): the token is the one the server computed for these
        # credentials, which a dashboard page carries (and sets as the cookie).
        basic.cookies.set("taskward_csrf", "t0ken")
        assert (await basic.post(retry, headers={"X-CSRF-Token": "t0ken"})).status_code == 403
        basic.cookies.clear()
        page = (await basic.get("/dashboard")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        assert (await basic.post(retry, headers={"X-CSRF-Token": "other"})).status_code == 403
        ok = await basic.post(retry, headers={"X-CSRF-Token": token.group(1)})
        assert ok.status_code == 200
    assert (await tw.get_task_status(ids["failed"][0])).state is JobState.PENDING


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_without_auth_or_read_only_nothing_changes(tw: TaskManager, auth: AdminAuth) -> None:
    ids = await seed(tw)
    retry = f"/api/jobs/{ids['failed'][0]}/retry"
    async with client_for(create_app(tw)) as open_app:
        assert (await open_app.get("/api/jobs")).status_code == 200  # reads are public
        refused = await open_app.post(retry)
        assert refused.status_code == 403
        assert "configure AdminAuth" in refused.json()["detail"]
        assert (await open_app.delete(f"/api/jobs/{ids['done'][0]}")).status_code == 403
    app = create_app(tw, auth=auth, read_only=True)
    async with client_for(app, authorization="Bearer s3cret-token") as read_only:
        assert (await read_only.post(retry)).status_code == 403
        assert (await read_only.post("/api/queues/reports/pause")).status_code == 403
    assert (await tw.get_task_status(ids["failed"][0])).state is JobState.FAILED
    assert (await tw.get_statistics())["paused"] == []


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_public_reads_option(tw: TaskManager) -> None:
    auth = AdminAuth(token="t", public_reads=True)
    async with client_for(create_app(tw, auth=auth)) as anonymous:
        assert (await anonymous.get("/api/jobs")).status_code == 200
        assert (await anonymous.post("/api/queues/x/pause")).status_code == 401


def test_auth_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="token or a password"):
        AdminAuth()
    with pytest.raises(ValueError, match="username"):
        AdminAuth(password="pw")
