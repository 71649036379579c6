"""Hostile text in the fields issue 26 added to the dashboard, in real Chromium: all inert.

The error kinds that group dead letters, the task names offered as filter suggestions, a
running job's progress message and its user meta, a schedule's name and the names in the
overview's per-task table all come from the store. Each payload would set ``window.__xss``,
open a dialog or add an element if it ever ran or parsed as markup; each must show as text.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from browser.serving import ServedApp
from taskward import TaskManager
from taskward.web import AdminAuth, create_app

pytestmark = pytest.mark.security

USER, PASSWORD = "ops", "xss-fields-password"
KIND = '<img src=x onerror="window.__xss = 11">'
QUEUE = "xss.fields"  # queue names are checked at enqueue: no markup can be one
TASK = "<script>window.__xss = 13</script>"
PROGRESS = '</progress><iframe srcdoc="<script>parent.__xss = 14</script>"></iframe>'
META = '<a href="javascript:window.__xss = 15" id="xss-link">meta</a>'
SCHEDULE = '<b onmouseover="window.__xss = 16">nightly</b>'

# An exception class whose name is markup: the error kind stored is its name.
Hostile = type(KIND, (Exception,), {})


def fail(*args: Any) -> None:
    raise Hostile("boom")


def noop(*args: Any) -> None:
    return None


async def seed(url: str) -> int:
    async with TaskManager(url) as tw:
        tw.task(name=TASK, queue=QUEUE, max_attempts=1)(fail)
        tw.task(name="ok.run", queue="plain")(noop)
        for _ in range(3):
            await tw.enqueue_task(TASK, args=[1])
        await tw.drain([QUEUE], timeout=30)
        running = await tw.enqueue_task("ok.run", meta={"note": META, "taskward.x": 1})
        now = tw.clock.now()
        (claimed,) = await tw.backend.fetch(
            queue="plain",
            limit=1,
            worker_id="xss-worker",
            now=now,
            lease_until=now + timedelta(minutes=10),
        )
        assert claimed.id == running.id
        progress = {"done": 3, "total": 10, "message": PROGRESS}
        assert await tw.backend.set_progress(running.id, progress, worker_id="xss-worker")
        await tw.schedule_recurring_task(SCHEDULE, "ok.run", cron="0 3 * * *")
        return running.id


async def test_operator_fields_render_inert(browser: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fields.db"
    running_id = await seed(url)
    tw = TaskManager(url)
    tw.task(name="ok.run", queue="plain")(noop)  # run now needs the task registered here
    app = create_app(tw, auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD}
        )
        page = await context.new_page()
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        paths = [
            "/dashboard",
            "/dashboard/jobs",
            "/dashboard/dead",
            f"/dashboard/dead?error_kind={quote(KIND)}",
            f"/dashboard/jobs/{running_id}",
            "/dashboard/schedules",
        ]
        shown: dict[str, str] = {}
        for path in paths:
            response = await page.goto(served.url + path)
            assert response is not None
            assert response.status == 200, path
            await page.wait_for_load_state("networkidle")
            # textContent: folded sections (user meta) count too; markup would not be text.
            shown[path] = await page.evaluate("document.body.textContent")
            assert await page.evaluate("window.__xss") is None, path
            injected = (
                "img[src=x], svg[onload], iframe, #xss-link, script:not([src]), b[onmouseover]"
            )
            assert await page.locator(injected).count() == 0, path
            # The suggestions are option values: present as text, never as markup.
            options = await page.eval_on_selector_all(
                "datalist option", "(os) => os.map((o) => o.value)"
            )
            if path == "/dashboard/jobs":
                assert QUEUE in options
                assert TASK in options
        await context.close()
    assert dialogs == []
    assert errors == []
    assert KIND in shown["/dashboard/dead"]  # the group of dead letters by error kind
    assert TASK in shown["/dashboard"]  # the per-task table
    job_page = shown[f"/dashboard/jobs/{running_id}"]
    assert PROGRESS in job_page
    assert json.dumps(META)[1:-1] in job_page  # user meta, folded, as JSON text
    assert "taskward.x" not in job_page  # internal meta stays hidden
    assert SCHEDULE in shown["/dashboard/schedules"]
