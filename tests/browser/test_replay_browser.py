"""The job page's "Edit and retry" form in real Chromium: JSON checked before it is sent,
the job run with the new arguments, a secret never on the page, a hostile note inert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser.serving import ServedApp
from taskward import JobState, TaskManager
from taskward.web import AdminAuth, create_app

pytestmark = pytest.mark.security

USER, PASSWORD = "ops", "replay-test-password"
HOSTILE_NOTE = (
    "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2; alert('x')\">"
    '</textarea><svg onload="window.__xss = 3">'
)


def register(tw: TaskManager) -> None:
    @tw.task(name="replay.div", queue="math", max_attempts=1)
    def div(a: float, b: float) -> float:
        return a / b

    @tw.task(name="replay.login", queue="math", max_attempts=1, sensitive=("password",))
    def login(user: str, password: str) -> str:
        raise ConnectionError(f"cannot log {user} in")


async def seed(url: str) -> tuple[int, int]:
    async with TaskManager(url) as tw:
        register(tw)
        div = await tw.enqueue_task("replay.div", args=[1, 0])
        login = await tw.enqueue_task("replay.login", args=["ada", "hunter2-secret"])
        await tw.drain(["math"], timeout=30)
        return div.id, login.id


async def test_edit_args_in_the_form_and_the_job_runs_with_them(
    browser: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    div_id, login_id = await seed(url)
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

        # A secret is shown as *** in the form, never in clear.
        await page.goto(f"{served.url}/dashboard/jobs/{login_id}")
        login_args = await page.locator("textarea[name=args]").input_value()
        assert '"***"' in login_args
        assert "hunter2-secret" not in await page.content()

        await page.goto(f"{served.url}/dashboard/jobs/{div_id}")
        form = page.locator("form[data-replay-form]")
        args = form.locator("textarea[name=args]")
        assert _numbers(await args.input_value()) == [1, 0]
        # Bad JSON: stopped in the browser, with the reason; nothing is sent.
        await args.fill("[1, ")
        await form.locator("button[type=submit]").click()
        error = form.locator(".replay-error")
        assert await error.is_visible()
        assert "args is not valid JSON" in await error.inner_text()
        assert page.url.endswith(f"/dashboard/jobs/{div_id}")
        await args.fill('{"a": 1}')
        await form.locator("button[type=submit]").click()
        assert "must be a JSON list" in await error.inner_text()
        async with TaskManager(url) as tw:
            assert (await tw.get_task_status(div_id)).state is JobState.FAILED

        # Good JSON and a hostile note: sent with the CSRF token, the job retried.
        await args.fill("[1, 4]")
        await form.locator("input[name=note]").fill(HOSTILE_NOTE)
        async with page.expect_navigation():
            await form.locator("button[type=submit]").click()
        assert "retried (args changed)" in await page.locator(".flash").first.inner_text()

    async with TaskManager(url) as tw:
        register(tw)
        await tw.drain(["math"], timeout=30)
        done = await tw.get_task_status(div_id)
    assert (done.state, done.args, done.result) == (JobState.COMPLETED, [1, 4], 0.25)

    with ServedApp(
        create_app(TaskManager(url), auth=AdminAuth(username=USER, password=PASSWORD))
    ) as served:
        page = await context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{served.url}/dashboard/jobs/{div_id}")
        await page.wait_for_load_state("networkidle")
        history = await page.locator("ol.replays").inner_text()
        assert HOSTILE_NOTE in history  # shown as text
        assert '"args": [1, 0]' in history  # what the replay replaced
        assert await page.evaluate("window.__xss") is None
        injected = "img[src=x], svg[onload], script:not([src])"
        assert await page.locator(injected).count() == 0
        await context.close()
    assert dialogs == []
    assert errors == []


def _numbers(text: str) -> list[Any]:
    import json

    value: list[Any] = json.loads(text)
    return value
