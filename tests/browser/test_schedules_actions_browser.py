"""The schedules page's actions in real headless Chromium (issue 26).

A Europe/Berlin schedule fired at 10:00 UTC; another never fired. At 10:30 UTC the operator
opens the schedules page: the first shows its last fire (inserted, with the job's link), a
link to its jobs, and its next runs on Berlin's clock and in UTC. "Run now" (reached with the
keyboard, confirmed) inserts one job, and a second click in the same second gets the same job;
"Delete" (confirmed; a dismissed confirmation changes nothing) removes the other's row. Names
carry markup (one breaks out of attributes: the row's data attribute, the confirmations, the
form actions), shown as text; the page keeps its CSP (no inline script or style).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from browser.operator_page import operator_page, schedules_app
from browser.serving import ServedApp
from taskward import FrozenClock, TaskManager
from taskward.runtime.scheduler import CronScheduler

BERLIN = "berlin <i>hourly</i>"
SPARE = "spare \"'><img src=x onerror=alert(1)> <b>nightly</b>"  # breaks out of attributes
TASK = "tests_support.jobs:add"


async def fire(url: str) -> int:
    """BERLIN fires at 10:00 UTC (11:00 in Berlin); SPARE never fires. The fired job's id."""
    clock = FrozenClock(datetime(2026, 3, 2, 9, 59, 30, tzinfo=UTC))
    async with TaskManager(url, clock=clock) as tw:
        await tw.schedule_recurring_task(
            BERLIN, TASK, cron="0 * * * *", timezone="Europe/Berlin", args=[1], queue="reports"
        )
        await tw.schedule_recurring_task(SPARE, TASK, cron="0 3 * * *", args=[2])
        clock.set(datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC))
        await CronScheduler(tw.backend, clock, make_job=tw.schedule_job).run_once()
        (record,) = await tw.cron_history(BERLIN)
        assert record.job_id is not None
        return record.job_id


async def test_schedules_page_actions(browser: Any, tmp_path: Path, screenshots: Path) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    url = f"sqlite:///{tmp_path}/jobs.db"
    fired = await fire(url)
    web, app = schedules_app(url)
    with ServedApp(app) as served:
        async with operator_page(browser) as seen:
            page, problems, dialogs, answers = seen.page, seen.problems, seen.dialogs, seen.answers
            await page.goto(f"{served.url}/dashboard/schedules")

            rows = page.locator("tr.schedule")
            await expect(rows).to_have_count(2)
            berlin = rows.filter(has_text="berlin")
            await expect(berlin.locator("td").first).to_have_text(BERLIN)  # markup shown as text
            await expect(page.locator("i", has_text="hourly")).to_have_count(0)
            await expect(page.locator("main img, main b")).to_have_count(0)
            await expect(rows.filter(has_text="spare").locator("td").first).to_have_text(SPARE)

            # The last fire and its outcome, with the job's link; the never-fired one says so.
            last = berlin.locator("td.last-fire")
            await expect(last.locator(".outcome")).to_have_text("inserted")
            await expect(last).to_contain_text("2026-03-02 10:00:00 UTC")
            await expect(last.locator("a.job")).to_have_attribute(
                "href", f"/dashboard/jobs/{fired}"
            )
            await expect(rows.filter(has_text="spare").locator("td.last-fire")).to_contain_text(
                "never fired"
            )
            # Next runs on Berlin's clock and in UTC: 11:00 UTC is 12:00 CET.
            first_run = berlin.locator(".next-run").first
            await expect(first_run.locator(".local")).to_have_text("2026-03-02 12:00:00 CET")
            await expect(first_run.locator(".local")).to_have_attribute(
                "title", "2026-03-02 12:00:00 CET is UTC+01:00"
            )
            await expect(first_run.locator(".utc")).to_have_text("2026-03-02 11:00:00 UTC")
            await expect(berlin.locator(".next-run")).to_have_count(3)
            await page.screenshot(path=str(screenshots / "schedules-actions.png"), full_page=True)

            # "Run now", reached with the keyboard and confirmed: one job, then the same job.
            run = berlin.get_by_role("button", name="Run now")
            await run.focus()
            await expect(run).to_be_focused()
            answers.append(True)
            await page.keyboard.press("Enter")
            flash = page.locator(".flash")
            await expect(flash).to_contain_text(f"schedule {BERLIN} run now: job")
            assert dialogs[-1].startswith(f"Run schedule {BERLIN} now")
            answers.append(True)
            await rows.filter(has_text="berlin").get_by_role("button", name="Run now").click()
            await expect(flash).to_contain_text("already run this second: job")
            async with TaskManager(url) as check:
                jobs = (await check.list_tasks(task=TASK)).items
            manual = [j for j in jobs if j.meta.get("run_now")]
            assert len(manual) == 1
            assert (manual[0].queue, manual[0].meta["schedule"]) == ("reports", BERLIN)
            assert len(jobs) == 2  # the 10:00 fire and the one run now
            await expect(flash).to_contain_text(f"job {manual[0].id}")

            # Its jobs: the jobs page filtered by its task and queue.
            await rows.filter(has_text="berlin").get_by_role("link", name="its jobs").click()
            await expect(page).to_have_url(
                f"{served.url}/dashboard/jobs?task=tests_support.jobs%3Aadd&queue=reports"
            )
            await page.go_back()
            await expect(rows).to_have_count(2)

            # "Delete": dismissed, nothing changes; confirmed, the row goes.
            spare = rows.filter(has_text="spare")
            answers.append(False)
            async with page.expect_event("dialog"):
                await spare.get_by_role("button", name="Delete").click()
            await expect(rows).to_have_count(2)
            await expect(flash).not_to_contain_text("deleted")
            answers.append(True)
            await spare.get_by_role("button", name="Delete").click()
            await expect(flash).to_contain_text(f"schedule {SPARE} deleted")
            await expect(rows).to_have_count(1)
            await expect(rows.first.locator("td").first).to_have_text(BERLIN)
            assert dialogs[-1].startswith(f"Delete schedule {SPARE}")
            async with TaskManager(url) as check:
                assert [s.name for s in await check.list_recurring_tasks()] == [BERLIN]

            assert await page.evaluate("window.__csp") == []
            assert problems == []
    await web.close()
