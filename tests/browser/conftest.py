"""Real headless Chromium (Debian's package) driven by Playwright, and the app it browses.

Never ``playwright install``: the browser is the system's ``chromium``. With
``TASKWARD_REQUIRE_BROWSER=1`` (set by ``make test``, so CI) a missing Chromium or Playwright
fails the run instead of skipping it. The async Playwright API is used inside async tests, so
it shares pytest-asyncio's loop instead of fighting it (sync Playwright runs its own loop).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_browser() -> bool:
    """True when a missing browser must fail the run rather than skip it."""
    return os.environ.get("TASKWARD_REQUIRE_BROWSER", "") not in ("", "0")


def _missing(reason: str) -> None:
    if require_browser():
        pytest.fail(f"TASKWARD_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        _missing("Chromium is not installed (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    return path


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=BROWSER_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder
