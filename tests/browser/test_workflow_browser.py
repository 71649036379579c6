"""The workflow page in real headless Chromium, against a real worker on a shared SQLite store.

The story: a diamond workflow (extract → clean and score → report) with a finalizer runs on a
worker; "score" hangs. The operator opens a step's job page, follows the link to its
workflow, reads the graph (a box per step, an arrow per dependency, states as they change),
cancels the workflow, and watches the hung step stop and the finalizer still run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from browser.serving import LoopThread, ServedApp
from taskward import TaskManager, Workflow
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "browser-test-password"


def register(tw: TaskManager) -> dict[str, Any]:
    @tw.task(name="etl.extract", queue="etl")
    async def extract(day: str) -> list[int]:
        return [1, 2, 3]

    @tw.task(name="etl.clean", queue="etl")
    async def clean(rows: list[int]) -> int:
        return len(rows)

    @tw.task(name="etl.score", queue="etl", timeout=600)
    async def score(rows: list[int]) -> None:
        await asyncio.sleep(600)  # hangs until the operator cancels the workflow

    @tw.task(name="etl.report", queue="etl")
    async def report(values: list[Any]) -> None:
        return None

    @tw.task(name="etl.notify", queue="etl")
    async def notify(outcome: dict[str, Any]) -> str:
        return f"cancelled: {', '.join(outcome['cancelled'])}"

    return {"extract": extract, "clean": clean, "score": score, "report": report, "notify": notify}


def worker_main(url: str) -> Any:
    async def main(stop: asyncio.Event) -> None:
        tw = TaskManager(url, poll_interval=0.1, lease_seconds=5)
        t = register(tw)
        flow = Workflow("nightly <etl>")
        a = flow.add(t["extract"].s("2026-12-06"), name="extract")
        b = flow.add(t["clean"].s().set(pass_result=True), depends_on=[a], name="clean")
        c = flow.add(t["score"].s().set(pass_result=True), depends_on=[a], name="score")
        flow.add(t["report"].s().set(pass_result=True), depends_on=[b, c], name="report")
        flow.finally_(t["notify"].s().set(pass_result=True), name="notify")
        await tw.enqueue_workflow(flow)
        worker = tw.make_worker({"etl": 4})
        run = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await stop.wait()
        worker.stop()
        await run
        await tw.close()

    return main


async def wait_for_running(base: str) -> int:
    """The id of the running "score" job, once the worker has started it."""
    auth = httpx.BasicAuth(USER, PASSWORD)
    async with httpx.AsyncClient(base_url=base, auth=auth) as client:
        for _ in range(300):
            page = (await client.get("/api/jobs", params={"state": "running"})).json()
            if page["items"]:
                return int(page["items"][0]["id"])
            await asyncio.sleep(0.1)
    raise AssertionError("the score step did not start within 30 s")


async def test_operator_reads_and_cancels_a_workflow(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    url = f"sqlite:///{tmp_path}/jobs.db"
    web = TaskManager(url)
    app = create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))
    with LoopThread(worker_main(url)), ServedApp(app) as served:
        running = await wait_for_running(served.url)
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1280, "height": 900},
        )
        page = await context.new_page()
        dialogs: list[str] = []

        async def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            await dialog.accept()

        page.on("dialog", lambda d: asyncio.ensure_future(accept(d)))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # From the hung step's page to its workflow.
        await page.goto(f"{served.url}/dashboard/jobs/{running}")
        await expect(page.locator("#job h1 .badge")).to_have_text("running")
        await page.locator(".workflow-link a").click()
        await expect(page.locator("h1")).to_contain_text("nightly <etl>")
        await expect(page.locator("h1 .badge")).to_have_text("running")

        # The graph: five boxes, five arrows (extract→clean, extract→score, clean→report,
        # score→report) plus the finalizer's four, and each box's state.
        graph = page.locator("svg.wfgraph")
        await expect(graph.locator("a.step")).to_have_count(5)
        await expect(graph.locator("path.edge")).to_have_count(4 + 4)
        states = {
            name: await graph.locator(f'a.step[data-step="{name}"]').get_attribute("data-state")
            for name in ("extract", "clean", "score", "report", "notify")
        }
        assert states == {
            "extract": "completed",
            "clean": "completed",
            "score": "running",
            "report": "blocked",
            "notify": "blocked",
        }
        box = await graph.bounding_box()
        assert box is not None
        assert box["height"] > 100  # drawn at its size, not squeezed
        await page.screenshot(path=str(screenshots / "workflow.png"), full_page=True)

        # Cancel: the blocked report is cancelled, the hung step stops, the finalizer runs.
        await page.get_by_role("button", name="Cancel workflow").click()
        await expect(page.locator(".flash")).to_contain_text("cancelled")
        assert dialogs
        assert "finalizer" in dialogs[0]
        for _ in range(100):
            await page.reload()
            if await page.locator("h1 .badge").inner_text() == "cancelled":
                break
            await asyncio.sleep(0.2)
        await expect(page.locator("h1 .badge")).to_have_text("cancelled")
        final = {
            name: await graph.locator(f'a.step[data-step="{name}"]').get_attribute("data-state")
            for name in ("extract", "clean", "score", "report", "notify")
        }
        assert final == {
            "extract": "completed",
            "clean": "completed",
            "score": "cancelled",
            "report": "cancelled",
            "notify": "completed",
        }
        notify = await web.get_workflow(int(page.url.rsplit("/", 1)[-1].split("?")[0]))
        assert notify.step("notify").job.result == "cancelled: score, report"
        # The steps' jobs, filtered by workflow.
        await page.get_by_role("link", name="Its jobs").click()
        await expect(page.locator("#jobs tbody tr")).to_have_count(5)
        assert errors == []
        await context.close()
    await web.close()
