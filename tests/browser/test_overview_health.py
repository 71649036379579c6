"""The overview puts health first, in real headless Chromium.

A SQLite store seeded as an operator would find it: a ``media`` job that has been running for
ten minutes past its 60 s timeout (claimed by a worker that went away; its lease still runs,
so only its timeout gives it away), a ``reports`` queue whose oldest job has waited two
minutes while its own threshold says one minute (``health_thresholds=`` on the manager), and
an ``emails`` queue with a fresh job. The overview flags the first two (verdict, reason, the
stuck job linked, the age of the oldest job), and Pause asks for confirmation naming the
queue: dismissed, nothing is sent; accepted, the queue is paused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from browser.serving import ServedApp
from taskward import FrozenClock, TaskManager
from taskward.clock import utcnow
from taskward.health import DEFAULT_DEGRADED, HealthThresholds, QueueThresholds
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "health-test-password"

# No worker serves these queues on purpose: min_workers off, so each verdict has one cause.
DEGRADED = dataclasses.replace(DEFAULT_DEGRADED, min_workers=None)
THRESHOLDS = HealthThresholds(
    degraded=DEGRADED,
    queues={
        "reports": QueueThresholds(degraded=dataclasses.replace(DEGRADED, max_oldest_due_age=60.0))
    },
)


def encode(name: str) -> None:
    return None


def build(n: int) -> int:
    return n


def send(to: str) -> None:
    return None


async def seed(url: str) -> int:
    """The store of the module docstring; returns the stuck job's id."""
    now = utcnow()
    clock = FrozenClock(now - timedelta(minutes=10))
    async with TaskManager(url, clock=clock) as past:
        past.task(name="media.encode", queue="media", timeout=60)(encode)
        past.task(name="reports.build", queue="reports")(build)
        past.task(name="emails.send", queue="emails")(send)
        stuck = await past.enqueue_task("media.encode", args=["film.mp4"])
        backend = await past._backend()
        [running] = await backend.fetch(
            queue="media",
            limit=1,
            worker_id="gone-worker",
            now=clock.now(),
            lease_until=now + timedelta(hours=1),
        )
        assert running.id == stuck.id
        clock.set(now - timedelta(minutes=2))
        await past.enqueue_many("reports.build", [[n] for n in range(3)])
    async with TaskManager(url) as present:
        present.task(name="emails.send", queue="emails")(send)
        await present.enqueue_task("emails.send", args=["ada@example.com"])
    return stuck.id


async def test_the_overview_flags_a_stuck_job_and_an_old_backlog_and_pause_asks_first(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine, not a slow page
    url = f"sqlite:///{tmp_path}/jobs.db"
    stuck_id = await seed(url)
    web = TaskManager(url, health_thresholds=THRESHOLDS)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1400, "height": 900},
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

        await page.goto(f"{served.url}/dashboard")
        await expect(page.locator("h1")).to_have_text("Overview")
        overall = page.locator("#overview a.card", has_text="health")
        await expect(overall.locator(".num")).to_have_text("degraded")

        # The job running past its timeout: the queue is degraded, the job counted and linked.
        media = page.locator('#overview tr[data-queue="media"]')
        await expect(media).to_have_class("queue v-degraded")
        await expect(media.locator(".verdict")).to_have_text("degraded")
        await expect(media.locator(".reason")).to_have_text("1 stuck (over 0)")
        await expect(media.locator(".reason")).to_have_attribute(
            "title", "stuck running jobs: 1 (degraded above 0)"
        )
        await expect(media.locator("td.stuck a.badge")).to_have_text("1")
        link = media.locator("td.stuck a.stuck-job")
        await expect(link).to_have_text(f"#{stuck_id}")
        await expect(link).to_have_attribute("href", f"/dashboard/jobs/{stuck_id}")

        # The queue whose oldest job waited past its own threshold (60 s, not the default 300).
        reports = page.locator('#overview tr[data-queue="reports"]')
        await expect(reports).to_have_class("queue v-degraded")
        await expect(reports.locator("td.oldest-due")).to_have_text("2 min")
        await expect(reports.locator(".reason")).to_have_text("waited 2 min (over 1 min)")
        title = await reports.locator(".reason").get_attribute("title") or ""
        # 120-something seconds, past the queue's own 60 s (not the default 300 s).
        assert re.fullmatch(r"oldest due job waited 1\d\d s \(degraded above 60 s\)", title)
        await expect(reports.locator("td.backlog")).to_have_text("3")

        emails = page.locator('#overview tr[data-queue="emails"]')
        await expect(emails).to_have_class("queue v-ok")
        await expect(emails.locator(".verdict")).to_have_text("ok")
        await page.screenshot(path=str(screenshots / "overview-health.png"), full_page=True)

        # Pause asks first, naming the queue; dismissed, nothing is sent.
        dialogs: list[str] = []
        dismissed = asyncio.Event()

        def dismiss(dialog: Any) -> Any:
            dialogs.append(dialog.message)
            dismissed.set()
            return dialog.dismiss()

        page.once("dialog", dismiss)
        await emails.get_by_role("button", name="Pause").click()
        await asyncio.wait_for(dismissed.wait(), 15)
        assert dialogs == ["Pause queue emails? Its jobs will not start until it is resumed."]
        await expect(emails.get_by_role("button", name="Pause")).to_be_visible()

        def accept(dialog: Any) -> Any:
            dialogs.append(dialog.message)
            return dialog.accept()

        page.once("dialog", accept)
        await emails.get_by_role("button", name="Pause").click()
        await expect(page.locator(".flash")).to_have_text("queue emails paused")
        await expect(emails.locator(".badge.s-paused")).to_have_text("paused")
        await expect(emails.get_by_role("button", name="Resume")).to_be_visible()
        assert dialogs[1] == dialogs[0]
        # Exactly one POST: the accepted one (a dismissed pause would have been sent first).
        assert [p for p in posts if "/queues/" in p] == [
            f"{served.url}/dashboard/queues/emails/pause"
        ]
        assert errors == []
        await context.close()
    async with TaskManager(url) as check:
        assert (await check.get_statistics())["paused"] == ["emails"]
