"""The dashboard in real headless Chromium, against a real worker on a shared SQLite store.

The web app (uvicorn, one thread) and the worker (its own manager and loop, another thread)
share one SQLite file, as a dashboard process and a worker process would. The story: an
operator opens the dashboard, filters to failed jobs, opens one, reads its traceback, retries
it once the bug is "fixed", and watches it complete; job args that try to inject HTML stay text.
"""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from browser.serving import LoopThread, ServedApp
from taskward import FrozenClock, TaskManager
from taskward.clock import utcnow
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "browser-test-password"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
FIXED = threading.Event()
"""Set when the "bug" behind report 7 is fixed: its retry then completes."""
XSS_ARG = "<script>window.__xss = 1</script>"
XSS_ERROR = "<img src=x onerror=alert(1)>"


def build_report(n: int) -> dict[str, int]:
    if n == 7 and not FIXED.is_set():
        raise ValueError(f"report {n} has no rows yet")
    return {"rows": n * 10}


def sync_invoices(batch: int) -> None:
    raise ConnectionError(f"billing API timed out after 30 s (batch {batch})")


def send_email(to: str) -> None:
    return None


def hostile(payload: str) -> None:
    raise RuntimeError(XSS_ERROR)


def register(tw: TaskManager) -> None:
    tw.task(name="reports.build", queue="reports", max_attempts=1)(build_report)
    tw.task(name="billing.sync_invoices", queue="default", max_attempts=1)(sync_invoices)
    tw.task(name="emails.send", queue="emails")(send_email)
    tw.task(name="security.hostile", max_attempts=1)(hostile)


async def seed_history(url: str) -> None:
    """Jobs finished over the last 40 minutes, so the throughput chart has a shape."""
    clock = FrozenClock(utcnow() - timedelta(minutes=40))
    async with TaskManager(url, clock=clock) as past:
        register(past)
        for minute in range(40):
            await past.enqueue_many(
                "emails.send", [[f"user{minute}-{i}@example.com"] for i in range(3 + minute % 7)]
            )
            if minute % 9 == 4:
                await past.enqueue_task("billing.sync_invoices", args=[minute])
            await past.drain(timeout=30)
            clock.advance(60)


def worker_main(url: str) -> Any:
    async def main(stop: asyncio.Event) -> None:
        await seed_history(url)
        tw = TaskManager(url, poll_interval=0.1, lease_seconds=5)
        register(tw)
        await tw.enqueue_many("reports.build", [[n] for n in range(12)])
        await tw.enqueue_task("security.hostile", args=[XSS_ARG])
        await tw.enqueue_task("emails.send", args=["later@example.com"], delay=3600)
        worker = tw.make_worker({"default": 2, "reports": 4, "emails": 2})
        run = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await stop.wait()
        worker.stop()
        await run
        await tw.close()

    return main


async def wait_for_failed(base: str, count: int) -> None:
    auth = httpx.BasicAuth(USER, PASSWORD)
    async with httpx.AsyncClient(base_url=base, auth=auth) as client:
        for _ in range(300):
            page = (await client.get("/api/jobs", params={"state": "failed"})).json()
            if page["total"] >= count:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} failed jobs after 30 s")


async def test_operator_retries_a_failed_job(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine, not a slow page
    FIXED.clear()
    url = f"sqlite:///{tmp_path}/jobs.db"
    web = TaskManager(url)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    with LoopThread(worker_main(url)), ServedApp(app) as served:
        await wait_for_failed(served.url, 1 + 4 + 1)  # report 7, 4 invoice syncs, the hostile job
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1366, "height": 900},
        )
        page = await context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Overview: counts, chart, live refresh through the locally served htmx.
        await page.goto(f"{served.url}/dashboard")
        await expect(page.locator("h1")).to_have_text("Overview")
        assert await page.evaluate("typeof htmx") == "object"
        await expect(page.locator("svg.chart rect.ok").first).to_be_attached()
        queue_link = page.locator("#overview td a", has_text="reports")
        await expect(queue_link).to_have_attribute("href", "/dashboard/jobs?queue=reports")
        await page.screenshot(path=str(screenshots / "overview.png"))
        if os.environ.get("TASKWARD_UPDATE_SCREENSHOT"):
            await page.screenshot(path=str(DOCS_SCREENSHOT))

        # Filter to failed jobs.
        await page.get_by_role("link", name="Jobs", exact=True).click()
        await page.select_option("select[name=state]", "failed")
        await page.get_by_role("button", name="Filter").click()
        await expect(page.locator("#jobs tbody .badge.s-failed")).to_have_count(6)
        await expect(page.locator("#jobs tbody .badge:not(.s-failed)")).to_have_count(0)

        # Open the failed report and read its traceback.
        await page.get_by_role("link", name="reports.build").click()
        await expect(page.locator("#job h1 .badge")).to_have_text("failed")
        trace = page.locator("pre.trace").first
        await expect(trace).to_contain_text("Traceback (most recent call last)")
        await expect(trace).to_contain_text("ValueError: report 7 has no rows yet")
        await page.screenshot(path=str(screenshots / "failed-job.png"), full_page=True)

        # The bug is fixed: retry, and watch the worker complete it (the fragment polls).
        FIXED.set()
        await page.evaluate("window.__same_document = true")  # gone if the page reloads
        await page.get_by_role("button", name="Retry").click()
        await expect(page.locator(".flash")).to_contain_text("retried")
        await expect(page.locator("#job h1 .badge")).to_have_text("completed", timeout=20_000)
        await expect(page.locator("ol.history")).to_contain_text("retried")
        assert await page.evaluate("window.__same_document") is True  # htmx swapped, no reload

        # Hostile args and error text are shown as text and never run.
        await page.goto(f"{served.url}/dashboard/jobs?task=security.hostile")
        await page.get_by_role("link", name="security.hostile").click()
        await expect(page.locator("pre.args")).to_contain_text(XSS_ARG)
        await expect(page.locator("details.error summary").first).to_contain_text(XSS_ERROR)
        assert await page.evaluate("window.__xss") is None
        assert await page.locator("#job img").count() == 0
        assert dialogs == []
        assert errors == []
        await context.close()
    assert (screenshots / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
