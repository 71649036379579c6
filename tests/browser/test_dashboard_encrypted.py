"""Sealed jobs in real Chromium: a dashboard without the key shows "encrypted", one with the
key shows the values (the job page's arguments, result and error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser.serving import ServedApp
from taskward import TaskManager
from taskward.encryption import generate_key
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "sealed-test-password"
CARD = "4111-BROWSER-CARD"
OOPS = "BROWSER-OOPS"


def charge(card: str) -> None:
    raise RuntimeError(f"{OOPS} {card}")


async def seed(url: str, key: str) -> int:
    async with TaskManager(url, encryption_keys=[key]) as tw:
        tw.task(name="billing.charge", encrypted=True, max_attempts=1)(charge)
        job = await tw.enqueue_task("billing.charge", args=[CARD])
        await tw.drain(timeout=30)
        return job.id


async def page_text(browser: Any, url: str, path: str, keys: list[str] | None) -> str:
    app = create_app(
        TaskManager(url, encryption_keys=keys), auth=AdminAuth(username=USER, password=PASSWORD)
    )
    with ServedApp(app) as served:
        context = await browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD}
        )
        page = await context.new_page()
        response = await page.goto(served.url + path)
        assert response is not None
        assert response.status == 200
        text = str(await page.locator("main").inner_text())
        await context.close()
    return text


async def test_the_job_page_shows_encrypted_without_the_key(browser: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    key = generate_key()
    job_id = await seed(url, key)

    keyless = await page_text(browser, url, f"/dashboard/jobs/{job_id}", None)
    assert "encrypted" in keyless
    assert "RuntimeError" in keyless  # the error's kind stays readable
    for secret in (CARD, OOPS, "twenc1."):
        assert secret not in keyless
    dead = await page_text(browser, url, "/dashboard/dead", None)
    assert "(encrypted)" in dead
    assert OOPS not in dead

    keyed = await page_text(browser, url, f"/dashboard/jobs/{job_id}", [key])
    assert CARD in keyed
    assert OOPS in keyed
