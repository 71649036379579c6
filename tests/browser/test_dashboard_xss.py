"""Hostile text in every place the dashboard shows job data, in real Chromium: all inert.

Args, kwargs, error messages, tracebacks and task names come from the store; queue, task,
state and search filters are echoed from the URL. Each payload would set ``window.__xss``,
open a dialog or add an element if it ever ran or parsed as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from browser.serving import ServedApp
from taskward import TaskManager
from taskward.web import AdminAuth, create_app

pytestmark = pytest.mark.security

USER, PASSWORD = "ops", "xss-test-password"
PAYLOADS = [
    "<script>window.__xss = 1</script>",
    "<img src=x onerror=\"window.__xss = 2; alert('img')\">",
    '"><svg onload="window.__xss = 3">',
    "'); window.__xss = 4; ('",
    '</pre></textarea><iframe srcdoc="<script>parent.__xss = 5</script>"></iframe>',
    "javascript:window.__xss = 6",
    '{{ 7 * 7 }}<a href="javascript:window.__xss = 7" id="xss-link">x</a>',
]
HOSTILE_TASK = '<img src=x onerror="window.__xss = 8">'


def hostile(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError(" ".join(PAYLOADS))


async def seed(url: str) -> int:
    async with TaskManager(url) as tw:
        tw.task(name=HOSTILE_TASK, queue="xss", max_attempts=1)(hostile)
        job = await tw.enqueue_task(
            HOSTILE_TASK, args=PAYLOADS, kwargs={p[:12]: p for p in PAYLOADS}, tags=["<b>t</b>"]
        )
        await tw.drain(["xss"], timeout=30)
        return job.id


async def test_hostile_job_data_and_filters_render_inert(browser: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    job_id = await seed(url)
    app = create_app(TaskManager(url), auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD}
        )
        page = await context.new_page()
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        echoed = {"q": PAYLOADS[0], "task": PAYLOADS[2], "queue": PAYLOADS[1], "state": "failed"}
        pages = [
            "/dashboard",
            "/dashboard/jobs",
            "/dashboard/dead",
            f"/dashboard/jobs/{job_id}",
            f"/dashboard/jobs?{urlencode({'task': HOSTILE_TASK})}",
            f"/dashboard/jobs?{urlencode(echoed)}",
            f"/dashboard/dead?{urlencode({'q': PAYLOADS[3], 'task': PAYLOADS[4]})}",
            f"/dashboard/jobs?{urlencode({'state': PAYLOADS[5]})}",
        ]
        shown: dict[str, str] = {}
        for path in pages:
            response = await page.goto(served.url + path)
            assert response is not None
            await page.wait_for_load_state("networkidle")
            shown[path] = await page.locator("body").inner_text()
            assert await page.evaluate("window.__xss") is None, path
            injected = "img[src=x], svg[onload], iframe, #xss-link, script:not([src])"
            assert await page.locator(injected).count() == 0, path
        await context.close()
    assert dialogs == []
    assert errors == []
    # The payloads were on the pages, as text.
    detail = shown[f"/dashboard/jobs/{job_id}"]
    assert HOSTILE_TASK in detail
    assert all(p in detail for p in PAYLOADS[:3])  # in the args and in the error
    assert "Traceback (most recent call last)" in detail
    assert HOSTILE_TASK in shown["/dashboard/jobs"]
    assert "{{ 7 * 7 }}" in detail  # shown as typed: no template evaluation either
    filtered = shown[f"/dashboard/jobs?{urlencode({'task': HOSTILE_TASK})}"]
    assert HOSTILE_TASK in filtered
