"""The job lists' selection and bulk actions in real headless Chromium (issue 26).

A store with 30 dead letters that timed out and 4 discarded ones in queue "ops", 5 more dead
letters in queue "side", and 4 jobs waiting in queue "hold" (no worker runs). At 1,400 and
400 px both lists fit the screen with their checkboxes and action bar. The list's 3-second
poll pauses while a row is ticked and resumes once none is. A selection of 3 dead letters is
confirmed as 3 and retries exactly those; "select all matching" on the ops dead letters (two
pages) confirms 34 with "include discarded" and 30 without, and retries exactly the 30 failed
ones; a selection of waiting jobs is cancelled, another deleted. The store is checked after
each step; screenshots of each page at both widths go to the ``screenshots`` folder.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from browser.serving import ServedApp
from taskward import JobState, TaskManager
from taskward.web import AdminAuth, create_app
from web.jobs_bulk_seed import seed_dead

USER, PASSWORD = "ops", "bulk-test-password"


async def seed(url: str) -> dict[str, list[int]]:
    async with TaskManager(url) as tw:
        ops = await seed_dead(tw, timeouts=30, values=0, discarded=4)
        side = await seed_dead(tw, timeouts=0, values=5, discarded=0, queue="side")
        tw.task(name="ops.later", queue="hold")(lambda n: n)
        hold = [job.id for job in await tw.enqueue_many("ops.later", [[n] for n in range(4)])]
        # One running with progress and a timeout, one due later: the "When" column's cases.
        tw.task(name="ops.long", queue="busy", timeout=600)(lambda n: n)
        await tw.enqueue_task("ops.long", args=[1])
        await tw.enqueue_task("ops.long", args=[2], delay=300)
        now = tw.clock.now()
        (running,) = await tw.backend.fetch(
            queue="busy", limit=1, worker_id="w", now=now, lease_until=now + timedelta(hours=1)
        )
        await tw.backend.set_progress(running.id, {"done": 30, "total": 120}, worker_id="w")
        return {
            "failed": ops["timeout"],
            "discarded": ops["discard"],
            "side": side["value"],
            "hold": hold,
        }


async def states(url: str, ids: list[int]) -> list[JobState | None]:
    async with TaskManager(url) as tw:
        found = {job.id: job.state for job in (await tw.list_tasks(per_page=1000)).items}
    return [found.get(i) for i in ids]


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path}/jobs.db"
    ids = await seed(url)
    web = TaskManager(url)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as server:
        yield server, url, ids
    await web.close()


async def open_page(browser: Any, width: int) -> tuple[Any, Any, list[str]]:
    context = await browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": width, "height": 900},
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return context, page, problems


def row_box(page: Any, job_id: int) -> Any:
    return page.get_by_role("checkbox", name=f"Select job {job_id}", exact=True)


async def test_lists_fit_both_widths_with_their_controls(
    browser: Any, served: Any, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, _, _ = served
    for width in (1400, 400):
        context, page, problems = await open_page(browser, width)
        for name, path in (("jobs", "/dashboard/jobs"), ("dead", "/dashboard/dead")):
            await page.goto(server.url + path)
            if name == "jobs":
                when = page.locator("td.when")
                await expect(when.filter(has_text="running for")).to_have_count(1)
                await expect(when.locator("progress")).to_have_attribute("value", "30.0")
                await expect(when.filter(has_text="timeout 10 min")).to_have_count(1)
                await expect(when.filter(has_text="due in 4 min")).to_have_count(1)
                await expect(when.filter(has_text="waiting for")).to_have_count(4)
                title = await when.locator("time").first.get_attribute("title")
                assert title is not None
                assert title.endswith(" UTC")
            await expect(page.locator("#jobs tbody tr").first).to_be_visible()
            await expect(page.locator("form#bulk")).to_be_visible()
            await expect(page.get_by_role("button", name="Retry", exact=True)).to_be_visible()
            await expect(page.locator("#jobs tbody input[name=id]").first).to_be_visible()
            await expect(
                page.get_by_role("checkbox", name="Select every job on this page")
            ).to_be_visible()
            scroll = await page.evaluate("document.documentElement.scrollWidth")
            inner = await page.evaluate("window.innerWidth")
            assert scroll <= inner, f"{name} at {width} px: the page is {scroll} px wide"
            if width == 1400:  # a wide screen shows every column, none scrolled away
                wrapper = page.locator(".scroll:has(> table.jobs)")
                sizes = await wrapper.evaluate("e => [e.scrollWidth, e.clientWidth]")
                assert sizes[0] <= sizes[1], f"{name}: the table is {sizes[0]} px wide"
            await page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True)
        await page.goto(server.url + "/dashboard/dead")
        kinds = page.locator("nav.kinds")
        await expect(kinds).to_contain_text("TimeoutError 30")
        await expect(kinds).to_contain_text("ValueError 5")
        await expect(kinds).to_contain_text("Discarded 4")
        assert problems == []
        await context.close()
    assert (screenshots / "dead-400.png").read_bytes()[:4] == b"\x89PNG"


async def test_the_poll_keeps_a_selection(browser: Any, served: Any) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, _, ids = served
    context, page, problems = await open_page(browser, 1400)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/fragments/dead" in r.url else None)
    await page.goto(server.url + "/dashboard/dead?queue=side")
    async with page.expect_request(lambda r: "/fragments/dead" in r.url, timeout=8_000):
        pass  # the list polls while nothing is ticked
    box = row_box(page, ids["side"][0])
    await box.check()
    polled = len(polls)
    await page.wait_for_timeout(4_000)  # more than one poll interval (3 s)
    await expect(box).to_be_checked()
    assert len(polls) == polled, "the list polled while a row was ticked"
    await expect(page.locator("[data-bulk-count]")).to_have_text("1 job selected:")
    await box.uncheck()
    async with page.expect_request(lambda r: "/fragments/dead" in r.url, timeout=8_000):
        pass  # and polls again once none is
    assert problems == []
    await context.close()


async def test_a_poll_in_flight_keeps_a_selection(browser: Any, served: Any) -> None:
    """A poll sent before the first box is ticked answers after it: it must not swap in."""
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, _, ids = served
    context, page, problems = await open_page(browser, 1400)
    answered: list[str] = []

    async def slow(route: Any) -> None:
        response = await route.fetch()
        await asyncio.sleep(2)  # the operator ticks a row meanwhile
        await route.fulfill(response=response)
        answered.append(route.request.url)

    await page.goto(server.url + "/dashboard/dead?queue=side")
    await page.route("**/fragments/dead*", slow)
    async with page.expect_request(lambda r: "/fragments/dead" in r.url, timeout=8_000):
        pass  # a poll is on its way, delayed by 2 s
    box = row_box(page, ids["side"][0])
    await box.check()
    for _ in range(50):  # until the delayed answer was given
        if answered:
            break
        await page.wait_for_timeout(100)
    assert answered, "the delayed poll never finished"
    await page.wait_for_timeout(500)  # time for a swap, were one to happen
    await expect(box).to_be_checked()
    await expect(page.locator("[data-bulk-count]")).to_have_text("1 job selected:")
    await page.unroute("**/fragments/dead*")
    await box.uncheck()
    async with page.expect_request(lambda r: "/fragments/dead" in r.url, timeout=8_000):
        pass  # and polls again once none is
    assert problems == []
    await context.close()


async def test_a_selection_of_three_retries_exactly_three(browser: Any, served: Any) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, url, ids = served
    context, page, problems = await open_page(browser, 1400)
    await page.goto(server.url + "/dashboard/dead?queue=side")
    picked = ids["side"][:3]
    retry = page.get_by_role("button", name="Retry", exact=True)
    await expect(retry).to_be_disabled()  # nothing ticked yet
    for job_id in picked:
        await row_box(page, job_id).check()
    await expect(page.locator("[data-bulk-count]")).to_have_text("3 jobs selected:")
    await retry.click()
    await expect(page.locator("h1")).to_have_text("Retry 3 jobs?")
    assert await states(url, ids["side"]) == [JobState.FAILED] * 5  # nothing before the confirm
    await page.get_by_role("button", name="Retry 3 jobs").click()
    await expect(page.locator(".flash")).to_have_text("Retried 3 jobs")
    assert await states(url, ids["side"]) == [JobState.PENDING] * 3 + [JobState.FAILED] * 2
    assert problems == []
    await context.close()


async def test_all_matching_dead_letters_leave_discarded_out(
    browser: Any, served: Any, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, url, ids = served
    context, page, problems = await open_page(browser, 1400)
    listing = server.url + "/dashboard/dead?queue=ops"
    await page.goto(listing)
    await expect(page.locator(".pager")).to_contain_text("34 jobs")
    await expect(page.locator("#jobs tbody tr")).to_have_count(25)
    # With "include discarded": 34; then back, nothing changed.
    await page.get_by_role("checkbox", name="include discarded (4)").check()
    await page.get_by_role("checkbox", name="Select every job on this page").check()
    banner = page.locator("[data-bulk-banner]")
    await expect(banner).to_contain_text("All 25 jobs on this page are selected.")
    await page.get_by_role("button", name="Select all 34 matching").click()
    await expect(banner).to_contain_text("All 34 matching jobs are selected.")
    await page.get_by_role("button", name="Retry", exact=True).click()
    await expect(page.locator("h1")).to_have_text("Retry 34 jobs?")
    await page.screenshot(path=str(screenshots / "dead-confirm-1400.png"), full_page=True)
    await page.get_by_role("link", name="Back to the list").click()
    await expect(page.locator(".pager")).to_contain_text("34 jobs")
    assert set(await states(url, ids["failed"] + ids["discarded"])) == {
        JobState.FAILED,
        JobState.DISCARDED,
    }
    # Without it: the 30 failed ones, and exactly those change.
    await page.get_by_role("checkbox", name="Select every job on this page").check()
    await page.get_by_role("button", name="Select all 34 matching").click()
    await page.get_by_role("button", name="Retry", exact=True).click()
    await expect(page.locator("h1")).to_have_text("Retry 30 jobs?")
    await expect(page.locator(".left-out")).to_contain_text("4 discarded jobs left out")
    await page.get_by_role("button", name="Retry 30 jobs").click()
    await expect(page.locator(".flash")).to_have_text("Retried 30 jobs")
    assert set(await states(url, ids["failed"])) == {JobState.PENDING}
    assert set(await states(url, ids["discarded"])) == {JobState.DISCARDED}
    assert set(await states(url, ids["side"])) == {JobState.FAILED}  # another queue
    assert problems == []
    await context.close()


async def test_cancel_and_delete_a_selection(browser: Any, served: Any) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    server, url, ids = served
    context, page, problems = await open_page(browser, 400)
    hold = ids["hold"]
    await page.goto(server.url + "/dashboard/jobs?queue=hold")
    for job_id in hold[:2]:
        await row_box(page, job_id).check()
    await page.get_by_role("button", name="Cancel", exact=True).click()
    await expect(page.locator("h1")).to_have_text("Cancel 2 jobs?")
    await page.get_by_role("button", name="Cancel 2 jobs").click()
    await expect(page.locator(".flash")).to_have_text("Cancelled 2 jobs")
    assert await states(url, hold) == [JobState.CANCELLED] * 2 + [JobState.PENDING] * 2
    await page.goto(server.url + "/dashboard/jobs?queue=hold")
    await row_box(page, hold[0]).check()
    await row_box(page, hold[2]).check()
    await page.get_by_role("button", name="Delete", exact=True).click()
    await expect(page.locator("h1")).to_have_text("Delete 2 jobs?")
    await page.get_by_role("button", name="Delete 2 jobs").click()
    await expect(page.locator(".flash")).to_have_text("Deleted 2 jobs")
    assert await states(url, hold) == [None, JobState.CANCELLED, None, JobState.PENDING]
    assert problems == []
    await context.close()
