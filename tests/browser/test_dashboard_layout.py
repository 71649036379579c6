"""Every dashboard page fits any screen and follows the system's dark mode (issue 26).

A store with a few queues (one paused), jobs in several states (a failed one with a long
traceback, one with a long unbroken argument), a schedule and a workflow. Each page is opened
in real headless Chromium at 1,400, 400 and 360 px wide: the page itself never scrolls
sideways (wide tables scroll inside their panel), and every nav link can be reached, on a
narrow screen through the opened menu. A screenshot of each page at each width goes to
$TASKWARD_SCREENSHOTS (or the test's tmp_path) for a reviewer. In a dark colour scheme the
page background changes and the text stays readable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from browser.serving import ServedApp
from taskward import TaskManager, Workflow
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "layout-test-password"
LONG_ARG = "customer-" + "x" * 300  # no break opportunity: it must not widen the page
WIDTHS = (1400, 400, 360)  # 360: the narrowest phone the layout supports
NAV = ("Overview", "Jobs", "Dead letters", "Schedules")
# Form controls and buttons with no accessible name (a <label>, aria-label or visible text).
UNLABELLED = """
[...document.querySelectorAll("input:not([type=hidden]), select, textarea, button, summary")]
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
    && !e.textContent.trim())
  .map((e) => e.outerHTML.slice(0, 80))
"""


def fail_deep(depth: int) -> None:
    if depth:
        fail_deep(depth - 1)
    raise RuntimeError("the report could not be built: " + "reason " * 60)


def report(n: int, label: str = "") -> int:
    return n


def register(tw: TaskManager) -> dict[str, Any]:
    return {
        "fail": tw.task(name="reports.fail_deep", queue="reports", max_attempts=1)(fail_deep),
        "report": tw.task(name="reports.build", queue="reports")(report),
        "media": tw.task(name="media.resize_the_very_long_task_name", queue="media")(report),
        "mail": tw.task(name="emails.send", queue="emails")(report),
    }


async def seed(url: str) -> dict[str, int]:
    async with TaskManager(url) as tw:
        t = register(tw)
        failed = await tw.enqueue_task("reports.fail_deep", args=[25])
        done = await tw.enqueue_task("reports.build", args=[1])
        await tw.drain(["reports"], timeout=30)
        await tw.enqueue_task("media.resize_the_very_long_task_name", args=[2, LONG_ARG])
        await tw.enqueue_task("emails.send", args=[3], delay=3600)
        await tw.enqueue_task("emails.send", args=[4], kwargs={"label": LONG_ARG})
        await tw.pause_queue("emails")
        await tw.schedule_recurring_task(
            "nightly report for a rather long schedule name",
            "reports.build",
            cron="0 3 * * *",
            args=[5, LONG_ARG],
            timezone="Europe/Berlin",
        )
        flow = Workflow("nightly layout")
        a = flow.add(t["report"].s(6), name="extract")
        flow.add(t["media"].s(7, LONG_ARG), depends_on=[a], name="resize")
        record = await tw.enqueue_workflow(flow)
        return {"failed": failed.id, "done": done.id, "workflow": record.id}


def pages(ids: dict[str, int]) -> list[tuple[str, str]]:
    return [
        ("overview", "/dashboard"),
        ("jobs", "/dashboard/jobs"),
        ("dead", "/dashboard/dead"),
        ("schedules", "/dashboard/schedules"),
        ("job", f"/dashboard/jobs/{ids['failed']}"),
        ("workflow", f"/dashboard/workflows/{ids['workflow']}"),
        ("bad-filter", "/dashboard/jobs?state=" + "no-such-state-" * 20),
        ("not-found", "/dashboard/jobs/424242"),
    ]


def screenshot_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TASKWARD_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"layout screenshots: {folder}")
    return folder


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path}/jobs.db"
    ids = await seed(url)
    app = create_app(TaskManager(url), auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as server:
        yield server, ids


async def overflow(page: Any) -> tuple[int, int]:
    width = await page.evaluate("document.documentElement.scrollWidth")
    inner = await page.evaluate("window.innerWidth")
    return int(width), int(inner)


async def test_every_page_fits_wide_and_narrow_screens(
    browser: Any, served: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, ids = served
    folder = screenshot_folder(tmp_path)
    errors: list[str] = []
    for width in WIDTHS:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": width, "height": 900},
        )
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        for name, path in pages(ids):
            await page.goto(server.url + path)
            await expect(page.locator("main h1, main section").first).to_be_visible()
            scroll, inner = await overflow(page)
            assert scroll <= inner, f"{name} at {width} px: page is {scroll} px wide"
            unlabelled = await page.evaluate(UNLABELLED)
            assert unlabelled == [], f"{name}: controls without a label: {unlabelled}"
            menu = page.locator("details.menu")
            toggle = menu.locator("summary")
            if width < 640:
                # Folded into a button: the links appear once it is opened.
                await expect(menu).not_to_have_attribute("open", "")
                await expect(toggle).to_be_visible()
                await toggle.click()
                await expect(menu).to_have_attribute("open", "")
            else:
                await expect(toggle).to_be_hidden()
            for label in NAV:
                link = page.locator("header nav").get_by_role("link", name=label, exact=True)
                await expect(link).to_be_visible()
                box = await link.bounding_box()
                assert box is not None
                assert 0 <= box["x"] <= box["x"] + box["width"] <= inner, (name, width, label)
            scroll, inner = await overflow(page)
            assert scroll <= inner, f"{name} at {width} px with the menu open: {scroll} px"
            await page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        # The confirmation of a bulk action fits too (reached by its form, not an address).
        await page.goto(server.url + "/dashboard/dead")
        await page.get_by_role("button", name="Retry all matching…").click()
        await expect(page.locator("main h1")).to_contain_text("Retry")
        scroll, inner = await overflow(page)
        assert scroll <= inner, f"bulk confirmation at {width} px: page is {scroll} px wide"
        await page.screenshot(path=str(folder / f"bulk-confirm-{width}.png"), full_page=True)
        # A boosted navigation (htmx swaps the body) folds the menu again on a narrow screen.
        if width < 640:
            await page.goto(server.url + "/dashboard")
            await page.locator("details.menu summary").click()
            await page.locator("header nav").get_by_role("link", name="Jobs").click()
            await expect(page).to_have_url(server.url + "/dashboard/jobs")
            await expect(page.locator("details.menu")).not_to_have_attribute("open", "")
        assert errors == []
        await context.close()


async def test_wide_tables_scroll_inside_their_panel(browser: Any, served: Any) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, _ = served
    context = await browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 400, "height": 900},
    )
    page = await context.new_page()
    await page.goto(server.url + "/dashboard/jobs")
    table = page.locator("table.jobs")
    await expect(table).to_be_visible()
    wrapper = page.locator(".scroll:has(> table.jobs)")
    await expect(wrapper).to_have_count(1)
    sizes = await wrapper.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert sizes[0] > sizes[1], "the jobs table should be wider than its panel and scroll"
    # The chart keeps a readable height on a narrow screen.
    await page.goto(server.url + "/dashboard")
    chart = page.locator("svg.chart")
    await expect(chart).to_be_visible()
    box = await chart.bounding_box()
    assert box is not None
    assert box["height"] >= 100
    await context.close()


async def test_actions_show_a_focus_ring_for_the_keyboard(browser: Any, served: Any) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, ids = served
    context = await browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 1400, "height": 900},
    )
    page = await context.new_page()
    await page.goto(f"{server.url}/dashboard/jobs/{ids['failed']}")
    await expect(page.locator("#job h1 .badge")).to_have_text("failed")
    for _ in range(40):  # Tab until a button has the focus
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
    else:
        raise AssertionError("no button is reachable with Tab")
    style = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert style[0] != "none", style
    assert style[1] != "0px", style
    await context.close()


def _rgb(value: str) -> tuple[int, ...]:
    inside = value[value.index("(") + 1 : value.index(")")]
    return tuple(round(float(part)) for part in inside.replace("/", ",").split(",")[:3])


def _luminance(rgb: tuple[int, ...]) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def test_dark_mode_follows_the_system(browser: Any, served: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, ids = served
    folder = screenshot_folder(tmp_path)
    colours: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for scheme in ("light", "dark"):
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1400, "height": 900},
            color_scheme=scheme,
        )
        page = await context.new_page()
        for name, path in pages(ids):
            await page.goto(server.url + path)
            await expect(page.locator("main h1, main section").first).to_be_visible()
            body = await page.evaluate(
                "(() => { const s = getComputedStyle(document.body);"
                " return [s.backgroundColor, s.color]; })()"
            )
            background, text = _rgb(body[0]), _rgb(body[1])
            assert _contrast(background, text) >= 7, f"{scheme} {name}: {body}"
            if name == "overview":
                colours[scheme] = (background, text)
            if scheme == "dark":
                await page.screenshot(path=str(folder / f"{name}-dark.png"), full_page=True)
        # Panels and table cells follow the scheme too, and keep their text readable.
        await page.goto(server.url + "/dashboard/jobs")
        cell = await page.evaluate(
            "(() => { const p = document.querySelector('.panel, table.grid');"
            " const s = getComputedStyle(p); const t = getComputedStyle("
            "document.querySelector('table.grid td'));"
            " return [s.backgroundColor, t.color]; })()"
        )
        assert _contrast(_rgb(cell[0]), _rgb(cell[1])) >= 4.5, f"{scheme}: {cell}"
        await context.close()
    assert colours["dark"][0] != colours["light"][0]
    assert _luminance(colours["dark"][0]) < _luminance(colours["light"][0])
