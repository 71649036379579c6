"""The overview's run times and throughput chart, in real headless Chromium.

A SQLite store where ``reports.build`` completed 20 runs of 1 to 20 s over the last hour (one
every two minutes), one slow run failed (failures are not timed), and 150 ``emails.send`` jobs
finished in one minute: a burst. The tasks table shows p50 10.0 s and p95 19.0 s; the chart is
readable at 1,400 and at 400 px (tall enough, a label every 15 minutes that does not collide,
the burst cut and marked rather than flattening the hour), and the page never scrolls sideways.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from browser.serving import ServedApp
from taskward import FrozenClock, TaskManager
from taskward.backends import Backend
from taskward.backoff import ConstantBackoff
from taskward.clock import utcnow
from taskward.states import Completed, Failed, Outcome, next_update
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "runtime-test-password"
BURST = 150
POLICY = ConstantBackoff(30)


def build(n: int) -> int:
    return n


def send(to: str) -> None:
    return None


async def run(
    backend: Backend, queue: str, *, started: datetime, seconds: float, outcome: Outcome
) -> int:
    """Claim every pending job of ``queue`` at ``started``; end each ``seconds`` later."""
    jobs = await backend.fetch(
        queue=queue,
        limit=1000,
        worker_id="w1",
        now=started,
        lease_until=started + timedelta(hours=2),
    )
    ended = started + timedelta(seconds=seconds)
    updates = [next_update(job, outcome, ended, POLICY) for job in jobs]
    assert all(await backend.finish(updates, worker_id="w1"))
    return len(jobs)


async def seed(url: str) -> None:
    """The store of the module docstring, finished at known times before now."""
    now = utcnow()
    clock = FrozenClock(now - timedelta(minutes=55))
    async with TaskManager(url, clock=clock) as past:
        past.task(name="reports.build", queue="reports", max_attempts=1)(build)
        past.task(name="emails.send", queue="emails")(send)
        backend = await past._backend()
        for n, seconds in enumerate(range(1, 21)):
            ends = now - timedelta(minutes=50 - 2 * n)
            clock.set(ends - timedelta(seconds=seconds + 1))
            await past.enqueue_task("reports.build", args=[n])
            started = ends - timedelta(seconds=seconds)
            assert await run(
                backend, "reports", started=started, seconds=seconds, outcome=Completed()
            )
        clock.set(now - timedelta(minutes=9))
        await past.enqueue_task("reports.build", args=[99])
        assert await run(
            backend,
            "reports",
            started=now - timedelta(minutes=9),
            seconds=300,
            outcome=Failed("Slow", "gave up"),
        )
        # In a minute of its own: the last report ended 12 minutes ago, the failed one 4.
        clock.set(now - timedelta(minutes=8))
        await past.enqueue_many("emails.send", [[f"u{n}@example.com"] for n in range(BURST)])
        started = now - timedelta(minutes=7)
        assert await run(backend, "emails", started=started, seconds=0.2, outcome=Completed()) == (
            BURST
        )


async def overflow(page: Any) -> tuple[int, int]:
    width = await page.evaluate("document.documentElement.scrollWidth")
    inner = await page.evaluate("window.innerWidth")
    return int(width), int(inner)


async def test_run_times_and_a_chart_that_reads_on_any_screen(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    await seed(url)
    web = TaskManager(url)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as served:
        for width in (1400, 400, 360):
            await check_overview(browser, served.url, width, screenshots)


async def check_overview(browser: Any, url: str, width: int, screenshots: Path) -> None:
    """The run times, the chart and the page's width, at ``width`` px."""
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    context = await browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": width, "height": 900},
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{url}/dashboard")
    await expect(page.locator("h1")).to_have_text("Overview")

    # 21 runs, 1 failed: the 20 successful ones are timed (1..20 s).
    reports = page.locator("#tasks tr.task", has_text="reports.build")
    await expect(reports.locator("td.run-time")).to_have_text("p50 10.0 s · p95 19.0 s")
    emails = page.locator("#tasks tr.task", has_text="emails.send")
    await expect(emails.locator("td.run-time")).to_have_text("p50 200 ms · p95 200 ms")

    chart = page.locator("svg.chart")
    await expect(chart).to_be_visible()
    box = await chart.bounding_box()
    assert box is not None
    assert box["height"] >= 100, (width, box)
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    # A label every 15 minutes (3 or 4 in an hour) and "now", side by side, none cut.
    labels = chart.locator("text.time")
    count = await labels.count()
    assert count >= 4, count
    boxes = [await labels.nth(i).bounding_box() for i in range(count)]
    spans = sorted((b["x"], b["x"] + b["width"]) for b in boxes if b is not None)
    assert len(spans) == count
    for (_, right), (left, _) in itertools.pairwise(spans):
        assert right <= left, (width, spans)
    assert spans[0][0] >= box["x"] - 1
    assert spans[-1][1] <= box["x"] + box["width"] + 1
    assert await labels.nth(count - 1).text_content() == "now"
    # The burst is cut and marked; the hour's ordinary minutes fill the scale.
    over = chart.locator("g.bar.over")
    await expect(over).to_have_count(1)
    assert f"{BURST} completed" in (await over.locator("title").text_content() or "")
    await expect(chart.locator("rect.cap")).to_have_count(1)
    await expect(chart.locator("text.y-top")).to_have_text("1 job/min")
    tall = await chart.locator("g.bar:not(.over) rect.ok").first.bounding_box()
    assert tall is not None
    assert tall["height"] >= 100, tall  # a one-job minute is the full plot, not ~1 %
    await expect(page.locator(".legend")).to_contain_text("peak 150/min")

    scroll, inner = await overflow(page)
    assert scroll <= inner, f"overview at {width} px: {scroll} px wide"
    await page.screenshot(path=str(screenshots / f"overview-runtime-{width}.png"), full_page=True)
    assert errors == []
    await context.close()
