"""Schedule actions over HTTP and on the dashboard (issue 26): run a schedule's job now, and
delete a schedule.

``POST /api/schedules/{name}/run`` inserts the job a fire would insert, with the unique key of
the current second's slot, so a double click makes one job; it writes no fire record.
``DELETE /api/schedules/{name}`` deletes the schedule (204, 404 for none). Both need the
write permission, and with basic auth the CSRF token, like every other change.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.runtime.scheduler import cron_unique_key
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, BEARER, client_for

NOW = datetime(2026, 3, 2, 9, 15, 42, 250_000, tzinfo=UTC)
NAME = "reports/eu daily?#%"  # a slash and characters a URL must quote


@pytest.fixture
async def frozen(manager_url: str) -> AsyncIterator[tuple[TaskManager, FrozenClock]]:
    clock = FrozenClock(NOW)
    # The web process knows the app's tasks (Run now refuses a task it does not know).
    async with TaskManager(
        manager_url, clock=clock, task_modules=["tests_support.jobs"]
    ) as manager:
        await manager.schedule_recurring_task(
            NAME,
            "tests_support.jobs:add",
            cron="0 6 * * *",
            timezone="Europe/Berlin",
            args=[2, 3],
            queue="reports",
            priority=7,
        )
        yield manager, clock


def quoted(name: str) -> str:
    """The name as a URL path carries it ("/" kept: the routes take a path)."""
    return quote(name, safe="/")


async def test_run_now_twice_in_one_second_makes_one_job(
    frozen: tuple[TaskManager, FrozenClock], auth: AdminAuth
) -> None:
    tw, clock = frozen
    async with client_for(create_app(tw, auth=auth), authorization=BEARER) as api:
        first = await api.post(f"/api/schedules/{quoted(NAME)}/run")
        assert first.status_code == 200, first.text
        clock.advance(0.5)  # still 09:15:42
        second = await api.post(f"/api/schedules/{quoted(NAME)}/run")
        assert second.status_code == 200, second.text
        job = first.json()
        assert second.json()["id"] == job["id"]
        assert (job["task"], job["queue"], job["priority"]) == (
            "tests_support.jobs:add",
            "reports",
            7,
        )
        assert (job["args"], job["state"], job["unique"]) == ([2, 3], "pending", True)
        assert job["meta"]["schedule"] == NAME
        assert job["meta"]["run_now"] is True
        assert job["meta"]["fire_at"] == NOW.replace(microsecond=0).isoformat()
        assert len((await tw.list_tasks()).items) == 1
        stored = await tw.get_task_status(job["id"])
        # Its own key: never the fire's, so a manual run at a fire time leaves that fire be.
        assert stored.unique_key == f"run-now:{NAME}:{NOW.replace(microsecond=0).isoformat()}"
        assert stored.unique_key != cron_unique_key(NAME, NOW.replace(microsecond=0))
        # The next second is another slot: another job.
        clock.advance(1)
        third = await api.post(f"/api/schedules/{quoted(NAME)}/run")
        assert third.status_code == 200, third.text
        assert third.json()["id"] != job["id"]
    assert len((await tw.list_tasks()).items) == 2
    # No fire record: the history is what schedulers did at planned times.
    assert await tw.cron_history(NAME) == []
    (schedule,) = await tw.list_recurring_tasks()
    assert (schedule.last_fire_at, schedule.last_job_id) == (None, None)


async def test_delete_then_404(frozen: tuple[TaskManager, FrozenClock], auth: AdminAuth) -> None:
    tw, _ = frozen
    async with client_for(create_app(tw, auth=auth), authorization=BEARER) as api:
        ran = await api.post(f"/api/schedules/{quoted(NAME)}/run")
        assert ran.status_code == 200, ran.text
        gone = await api.delete(f"/api/schedules/{quoted(NAME)}")
        assert (gone.status_code, gone.content) == (204, b"")
        assert await tw.list_recurring_tasks() == []
        # The job it inserted stays.
        assert (await tw.get_task_status(ran.json()["id"])).state is JobState.PENDING
        again = await api.delete(f"/api/schedules/{quoted(NAME)}")
        assert again.status_code == 404
        assert "no recurring schedule named" in again.json()["detail"]
        missing = await api.post(f"/api/schedules/{quoted(NAME)}/run")
        assert missing.status_code == 404
        assert (await api.post("/api/schedules/nothing/run")).status_code == 404
    assert len((await tw.list_tasks()).items) == 1


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_changes_need_write_access_and_the_csrf_token(
    frozen: tuple[TaskManager, FrozenClock], auth: AdminAuth
) -> None:
    tw, _ = frozen
    run, one = f"/api/schedules/{quoted(NAME)}/run", f"/api/schedules/{quoted(NAME)}"
    async with client_for(create_app(tw, auth=auth)) as anonymous:
        assert (await anonymous.post(run)).status_code == 401
        assert (await anonymous.delete(one)).status_code == 401
    async with client_for(create_app(tw, auth=auth), authorization="Bearer wrong") as wrong:
        assert (await wrong.post(run)).status_code == 401
        assert (await wrong.delete(one)).status_code == 401
    read_only = create_app(tw, auth=auth, read_only=True)
    async with client_for(read_only, authorization=BEARER) as reader:
        assert (await reader.get("/api/schedules")).status_code == 200
        assert (await reader.post(run)).status_code == 403
        assert (await reader.delete(one)).status_code == 403
    async with client_for(create_app(tw), authorization=BEARER) as no_auth:
        assert (await no_auth.post(run)).status_code == 403  # changes need AdminAuth
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as basic:
        for method, url in (("POST", run), ("DELETE", one)):
            refused = await basic.request(method, url)
            assert (refused.status_code, refused.json()["detail"]) == (
                403,
                "missing or wrong CSRF token",
            )
            forged = await basic.request(method, url, headers={"X-CSRF-Token": "forged"})
            assert forged.status_code == 403
        # The dashboard's forms too: without the token nothing happens.
        page = await basic.get("/dashboard/schedules")
        form = f"/dashboard/schedules/{quoted(NAME)}/run"
        assert (await basic.post(form, data={"csrf_token": "forged"})).status_code == 403
        assert len((await tw.list_tasks()).items) == 0
        assert len(await tw.list_recurring_tasks()) == 1
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        ok = await basic.post(run, headers={"X-CSRF-Token": token.group(1)})
        assert ok.status_code == 200, ok.text
    assert len((await tw.list_tasks()).items) == 1


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_dashboard_forms_run_and_delete(
    frozen: tuple[TaskManager, FrozenClock], auth: AdminAuth
) -> None:
    tw, _ = frozen
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        page = await browser.get("/dashboard/schedules")
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        # Every character quoted, "/" too: a browser would drop a "." or ".." segment.
        run = f"/dashboard/schedules/{quote(NAME, safe='')}/run"
        delete = f"/dashboard/schedules/{quote(NAME, safe='')}/delete"
        assert f'action="{run}"' in page.text.replace("&amp;", "&")
        # Next runs on the schedule's clock (06:00 in Berlin is 05:00 UTC in March) and in UTC.
        assert "2026-03-03 06:00:00 CET" in page.text
        assert "2026-03-03 05:00:00 UTC" in page.text
        assert "/dashboard/jobs?task=tests_support.jobs%3Aadd&amp;queue=reports" in page.text
        data = {"csrf_token": token.group(1)}
        done = await browser.post(run, data=data, follow_redirects=False)
        assert done.status_code == 303, done.text
        (job,) = (await tw.list_tasks()).items
        again = await browser.post(run, data=data, follow_redirects=True)
        assert f"already run this second: job {job.id}" in again.text
        assert len((await tw.list_tasks()).items) == 1
        page = await browser.get("/dashboard/schedules")
        assert "never fired" in page.text  # a manual run is no fire
        unknown = await browser.post(f"/dashboard/schedules/{quoted(NAME)}/frobnicate", data=data)
        assert unknown.status_code == 404
        gone = await browser.post(delete, data=data, follow_redirects=True)
        assert gone.status_code == 200
        assert f"schedule {NAME} deleted" in gone.text
        assert await tw.list_recurring_tasks() == []
        missing = await browser.post(run, data=data)
        assert missing.status_code == 404
        assert "no recurring schedule named" in missing.text


async def test_run_now_at_a_fire_time_and_of_an_unknown_task(
    manager_url: str, auth: AdminAuth
) -> None:
    fire = datetime(2026, 3, 2, 5, 0, 0, tzinfo=UTC)  # 06:00 in Berlin: the schedule's time
    tw = TaskManager(manager_url, clock=FrozenClock(fire), task_modules=["tests_support.jobs"])
    async with tw:
        await tw.schedule_recurring_task(
            "daily",
            "tests_support.jobs:add",
            cron="0 6 * * *",
            timezone="Europe/Berlin",
            args=[1, 1],
        )
        await tw.schedule_recurring_task("elsewhere", "nowhere.jobs:run", cron="0 6 * * *")
        async with client_for(create_app(tw, auth=auth), authorization=BEARER) as api:
            manual = await api.post("/api/schedules/daily/run")
            assert manual.status_code == 200, manual.text
            # The scheduler's own fire of 06:00 is a job of its own, not the manual one back.
            (fired,) = await tw.backend.insert(
                [tw.schedule_job((await tw.list_recurring_tasks())[0], fire)], now=fire
            )
            assert not fired.duplicate
            assert fired.job.id != manual.json()["id"]
            unknown = await api.post("/api/schedules/elsewhere/run")
            assert unknown.status_code == 400
            assert "not registered in this process" in unknown.json()["detail"]
        assert len((await tw.list_tasks(task="nowhere.jobs:run")).items) == 0


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_a_dot_segment_in_a_name_never_reaches_another_schedule(
    frozen: tuple[TaskManager, FrozenClock], auth: AdminAuth
) -> None:
    tw, _ = frozen
    for name in ("a/../b", "b"):
        await tw.schedule_recurring_task(
            name, "tests_support.jobs:add", cron="0 6 * * *", args=[1, 2]
        )
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        page = await browser.get("/dashboard/schedules")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        action = "/dashboard/schedules/a%2F..%2Fb/delete"
        assert f'action="{action}"' in page.text
        done = await browser.post(
            action, data={"csrf_token": token.group(1)}, follow_redirects=False
        )
        assert done.status_code == 303, done.text
    names = {s.name for s in await tw.list_recurring_tasks()}
    assert names == {NAME, "b"}
