"""The job page in real headless Chromium (issue 26): state and error first, on any screen.

A SQLite store holds a dead job (a deep traceback, hostile error text, user meta with markup
and taskward's own meta), a job running on a worker that is gone (progress 3 of 10, a hostile
message), a scheduled job and a completed one. At 1,400 and 400 px: the page never scrolls
sideways, the newest traceback is above the arguments (and on the first screen of a 1400x900
window), no ``taskward.*`` meta is shown, each state offers its own actions, and no hostile
text runs. The running job's bar is at 30% and its "running for" advances between two polls.
Then, with a worker running, a retried job fails again at once: the banner says what was done
and when, and the page shows the state it read, which the banner does not contradict.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from browser.serving import LoopThread, ServedApp
from taskward import TaskManager
from taskward.clock import utcnow
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "job-page-test-password"
WIDTHS = (1400, 400)
XSS = [
    "<script>window.__xss = 1</script>",
    "<img src=x onerror=\"window.__xss = 2; alert('img')\">",
    '"><svg onload="window.__xss = 3">',
]
INJECTED = "main img, main svg[onload], main iframe, main script"


def fail_deep(depth: int, label: str = "") -> None:
    if depth:
        fail_deep(depth - 1, label)
    raise RuntimeError("the export broke: " + " ".join(XSS) + " " + "reason " * 40)


def encode(name: str, *, token: str = "") -> None:
    return None


def register(tw: TaskManager) -> None:
    tw.task(name="exports.fail_deep", queue="exports", max_attempts=1)(fail_deep)
    tw.task(name="media.encode", queue="media", timeout=600, sensitive=("token",))(encode)


async def seed(url: str) -> dict[str, int]:
    async with TaskManager(url) as tw:
        register(tw)
        meta = {"tenant": XSS[1], "taskward.internal": "INTERNAL-META-VALUE"}
        dead = await tw.enqueue_task(
            "exports.fail_deep", args=[30, "customer-" + "x" * 300], meta=meta
        )
        await tw.drain(["exports"], timeout=30)
        running = await tw.enqueue_task(
            "media.encode", args=["film.mp4"], kwargs={"token": "t0p"}, meta={"tenant": "acme"}
        )
        backend = await tw._backend()
        now = utcnow()
        [claimed] = await backend.fetch(
            queue="media", limit=1, worker_id="gone", now=now, lease_until=now + timedelta(hours=1)
        )
        assert claimed.id == running.id
        progress = {"done": 3, "total": 10, "message": XSS[0], "stage": XSS[2]}
        assert await backend.set_progress(running.id, progress, worker_id="gone")
        scheduled = await tw.enqueue_task("media.encode", args=["later.mp4"], delay=3600)
        return {"dead": dead.id, "running": running.id, "scheduled": scheduled.id}


async def overflow(page: Any) -> tuple[int, int]:
    width = await page.evaluate("document.documentElement.scrollWidth")
    inner = await page.evaluate("window.innerWidth")
    return int(width), int(inner)


async def buttons(page: Any) -> list[str]:
    names = await page.locator(".job-actions button, .job-actions a.btn").all_inner_texts()
    return [n.strip() for n in names]


async def test_job_page_state_and_error_first_on_any_screen(
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
    dialogs: list[str] = []
    with ServedApp(app) as served:
        for width in WIDTHS:
            context = await browser.new_context(
                http_credentials={"username": USER, "password": PASSWORD},
                viewport={"width": width, "height": 900},
            )
            page = await context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            # The dead job: its newest traceback above the arguments, on the first screen.
            await page.goto(f"{served.url}/dashboard/jobs/{ids['dead']}")
            await expect(page.locator("#job h1 .badge")).to_have_text("failed")
            trace = page.locator(".newest-error pre.trace")
            await expect(trace).to_contain_text("Traceback (most recent call last)")
            await expect(page.locator(".newest-error .error-message")).to_contain_text(XSS[0])
            trace_box = await trace.bounding_box()
            args_box = await page.locator("pre.args").bounding_box()
            assert trace_box is not None
            assert args_box is not None
            assert trace_box["y"] < args_box["y"], (width, trace_box, args_box)
            if width == 1400:
                assert trace_box["y"] < 900 - 40, f"the traceback starts at {trace_box['y']} px"
            # The traceback scrolls inside its own box rather than widening the page.
            scroll, inner = await overflow(page)
            assert scroll <= inner, f"dead job at {width} px: page is {scroll} px wide"
            text = await page.locator("main").inner_text()
            assert "taskward." not in text
            assert "INTERNAL-META-VALUE" not in text
            await expect(page.locator("details.job-meta")).not_to_have_attribute("open", "")
            await page.locator("details.job-meta summary").click()
            await expect(page.locator("pre.meta")).to_contain_text("<img src=x onerror=")  # text
            await expect(page.locator("dl.job-times")).to_contain_text("Died")
            assert await buttons(page) == ["Retry", "Edit & retry", "Delete"]
            await page.get_by_role("link", name="Edit & retry").click()
            await expect(page.locator("#edit-retry textarea[name=args]")).to_be_in_viewport()
            await page.screenshot(path=str(screenshots / f"job-dead-{width}.png"), full_page=True)

            # The running job: a bar at 30%, its timeout, "running for" advancing by polls.
            await page.goto(f"{served.url}/dashboard/jobs/{ids['running']}")
            bar = page.locator(".job-progress progress")
            await expect(bar).to_be_visible()
            assert await bar.evaluate("e => e.position") == 0.3
            await expect(page.locator(".progress-label")).to_have_text("3 / 10 (30%)")
            notes = page.locator(".progress-note")
            await expect(notes.first).to_have_text(XSS[2])
            await expect(notes.nth(1)).to_have_text(XSS[0])
            await expect(page.locator("dd.t-timeout")).to_have_text("10 min · from the job")
            running_for = page.locator("dd.t-running-for")
            first = (await running_for.inner_text()).strip()
            assert re.fullmatch(r"\d+ s", first), first
            meta = page.locator("details.job-meta")
            await meta.locator("summary").click()  # opened, it stays open across polls
            await expect(meta).to_have_attribute("open", "")
            await expect(running_for).not_to_have_text(first, timeout=10_000)  # polled again
            await expect(meta).to_have_attribute("open", "")
            await expect(page.locator("pre.meta")).to_contain_text("acme")
            await expect(page.locator("#job h1 .badge")).to_have_text("running")
            assert await buttons(page) == ["Ask to stop"]
            assert "taskward." not in await page.locator("main").inner_text()
            await expect(page.locator(".internal-note")).to_contain_text("***")
            scroll, inner = await overflow(page)
            assert scroll <= inner, f"running job at {width} px: page is {scroll} px wide"
            await page.screenshot(
                path=str(screenshots / f"job-running-{width}.png"), full_page=True
            )

            # The scheduled job: due in an hour, cancel or delete.
            await page.goto(f"{served.url}/dashboard/jobs/{ids['scheduled']}")
            await expect(page.locator("dd.t-due")).to_have_text(
                re.compile(r"^in (\d+ min|1 h) · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
            )
            assert await buttons(page) == ["Cancel", "Delete"]
            await expect(page.locator(".why .reason").first).to_be_visible()

            assert await page.evaluate("window.__xss") is None
            assert await page.locator(INJECTED).count() == 0
            assert dialogs == []
            assert errors == []
            await context.close()
    await web.close()


def seconds_of_day(at: time) -> int:
    return at.hour * 3600 + at.minute * 60 + at.second


def worker_main(url: str) -> Any:
    async def main(stop: asyncio.Event) -> None:
        tw = TaskManager(url, poll_interval=0.05, lease_seconds=5)
        register(tw)
        worker = tw.make_worker({"exports": 1})
        run = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await stop.wait()
        worker.stop()
        await run
        await tw.close()

    return main


async def test_the_banner_after_a_retry_agrees_with_the_page(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    url = f"sqlite:///{tmp_path}/jobs.db"
    ids = await seed(url)
    web = TaskManager(url)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    with LoopThread(worker_main(url)), ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1400, "height": 900},
        )
        page = await context.new_page()
        await page.goto(f"{served.url}/dashboard/jobs/{ids['dead']}")
        await expect(page.locator("#job h1 .badge")).to_have_text("failed")
        await page.get_by_role("button", name="Retry").click()
        flash = page.locator("p.flash[role=status]")
        await expect(flash).to_contain_text(f"job {ids['dead']} retried at")
        banner = (await flash.inner_text()).strip()
        assert re.fullmatch(
            rf"job {ids['dead']} retried at \d\d:\d\d:\d\d UTC: moved from failed to pending",
            banner,
        ), banner
        # The worker fails it again at once: the page (polled while it waits) ends up failed,
        # and the banner, a statement about a past moment, stays true beside it.
        await expect(page.locator("#job h1 .badge")).to_have_text("failed", timeout=20_000)
        await expect(page.locator("ol.history")).to_contain_text("retried")
        assert (await flash.inner_text()).strip() == banner
        async with TaskManager(url) as check:
            job = await check.get_task_status(ids["dead"])
        assert job.state.value == "failed"
        assert len(job.errors) == 2
        # The page was read after the retry it follows, and soon after: compared as times of
        # day modulo a day, since the banner has no date and the run may cross midnight.
        as_of = datetime.fromisoformat(await page.locator(".as-of time").get_attribute("datetime"))
        acted = time.fromisoformat(banner.split(" retried at ")[1][:8])
        since = (seconds_of_day(as_of.time()) - seconds_of_day(acted)) % 86400
        assert since < 120, (as_of, acted)
        await page.screenshot(path=str(screenshots / "job-retried-1400.png"), full_page=True)
        await context.close()
    await web.close()
