"""The dashboard works under its Content-Security-Policy in real Chromium: no violation.

The policy forbids inline scripts, inline styles and eval, so anything the pages or htmx did
inline would be refused and reported. Chromium reports a refusal twice: a console message
("Refused to …") and a ``securitypolicyviolation`` event, which an init script (injected by
the browser's DevTools protocol, so outside the page's policy) records. The overview, the
jobs list and a job page are loaded and left to refresh through their htmx polls, and a
boosted form is posted; then a deliberate inline style proves the recording works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser.serving import ServedApp
from taskward import TaskManager
from taskward.web import AdminAuth, create_app

pytestmark = pytest.mark.security

USER, PASSWORD = "ops", "csp-test-password"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def fail(n: int) -> None:
    raise RuntimeError(f"report {n} failed")


def later(n: int) -> None:
    return None


async def seed(url: str) -> tuple[int, int]:
    """A failed job (errors, a retry button) and a scheduled one (its page keeps polling)."""
    async with TaskManager(url) as tw:
        tw.task(name="reports.fail", queue="reports", max_attempts=1)(fail)
        tw.task(name="reports.later", queue="reports")(later)
        failed = await tw.enqueue_task("reports.fail", args=[7])
        await tw.drain(["reports"], timeout=30)
        scheduled = await tw.enqueue_task("reports.later", args=[1], delay=3600)
        return failed.id, scheduled.id


def _policy_messages(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "Refused to" in m]


async def test_pages_and_their_refreshes_raise_no_csp_violation(
    browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    expect.set_options(timeout=15_000)
    url = f"sqlite:///{tmp_path}/jobs.db"
    failed_id, scheduled_id = await seed(url)
    app = create_app(TaskManager(url), auth=AdminAuth(username=USER, password=PASSWORD))
    with ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD}
        )
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        console: list[str] = []
        errors: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        polls = [
            ("/dashboard", "/dashboard/fragments/overview"),
            ("/dashboard/jobs", "/dashboard/fragments/jobs"),
            (f"/dashboard/jobs/{scheduled_id}", f"/dashboard/fragments/jobs/{scheduled_id}"),
        ]
        for path, fragment in polls:
            response = await page.goto(served.url + path)
            assert response is not None
            assert response.status == 200, path
            assert response.headers["content-security-policy"].startswith("default-src 'none'")
            assert await page.evaluate("typeof htmx") == "object", path
            # Wait for the page's own refresh (htmx polls every 2-3 s), then for its swap.
            async with page.expect_response(lambda r, f=fragment: f in r.url) as refreshed:
                pass
            assert (await refreshed.value).status == 200, fragment
            await page.wait_for_load_state("networkidle")
            assert await page.evaluate("window.__csp") == [], path

        # A boosted form post (the retry button) and the page it lands on.
        await page.goto(f"{served.url}/dashboard/jobs/{failed_id}")
        await page.get_by_role("button", name="Retry").click()
        await expect(page.locator(".flash")).to_contain_text("retried")
        assert await page.evaluate("window.__csp") == []

        assert _policy_messages(console) == []
        assert errors == []

        # The positive control: an inline style is refused, and both records see it.
        await page.evaluate(
            "document.head.append(Object.assign(document.createElement('style'),"
            " {textContent: 'body { color: red }'}))"
        )
        await page.wait_for_function("window.__csp.length > 0")
        assert any("style-src" in v for v in await page.evaluate("window.__csp"))
        await context.close()
    assert _policy_messages(console) != []
