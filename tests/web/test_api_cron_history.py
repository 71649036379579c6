"""``GET /api/schedules/{name}/history``: a schedule's fire history over HTTP (issue 25), and
the dashboard's schedules page, which shows each schedule's newest fires."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from taskward import FrozenClock, TaskManager
from taskward.jobs import Schedule
from taskward.runtime.scheduler import CronScheduler
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, client_for


async def fire(tw: TaskManager) -> None:
    """10:00 inserted; then no scheduler until 13:20; catch_up="latest" inserts 13:00."""
    clock = FrozenClock(datetime(2026, 3, 2, 9, 59, 30, tzinfo=UTC))
    await tw.schedule_recurring_task(
        "hourly", "tests_support.jobs:add", args=[1], cron="0 * * * *", catch_up="latest"
    )
    for hour, minute in ((10, 0), (13, 20)):
        clock.set(datetime(2026, 3, 2, hour, minute, 5, tzinfo=UTC))
        await CronScheduler(tw.backend, clock, make_job=tw.schedule_job).run_once()


async def test_history_newest_first(tw: TaskManager, api: httpx.AsyncClient) -> None:
    await fire(tw)
    answer = await api.get("/api/schedules/hourly/history")
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    assert [(r["planned_at"][:19], r["outcome"], r["count"]) for r in rows] == [
        ("2026-03-02T13:00:00", "caught_up", 1),
        ("2026-03-02T12:00:00", "skipped", 2),
        ("2026-03-02T10:00:00", "inserted", 1),
    ]
    jobs = {job.id for job in (await tw.list_tasks()).items}
    assert {rows[0]["job_id"], rows[2]["job_id"]} == jobs
    assert rows[1]["job_id"] is None
    assert rows[1]["reason"].startswith("missed: 2 fire times from 2026-03-02T11:00:00")
    (listed,) = (await api.get("/api/schedules")).json()
    assert (listed["catch_up"], listed["max_catch_up"], listed["overlap"]) == (
        "latest",
        10,
        "allow",
    )
    assert listed["last_fire_at"].startswith("2026-03-02T13:00:00")
    limited = (await api.get("/api/schedules/hourly/history", params={"limit": 1})).json()
    assert [r["outcome"] for r in limited] == ["caught_up"]


async def test_unknown_schedule_is_404_and_bad_limit_422(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    missing = await api.get("/api/schedules/nothing/history")
    assert missing.status_code == 404
    assert "no recurring schedule named 'nothing'" in missing.text
    await fire(tw)
    assert (await api.get("/api/schedules/hourly/history?limit=0")).status_code == 422
    assert (await api.get("/api/schedules/hourly/history?limit=101")).status_code == 422


async def test_reading_needs_the_read_permission(tw: TaskManager, api: httpx.AsyncClient) -> None:
    await fire(tw)
    anonymous = httpx.AsyncClient(transport=api._transport, base_url=str(api.base_url))
    async with anonymous:
        assert (await anonymous.get("/api/schedules/hourly/history")).status_code == 401


async def test_a_name_with_slashes_is_reachable(tw: TaskManager, api: httpx.AsyncClient) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 59, 30, tzinfo=UTC))
    await tw.schedule_recurring_task(
        "reports/eu/daily", "tests_support.jobs:add", args=[1], cron="0 * * * *"
    )
    clock.set(datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC))
    await CronScheduler(tw.backend, clock, make_job=tw.schedule_job).run_once()
    answer = await api.get("/api/schedules/reports/eu/daily/history", params={"limit": 5})
    assert answer.status_code == 200, answer.text
    assert [(r["planned_at"][:19], r["outcome"]) for r in answer.json()] == [
        ("2026-03-02T10:00:00", "inserted")
    ]
    missing = await api.get("/api/schedules/reports/eu/weekly/history")
    assert missing.status_code == 404
    assert "'reports/eu/weekly'" in missing.text


async def test_schedules_page_lists_the_schedules_once(
    tw: TaskManager, auth: AdminAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schedules without history must not each list every schedule again (N pages of N)."""
    await fire(tw)
    for n in range(5):  # never fired: no history
        await tw.schedule_recurring_task(
            f"quiet-{n}", "tests_support.jobs:add", args=[n], cron="0 3 * * *"
        )
    listings = 0
    backend = await tw._backend()
    real = backend.list_schedules

    async def counted() -> list[Schedule]:
        nonlocal listings
        listings += 1
        return await real()

    monkeypatch.setattr(backend, "list_schedules", counted)
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        page = await browser.get("/dashboard/schedules")
    assert page.status_code == 200, page.text
    assert "quiet-4" in page.text
    assert "caught_up" in page.text
    assert listings == 1
