"""Pausing and resuming a schedule on the schedules page, in real headless Chromium (issue 26).

An hourly schedule (its name carries markup) fired at 10:00 UTC. At 10:30 the operator clicks
"Pause": a dismissed confirmation changes nothing; confirmed (the dialog names the schedule),
the row gets a "paused" badge, its next runs are struck through under "paused", and "Resume"
replaces "Pause". "Resume" clears it all again, and says when it runs next. The store agrees
at each step. At 400 px the paused page does not overflow; no CSP violation, no page error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from browser.operator_page import operator_page, schedules_app
from browser.serving import ServedApp
from taskward import FrozenClock, TaskManager
from taskward.runtime.scheduler import CronScheduler

NAME = "hourly <i>report</i> \"'>"
TASK = "tests_support.jobs:add"


async def fire(url: str) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 59, 30, tzinfo=UTC))
    async with TaskManager(url, clock=clock) as tw:
        await tw.schedule_recurring_task(NAME, TASK, cron="0 * * * *", args=[1])
        clock.set(datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC))
        await CronScheduler(tw.backend, clock, make_job=tw.schedule_job).run_once()


async def stored_pause(url: str) -> bool:
    async with TaskManager(url) as check:
        (schedule,) = await check.list_recurring_tasks()
        return schedule.paused


async def test_pause_then_resume(browser: Any, tmp_path: Path, screenshots: Path) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    url = f"sqlite:///{tmp_path}/jobs.db"
    await fire(url)
    web, app = schedules_app(url)
    with ServedApp(app) as served:
        async with operator_page(browser) as seen:
            page, problems, dialogs, answers = seen.page, seen.problems, seen.dialogs, seen.answers
            await page.goto(f"{served.url}/dashboard/schedules")
            row = page.locator("tr.schedule")
            await expect(row).to_have_count(1)
            await expect(row).to_have_attribute("data-paused", "false")
            await expect(row.locator(".badge.s-paused")).to_have_count(0)
            await expect(row.get_by_role("button", name="Resume")).to_have_count(0)

            # Dismissed: nothing changes.
            answers.append(False)
            async with page.expect_event("dialog"):
                await row.get_by_role("button", name="Pause").click()
            await expect(row).to_have_attribute("data-paused", "false")
            assert await stored_pause(url) is False

            # Confirmed: paused, and the page says so.
            answers.append(True)
            await row.get_by_role("button", name="Pause").click()
            flash = page.locator(".flash")
            await expect(flash).to_contain_text(f"schedule {NAME} paused")
            assert dialogs[-1].startswith(f"Pause schedule {NAME}?")
            await expect(row).to_have_attribute("data-paused", "true")
            await expect(row.locator("td").first.locator(".badge.s-paused")).to_have_text("paused")
            await expect(row.locator(".next-runs .paused-note")).to_have_text(
                "paused: none of these runs"
            )
            decoration = await row.locator(".next-run").first.evaluate(
                "e => getComputedStyle(e).textDecorationLine"
            )
            assert decoration == "line-through"
            await expect(row.get_by_role("button", name="Pause")).to_have_count(0)
            await expect(page.locator("main i")).to_have_count(0)  # the name's markup is text
            assert await stored_pause(url) is True
            await page.screenshot(
                path=str(screenshots / "schedules-paused-1400.png"), full_page=True
            )

            # At 400 px the paused page fits (its table scrolls inside its own box).
            await page.set_viewport_size({"width": 400, "height": 900})
            await page.reload()
            await expect(row).to_have_attribute("data-paused", "true")
            scroll = await page.evaluate("document.documentElement.scrollWidth")
            inner = await page.evaluate("window.innerWidth")
            assert scroll <= inner, f"schedules page at 400 px is {scroll} px wide"
            await page.screenshot(
                path=str(screenshots / "schedules-paused-400.png"), full_page=True
            )
            await page.set_viewport_size({"width": 1400, "height": 900})

            # Resume: no confirmation needed; back to normal, with the next run named.
            await row.get_by_role("button", name="Resume").click()
            await expect(flash).to_contain_text(
                f"schedule {NAME} resumed: next run 2026-03-02T11:00:00+00:00"
            )
            await expect(row).to_have_attribute("data-paused", "false")
            await expect(row.locator(".badge.s-paused")).to_have_count(0)
            await expect(row.locator(".paused-note")).to_have_count(0)
            await expect(row.get_by_role("button", name="Pause")).to_have_count(1)
            assert await stored_pause(url) is False
            assert len(dialogs) == 2

            assert await page.evaluate("window.__csp") == []
            assert problems == []
    await web.close()
