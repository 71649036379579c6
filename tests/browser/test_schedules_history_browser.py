"""The schedules page in real headless Chromium shows each schedule's fire history (issue 25).

An hourly schedule fired at 10:00; no scheduler ran until 13:20, and with catch_up="latest"
the scheduler caught 13:00 up and summarised 11:00-12:00 as skipped. The operator opens the
schedules page, reads the newest fires with their outcomes, and follows a fire's job link.
The schedule's name carries markup, shown as text (the page keeps its CSP: no inline script).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from browser.serving import ServedApp
from taskward import FrozenClock, TaskManager
from taskward.runtime.scheduler import CronScheduler
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "browser-test-password"
NAME = "hourly <b>report</b>"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


async def fire(url: str) -> list[int]:
    clock = FrozenClock(datetime(2026, 3, 2, 9, 59, 30, tzinfo=UTC))
    async with TaskManager(url, clock=clock) as tw:
        await tw.schedule_recurring_task(
            NAME, "tests_support.jobs:add", cron="0 * * * *", args=[1], catch_up="latest"
        )
        for hour, minute in ((10, 0), (13, 20)):
            clock.set(datetime(2026, 3, 2, hour, minute, 5, tzinfo=UTC))
            await CronScheduler(tw.backend, clock, make_job=tw.schedule_job).run_once()
        return [f.job_id for f in await tw.cron_history(NAME) if f.job_id is not None]


async def test_schedules_page_shows_the_fire_history(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    url = f"sqlite:///{tmp_path}/jobs.db"
    caught_up, inserted = await fire(url)
    web = TaskManager(url)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1280, "height": 900},
        )
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        await page.goto(f"{served.url}/dashboard/schedules")

        row = page.locator("tr.schedule")
        await expect(row).to_have_count(1)
        await expect(row.locator("td").first).to_have_text(NAME)  # markup shown as text
        await expect(page.locator("b", has_text="report")).to_have_count(0)
        await expect(row).to_contain_text("latest")  # its catch-up policy
        history = page.locator("details.fires")
        await expect(history).to_have_attribute("open", "")
        await expect(history.locator("summary")).to_contain_text("newest caught_up")
        fires = history.locator("tr.fire")
        await expect(fires).to_have_count(3)
        cells = [await fires.nth(i).locator("td").all_inner_texts() for i in range(3)]
        assert [(c[1], c[2], c[3]) for c in cells] == [
            ("caught_up", str(caught_up), "1"),
            ("skipped", "", "2"),
            ("inserted", str(inserted), "1"),
        ]
        assert cells[1][4].startswith("missed: 2 fire times from 2026-03-02T11:00:00+00:00")
        await page.screenshot(path=str(screenshots / "schedules.png"), full_page=True)
        assert await page.evaluate("window.__csp") == []
        styles = await page.evaluate(
            "getComputedStyle(document.querySelector('details.fires summary')).cursor"
        )
        assert styles == "pointer"  # the stylesheet (not an inline style) applies

        # Folded and unfolded by the browser itself (no script), and a job link works.
        await history.locator("summary").click()
        await expect(fires.first).to_be_hidden()
        await history.locator("summary").click()
        await fires.first.get_by_role("link", name=str(caught_up)).click()
        await expect(page.locator("#job h1")).to_contain_text("tests_support.jobs:add")
        assert problems == []
        await context.close()
    await web.close()
