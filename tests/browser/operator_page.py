"""An operator's browser page on the dashboard: signed in, confirmations answered as told.

``operator_page`` opens a page at 1,400 px that records CSP violations (``window.__csp``),
page errors and console errors (``problems``), the confirmation dialogs it saw (``dialogs``),
and answers each with the next of ``answers`` (True accepts, False dismisses). The schedules
tests share it with ``schedules_app``: the dashboard on a store whose clock reads 10:30 UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskward import FrozenClock, TaskManager
from taskward.web import AdminAuth, create_app

USER, PASSWORD = "ops", "browser-test-password"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def schedules_app(url: str) -> tuple[TaskManager, Any]:
    """The web process's manager (its clock at 10:30 UTC, the test jobs' module) and app."""
    web = TaskManager(
        url,
        clock=FrozenClock(datetime(2026, 3, 2, 10, 30, 0, tzinfo=UTC)),
        task_modules=["tests_support.jobs"],
    )
    return web, create_app(web, auth=AdminAuth(username=USER, password=PASSWORD))


@dataclass
class OperatorPage:
    """The page, and what it saw."""

    page: Any
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    answers: list[bool] = field(default_factory=list)
    """What to answer the next confirmations, in order."""


@asynccontextmanager
async def operator_page(browser: Any) -> AsyncIterator[OperatorPage]:
    """A signed-in page at 1,400 px (see the module's docstring); closed at the end."""
    context = await browser.new_context(
        http_credentials={"username": USER, "password": PASSWORD},
        viewport={"width": 1400, "height": 900},
    )
    await context.add_init_script(RECORD_VIOLATIONS)
    seen = OperatorPage(page=await context.new_page())

    async def answer(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        await (dialog.accept() if seen.answers.pop(0) else dialog.dismiss())

    seen.page.on("pageerror", lambda e: seen.problems.append(str(e)))
    seen.page.on("console", lambda m: seen.problems.append(m.text) if m.type == "error" else None)
    seen.page.on("dialog", lambda d: asyncio.ensure_future(answer(d)))
    try:
        yield seen
    finally:
        await context.close()
