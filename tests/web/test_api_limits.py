"""The admin API for flow control on every backend: a job's explanation, queue limits."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from taskward import TaskManager
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, BEARER, client_for, seed


async def test_explain_a_waiting_job(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    (pending,) = ids["pending"]
    await tw.pause_queue("emails")
    answer = await api.get(f"/api/jobs/{pending}/explain")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["running"] is False
    assert [r["code"] for r in body["reasons"]] == ["paused", "no_worker"]
    paused = body["reasons"][0]
    assert paused["data"] == {"queue": "emails"}
    assert "queue emails is paused" in paused["text"]
    # The job as GET /api/jobs/{id} shows it (no unique key, payload checked).
    detail = (await api.get(f"/api/jobs/{pending}")).json()
    assert {k: body["job"][k] for k in ("id", "task", "queue", "state", "args", "kwargs")} == {
        k: detail[k] for k in ("id", "task", "queue", "state", "args", "kwargs")
    }
    assert "unique_key" not in body["job"]
    assert body["at"]


async def test_explain_finished_jobs(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed(tw)
    done = (await api.get(f"/api/jobs/{ids['done'][0]}/explain")).json()
    (reason,) = done["reasons"]
    assert reason["code"] == "finished"
    assert reason["data"]["state"] == "completed"
    assert reason["data"]["result_present"] is True
    failed = (await api.get(f"/api/jobs/{ids['failed'][0]}/explain")).json()
    (reason,) = failed["reasons"]
    assert reason["data"]["state"] == "failed"
    assert reason["data"]["error"]["message"] == "report 10: disk full"


async def test_explain_redacts_sensitive_arguments(tw: TaskManager, api: httpx.AsyncClient) -> None:
    @tw.task(name="login", sensitive=("password",))
    def login(user: str, password: str) -> None:
        return None

    job = await login.enqueue("ada", "hunter2")
    answer = await api.get(f"/api/jobs/{job.id}/explain")
    assert answer.json()["job"]["args"] == ["ada", "***"]
    assert "hunter2" not in answer.text


async def test_explain_a_missing_or_impossible_job(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/jobs/424242/explain")).status_code == 404
    assert (await api.get("/api/jobs/0/explain")).status_code == 422
    assert (await api.get("/api/jobs/abc/explain")).status_code == 422


async def test_configure_and_list_limits(tw: TaskManager, api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/queues/limits")).json() == []
    answer = await api.put("/api/queues/emails/limits", json={"global_limit": 3})
    assert answer.status_code == 200, answer.text
    assert answer.json() == limits("emails", 3)
    await api.put("/api/queues/sms/limits", json={"global_limit": 1, "rate_limit": "50/s"})
    assert (await api.get("/api/queues/limits")).json() == [
        limits("emails", 3),
        limits("sms", 1, "50/s"),
    ]
    assert (await tw.queue_limits())["emails"].global_limit == 3
    cleared = await api.put("/api/queues/emails/limits", json={"global_limit": None})
    assert cleared.json() == limits("emails", None)
    # PUT replaces: a limit left out is cleared.
    rate_only = await api.put("/api/queues/sms/limits", json={"rate_limit": "2/h"})
    assert rate_only.json() == limits("sms", None, "2/h")
    assert (await api.get("/api/queues/limits")).json() == [limits("sms", None, "2/h")]
    assert (await api.put("/api/queues/sms/limits", json={})).json() == limits("sms", None)
    assert (await api.get("/api/queues/limits")).json() == []


def limits(
    queue: str, global_limit: int | None, rate_limit: str | None = None
) -> dict[str, object]:
    return {
        "queue": queue,
        "global_limit": global_limit,
        "rate_limit": rate_limit,
        "partition_by": None,
        "held_until": None,
        "waits": {},
    }


async def test_the_limits_say_how_often_they_held_jobs_back(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    await tw.configure_queue("emails", global_limit=1)
    for n in range(3):
        await tw.enqueue_task("tests_support.jobs:add", args=[n], queue="emails")
    now = tw.clock.now()
    for worker in ("w1", "w2"):
        await tw.backend.fetch(
            queue="emails",
            limit=5,
            worker_id=worker,
            now=now,
            lease_until=now + timedelta(seconds=60),
        )
    [row] = (await api.get("/api/queues/limits")).json()
    assert row["waits"] == {"global_limit": 2}
    page = (await api.get("/dashboard/fragments/overview")).text
    assert "held back 2× by global limit" in page  # noqa: RUF001 (the page writes a times sign)


async def test_hold_and_release_a_queue(tw: TaskManager, api: httpx.AsyncClient) -> None:
    answer = await api.post("/api/queues/emails/hold", json={"seconds": 600})
    assert answer.status_code == 200, answer.text
    held_until = answer.json()["held_until"]
    assert held_until is not None
    # A shorter hold changes nothing: a hold only grows.
    shorter = await api.post("/api/queues/emails/hold", json={"seconds": 5})
    assert shorter.json()["held_until"] == held_until
    listed = (await api.get("/api/queues/limits")).json()
    assert [(q["queue"], q["held_until"]) for q in listed] == [("emails", held_until)]
    released = await api.delete("/api/queues/emails/hold")
    assert released.json() == limits("emails", None)
    assert (await api.get("/api/queues/limits")).json() == []
    for bad, status in (({"seconds": -1}, 400), ({"seconds": "5"}, 422), ({}, 422)):
        assert (await api.post("/api/queues/emails/hold", json=bad)).status_code == status
    assert (await api.post("/api/queues/bad name!/hold", json={"seconds": 1})).status_code == 400


async def test_a_full_limit_shows_in_the_explanation(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    ids = await seed(tw)
    (pending,) = ids["pending"]
    await api.put("/api/queues/emails/limits", json={"global_limit": 1})
    extra = await tw.enqueue_task("emails.send", args=["bob@example.com"])
    now = tw.clock.now()
    held = await tw.backend.fetch(
        queue="emails", limit=5, worker_id="w1", now=now, lease_until=now.replace(year=now.year + 1)
    )
    assert [j.id for j in held] == [pending]
    body = (await api.get(f"/api/jobs/{extra.id}/explain")).json()
    limit = next(r for r in body["reasons"] if r["code"] == "global_limit")
    assert limit["data"] == {"queue": "emails", "limit": 1, "running": 1, "held_by": [pending]}
    running = (await api.get(f"/api/jobs/{pending}/explain")).json()
    assert running["running"] is True
    assert running["reasons"][0]["data"]["worker"] == "w1"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"global_limit": 0}, 400),
        ({"global_limit": -1}, 400),
        ({"global_limit": 2**40}, 400),
        ({"global_limit": "5"}, 422),
        ({"global_limit": 2.5}, 422),
        ({"global_limit": True}, 422),
        ({"rate_limit": "fast"}, 400),
        ({"rate_limit": "0/s"}, 400),
        ({"rate_limit": "10/0s"}, 400),
        ({"rate_limit": 5}, 422),
        ({"global_limit": 3, "rate": 1}, 422),
        ([3], 422),
    ],
)
async def test_bad_limits_are_refused(
    tw: TaskManager, api: httpx.AsyncClient, body: object, status: int
) -> None:
    answer = await api.put("/api/queues/emails/limits", json=body)
    assert answer.status_code == status, answer.text
    assert await tw.queue_limits() == {}


async def test_a_bad_queue_name_or_no_body(tw: TaskManager, api: httpx.AsyncClient) -> None:
    bad = await api.put("/api/queues/not a queue!/limits", json={"global_limit": 2})
    assert bad.status_code == 400
    assert "invalid queue name" in bad.json()["detail"]
    assert (await api.put("/api/queues/emails/limits")).status_code == 422
    assert await tw.queue_limits() == {}


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_limits_need_write_access(tw: TaskManager, auth: AdminAuth) -> None:
    put = ("/api/queues/emails/limits", {"global_limit": 2})
    async with client_for(create_app(tw)) as open_app:
        assert (await open_app.get("/api/queues/limits")).status_code == 200  # public reads
        assert (await open_app.put(put[0], json=put[1])).status_code == 403
    async with client_for(create_app(tw, auth=auth)) as anonymous:
        assert (await anonymous.put(put[0], json=put[1])).status_code == 401
        assert (await anonymous.get("/api/queues/limits")).status_code == 401
        assert (await anonymous.get("/api/jobs/1/explain")).status_code == 401
    async with client_for(create_app(tw, auth=auth, read_only=True), authorization=BEARER) as ro:
        assert (await ro.put(put[0], json=put[1])).status_code == 403
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        # Basic auth (a browser) needs the CSRF token for a change.
        assert (await browser.put(put[0], json=put[1])).status_code == 403
    assert await tw.queue_limits() == {}


async def test_the_job_page_says_why_it_is_not_running(tw: TaskManager, auth: AdminAuth) -> None:
    ids = await seed(tw)
    (pending,) = ids["pending"]
    await tw.pause_queue("emails")
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        page = await browser.get(f"/dashboard/jobs/{pending}")
        assert page.status_code == 200
        assert "Why is it not running?" in page.text
        assert "its queue emails is paused" in page.text
        assert "no live worker listens on queue emails" in page.text
        fragment = await browser.get(f"/dashboard/fragments/jobs/{pending}")
        assert "Why is it not running?" in fragment.text
        done = await browser.get(f"/dashboard/jobs/{ids['done'][0]}")
        assert "Why is it not running?" not in done.text


async def test_the_overview_shows_each_queues_global_limit(
    tw: TaskManager, auth: AdminAuth
) -> None:
    await seed(tw)
    await tw.configure_queue("emails", global_limit=4, rate_limit="2/h")
    await tw.hold_queue("reports", seconds=600)
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        page = await browser.get("/dashboard/fragments/overview")
        assert page.status_code == 200
        assert "global 0/4" in page.text  # running / limit, in the queue's capacity cell
        assert "0 of 2/h" in page.text
        assert "held until" in page.text


async def test_partition_a_queue_and_hold_one_key(tw: TaskManager, api: httpx.AsyncClient) -> None:
    body = {"global_limit": 2, "partition_by": "tenant"}
    answer = await api.put("/api/queues/api/limits", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["partition_by"] == "kwarg:tenant"
    by_position = await api.put("/api/queues/api/limits", json={"partition_by": 0})
    assert by_position.json()["partition_by"] == "arg:0"
    held = await api.post("/api/queues/api/hold", json={"seconds": 60, "key": "acme"})
    assert held.status_code == 200, held.text
    assert held.json()["held_until"] is None  # the key is held, not the queue
    assert (await tw.partition_flow("api", "acme")).held_until is not None
    released = await api.delete("/api/queues/api/hold", params={"key": "acme"})
    assert released.status_code == 200
    assert (await tw.partition_flow("api", "acme")).held_until is None
    for bad in ({"partition_by": "not a kwarg!"}, {"partition_by": 300}, {"partition_by": -1}):
        assert (await api.put("/api/queues/api/limits", json=bad)).status_code == 400
    assert (await api.put("/api/queues/api/limits", json={"partition_by": 1.5})).status_code == 422
