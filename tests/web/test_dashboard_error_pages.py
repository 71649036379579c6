"""A dashboard request the dashboard cannot answer gets an HTML page with a way back, not JSON.

Bad filters and paging (400) answer the error page in the dashboard's style, naming what was
wrong and linking back to the list the request came from; the API keeps answering JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from taskward import TaskManager
from taskward.web import AdminAuth, create_app
from taskward.web.formatting import relative
from taskward.web.headers import CONTENT_SECURITY_POLICY
from web.helpers import BASIC, client_for, seed


def assert_error_page(answer: httpx.Response, status: int, text: str, back: str) -> None:
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page = answer.text
    assert page.startswith("<!doctype html>")
    assert "<h1>Bad request</h1>" in page
    assert text in page
    assert f'<a class="btn" href="{back}">Back to' in page


async def test_bad_filters_answer_an_html_page_with_a_way_back(
    tw: TaskManager, auth: AdminAuth
) -> None:
    await seed(tw)
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as browser:
        for address, text, back in (
            ("/dashboard/jobs?state=sleeping", "sleeping", "/dashboard/jobs"),
            ("/dashboard/jobs?page=abc", "invalid literal", "/dashboard/jobs"),
            ("/dashboard/jobs?page=0", "page must be between 1", "/dashboard/jobs"),
            ("/dashboard/fragments/jobs?workflow=-3", "workflow must be", "/dashboard/jobs"),
            ("/dashboard/dead?page=2000000", "page must be between 1", "/dashboard/dead"),
        ):
            assert_error_page(await browser.get(address), 400, text, back)
        # Markup in the bad value is text on the page, never markup.
        hostile = await browser.get("/dashboard/jobs", params={"state": "<b>x</b>"})
        assert hostile.status_code == 400
        assert "<b>x</b>" not in hostile.text
        assert "&lt;b&gt;x&lt;/b&gt;" in hostile.text
        # The API answers the same mistake in JSON.
        api = await browser.get("/api/jobs?state=sleeping")
        assert api.status_code == 400
        assert api.headers["content-type"].startswith("application/json")


def test_relative_times_read_both_ways() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert relative(now - timedelta(minutes=3, seconds=5), now) == "3 min ago"
    assert relative(now + timedelta(seconds=45), now) == "in 45 s"
    assert relative(now + timedelta(hours=2, minutes=5), now) == "in 2 h 5 min"
    assert relative(now - timedelta(milliseconds=300), now) == "just now"
    assert relative(None, now) == "—"


@pytest.fixture
def manager_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/errors.db"
