"""The job page's kept elements and a deleted job, in real headless Chromium (issue 26).

htmx keeps an ``hx-preserve`` element whose id is unchanged across a swap. A failed job with
two errors is retried: the list below must take the newest error in (``Errors (2)``), not keep
the old ``Errors of earlier attempts (1)``. A retryable job's newest error, closed by the
operator, stays closed across polls. A job deleted while its page is open: the page says so
within a poll, on a narrow screen without scrolling sideways, and stops polling.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from browser.serving import ServedApp
from taskward import FrozenClock, JobState, TaskManager
from taskward.clock import utcnow
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "job-page-review-password"


def flaky(n: int) -> None:
    raise ValueError(f"attempt failed for {n}")


def register(tw: TaskManager) -> None:
    tw.task(name="sync.twice", queue="sync", max_attempts=2)(flaky)
    tw.task(name="sync.thrice", queue="sync", max_attempts=5)(flaky)


async def seed(url: str) -> dict[str, int]:
    """A failed job with two errors, a retryable one with one, and a waiting one."""
    clock = FrozenClock(utcnow() - timedelta(hours=3))
    async with TaskManager(url, clock=clock) as tw:
        register(tw)
        dead = await tw.enqueue_task("sync.twice", args=[1])
        await tw.drain(["sync"], timeout=30)
        clock.advance(3600)  # past its retry delay: the second attempt fails too
        await tw.drain(["sync"], timeout=30)
        retryable = await tw.enqueue_task("sync.thrice", args=[2])
        await tw.drain(["sync"], timeout=30)
        waiting = await tw.enqueue_task("sync.thrice", args=[3], delay=7 * 86400)
        assert (await tw.get_task_status(dead.id)).state is JobState.FAILED
        assert len((await tw.get_task_status(dead.id)).errors) == 2
        assert (await tw.get_task_status(retryable.id)).state is JobState.RETRYABLE
    return {"dead": dead.id, "retryable": retryable.id, "waiting": waiting.id}


async def test_kept_elements_follow_their_content_and_a_deleted_job_stops_polling(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    url = f"sqlite:///{tmp_path}/jobs.db"
    ids = await seed(url)
    web = TaskManager(url)
    register(web)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    errors: list[str] = []
    with ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1400, "height": 900},
        )
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Retried (no worker runs it): the newest error moves into the list.
        await page.goto(f"{served.url}/dashboard/jobs/{ids['dead']}")
        older = page.locator(".older-errors > details > summary")
        await expect(older).to_have_text("Errors of earlier attempts (1)")
        await page.get_by_role("button", name="Retry").click()
        await expect(page.locator("p.flash[role=status]")).to_contain_text("retried at")
        await expect(page.locator("#job h1 .badge")).to_have_text("pending")
        await expect(page.locator(".newest-error")).to_have_count(0)
        await expect(older).to_have_text("Errors (2)")

        # A retryable job is polled: its newest error, closed, stays closed.
        await page.goto(f"{served.url}/dashboard/jobs/{ids['retryable']}")
        newest = page.locator(".newest-error details.error")
        await expect(newest).to_have_attribute("open", "")
        await newest.locator("summary").click()
        await expect(newest).not_to_have_attribute("open", "")
        as_of = page.locator(".as-of time")
        read = await as_of.get_attribute("datetime")
        await expect(as_of).not_to_have_attribute("datetime", read or "", timeout=10_000)
        await expect(newest).not_to_have_attribute("open", "")
        await expect(page.locator(".newest-error h2")).to_contain_text("Error of attempt 1")

        # Deleted behind the page's back: said within a poll, then no more polls.
        await page.set_viewport_size({"width": 360, "height": 800})
        await page.goto(f"{served.url}/dashboard/jobs/{ids['waiting']}")
        await expect(page.locator("#job h1 .badge")).to_have_text("scheduled")
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/fragments/" in r.url else None)
        async with TaskManager(url) as other:
            await other.delete_task(ids["waiting"])
        gone = page.locator(".job-gone")
        await expect(gone).to_contain_text(f"job {ids['waiting']} no longer exists", timeout=10_000)
        await expect(gone.get_by_role("link", name="back to the job list")).to_be_visible()
        seen = len(polls)
        await asyncio.sleep(4.5)  # two poll periods
        assert len(polls) == seen, polls
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the page is {width} px wide"
        await page.screenshot(path=str(screenshots / "job-gone-360.png"), full_page=True)
        await gone.get_by_role("link", name="back to the job list").click()
        await page.wait_for_url(f"{served.url}/dashboard/jobs")
        assert errors == []
        await context.close()
    await web.close()
