"""Pausing and resuming a schedule over HTTP and on the dashboard, and "run now" under the
schedule's ``overlap`` policy (issue 26).

``POST /api/schedules/{name}/pause`` and ``/resume`` answer the schedule (with ``paused``),
404 for an unknown name; both need the write permission, and with basic auth the CSRF token.
``POST /api/schedules/{name}/run`` answers 409, naming the run still active, when the
schedule's ``overlap`` is ``skip``; ``cancel_running`` asks for that run's cancel first.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.jobs import Job
from taskward.runtime.scheduler import CronScheduler
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, BEARER, client_for

NOW = datetime(2026, 3, 2, 9, 59, 30, tzinfo=UTC)
NAME = "reports/eu hourly?#%"  # a slash and characters a URL must quote


def api_path(name: str, action: str) -> str:
    return f"/api/schedules/{quote(name, safe='/')}/{action}"


def form_path(name: str, action: str) -> str:
    return f"/dashboard/schedules/{quote(name, safe='')}/{action}"


async def make(manager_url: str, overlap: str = "allow") -> TaskManager:
    tw = TaskManager(manager_url, clock=FrozenClock(NOW), task_modules=["tests_support.jobs"])
    await tw.open()
    await tw.schedule_recurring_task(
        NAME, "tests_support.jobs:add", cron="0 * * * *", args=[1, 2], overlap=overlap
    )
    return tw


@pytest.fixture
async def tw(manager_url: str) -> AsyncIterator[TaskManager]:
    manager = await make(manager_url)
    try:
        yield manager
    finally:
        await manager.close()


async def csrf(browser: httpx.AsyncClient) -> str:
    page = await browser.get("/dashboard/schedules")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


async def test_pause_and_resume_over_the_api(tw: TaskManager, auth: AdminAuth) -> None:
    async with client_for(create_app(tw, auth=auth), authorization=BEARER) as api:
        paused = await api.post(api_path(NAME, "pause"))
        assert paused.status_code == 200, paused.text
        assert (paused.json()["name"], paused.json()["paused"]) == (NAME, True)
        assert (await tw.list_recurring_tasks())[0].paused is True
        resumed = await api.post(api_path(NAME, "resume"))
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["paused"] is False
        assert resumed.json()["next_run_at"] == "2026-03-02T10:00:00Z"
        assert (await tw.list_recurring_tasks())[0].paused is False
        for action in ("pause", "resume"):
            missing = await api.post(api_path("nothing", action))
            assert missing.status_code == 404
            assert "no recurring schedule named 'nothing'" in missing.json()["detail"]


@pytest.mark.parametrize("manager_url", ["memory"], indirect=True)
async def test_the_listing_shows_paused(tw: TaskManager, auth: AdminAuth) -> None:
    await tw.pause_schedule(NAME)
    async with client_for(create_app(tw, auth=auth), authorization=BEARER) as api:
        (listed,) = (await api.get("/api/schedules")).json()
    assert listed["paused"] is True


@pytest.mark.parametrize("manager_url", ["memory"], indirect=True)
async def test_pause_needs_write_access_and_the_csrf_token(
    tw: TaskManager, auth: AdminAuth
) -> None:
    pause = api_path(NAME, "pause")
    async with client_for(create_app(tw, auth=auth)) as anonymous:
        assert (await anonymous.post(pause)).status_code == 401
    read_only = create_app(tw, auth=auth, read_only=True)
    async with client_for(read_only, authorization=BEARER) as reader:
        assert (await reader.post(pause)).status_code == 403
        assert (await reader.post(api_path(NAME, "resume"))).status_code == 403
        page = await reader.get("/dashboard/schedules")
        assert ">Pause<" not in page.text  # no buttons for a reader
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as basic:
        refused = await basic.post(pause)
        assert (refused.status_code, refused.json()["detail"]) == (
            403,
            "missing or wrong CSRF token",
        )
        form = await basic.post(form_path(NAME, "pause"), data={"csrf_token": "forged"})
        assert form.status_code == 403
        assert (await tw.list_recurring_tasks())[0].paused is False
        ok = await basic.post(pause, headers={"X-CSRF-Token": await csrf(basic)})
        assert ok.status_code == 200, ok.text
    assert (await tw.list_recurring_tasks())[0].paused is True


@pytest.mark.parametrize("manager_url", ["memory"], indirect=True)
async def test_dashboard_pause_and_resume(tw: TaskManager, auth: AdminAuth) -> None:
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        page = await browser.get("/dashboard/schedules")
        assert 'data-paused="false"' in page.text
        assert f'hx-confirm="Pause schedule {NAME}?' in page.text.replace("&amp;", "&").replace(
            "&#34;", '"'
        ).replace("&#39;", "'")
        data = {"csrf_token": await csrf(browser)}
        done = await browser.post(form_path(NAME, "pause"), data=data, follow_redirects=True)
        assert done.status_code == 200, done.text
        assert f"schedule {NAME} paused" in done.text
        assert 'data-paused="true"' in done.text
        assert '<span class="badge s-paused"' in done.text
        assert "paused: none of these runs" in done.text
        assert f'action="{form_path(NAME, "resume")}"' in done.text
        back = await browser.post(form_path(NAME, "resume"), data=data, follow_redirects=True)
        assert f"schedule {NAME} resumed: next run 2026-03-02T10:00:00+00:00" in back.text
        assert 'data-paused="false"' in back.text
        # A stale page's second click says the state it found, not a change it did not make.
        again = await browser.post(form_path(NAME, "resume"), data=data, follow_redirects=True)
        assert f"schedule {NAME} was not paused: next run" in again.text
        await browser.post(form_path(NAME, "pause"), data=data)
        twice = await browser.post(form_path(NAME, "pause"), data=data, follow_redirects=True)
        assert f"schedule {NAME} was paused already" in twice.text
        await browser.post(form_path(NAME, "resume"), data=data)
        missing = await browser.post(form_path("nothing", "pause"), data=data)
        assert missing.status_code == 404
        assert "no recurring schedule named" in missing.text
    assert (await tw.list_recurring_tasks())[0].paused is False


# -- run now under overlap ---------------------------------------------------------------------


async def running_fire(tw: TaskManager) -> Job:
    """The 10:00 fire, claimed by a worker and still running at 10:20."""
    clock = tw.clock
    clock.set(datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC))  # type: ignore[attr-defined]
    await CronScheduler(tw.backend, clock, make_job=tw.schedule_job).run_once()
    now = clock.now()
    (job,) = await tw.backend.fetch(
        queue="default", limit=1, worker_id="w1", now=now, lease_until=now + timedelta(hours=1)
    )
    clock.set(datetime(2026, 3, 2, 10, 20, tzinfo=UTC))  # type: ignore[attr-defined]
    return job


@pytest.mark.parametrize("overlap", ["allow", "skip", "cancel_running"])
async def test_run_now_applies_overlap(manager_url: str, auth: AdminAuth, overlap: str) -> None:
    tw = await make(manager_url, overlap)
    try:
        first = await running_fire(tw)
        async with client_for(create_app(tw, auth=auth), authorization=BEARER) as api:
            ran = await api.post(api_path(NAME, "run"))
        if overlap == "skip":
            assert ran.status_code == 409, ran.text
            assert ran.json()["detail"] == (
                f"schedule {NAME!r} not run now: overlap=skip and its previous run {first.id} "
                "still running (running)"
            )
            assert len((await tw.list_tasks()).items) == 1
            return
        assert ran.status_code == 200, ran.text
        assert ran.json()["meta"]["run_now"] is True
        previous = await tw.get_task_status(first.id)
        assert previous.state is JobState.RUNNING
        assert previous.cancel_requested is (overlap == "cancel_running")
        assert len((await tw.list_tasks()).items) == 2
    finally:
        await tw.close()


@pytest.mark.parametrize("manager_url", ["memory"], indirect=True)
async def test_dashboard_run_now_refused_by_overlap_says_why(
    manager_url: str, auth: AdminAuth
) -> None:
    tw = await make(manager_url, "skip")
    try:
        first = await running_fire(tw)
        async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
            data = {"csrf_token": await csrf(browser)}
            done = await browser.post(form_path(NAME, "run"), data=data, follow_redirects=True)
        assert done.status_code == 200, done.text
        assert f"overlap=skip and its previous run {first.id} still running" in done.text
        assert len((await tw.list_tasks()).items) == 1
    finally:
        await tw.close()
