"""CSRF tokens are bound to the credentials: a cookie alone never makes a token valid.

The token is an HMAC of a server secret and the basic-auth identity (user name and a hash of
the password). Whoever can set a cookie for the host (a sibling subdomain, a plain-HTTP
man in the middle) still cannot compute it; a changed password or another secret voids it.
"""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from security.helpers import (
    BASIC,
    BEARER,
    PASSWORD,
    TOKEN,
    USER,
    client_for,
    failed_job,
    failing_manager,
    make_app,
)
from taskward import JobState, TaskManager
from taskward.web import AdminAuth, create_app

SECRET = b"k" * 32


@pytest.fixture
async def tw() -> TaskManager:
    return failing_manager()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _page_token(page: str) -> str:
    """The token in the page's hx-headers (every page) and its forms (when it has some)."""
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert match is not None, "the page carries no CSRF token"
    for form_token in re.findall(r'name="csrf_token" value="([^"]*)"', page):
        assert form_token == match.group(1)
    return match.group(1)


def _app(tw: TaskManager, *, user: str = USER, password: str = PASSWORD) -> object:
    auth = AdminAuth(token=TOKEN, username=user, password=password, csrf_secret=SECRET)
    return create_app(tw, auth=auth)


async def test_a_forged_cookie_with_a_matching_header_is_refused(tw: TaskManager) -> None:
    async with tw, client_for(make_app(tw), authorization=BASIC) as browser:
        job_id = await failed_job(tw)
        browser.cookies.set("taskward_csrf", "planted-by-a-sibling-host")
        api = await browser.post(
            f"/api/jobs/{job_id}/retry", headers={"x-csrf-token": "planted-by-a-sibling-host"}
        )
        form = await browser.post(
            f"/dashboard/jobs/{job_id}/retry", data={"csrf_token": "planted-by-a-sibling-host"}
        )
        assert (api.status_code, form.status_code) == (403, 403)
        assert (await tw.get_task_status(job_id)).state is JobState.FAILED


async def test_the_server_computed_token_is_accepted(tw: TaskManager) -> None:
    async with tw, client_for(make_app(tw), authorization=BASIC) as browser:
        job_id = await failed_job(tw)
        token = _page_token((await browser.get("/dashboard")).text)
        answer = await browser.post(f"/api/jobs/{job_id}/retry", headers={"x-csrf-token": token})
        assert answer.status_code == 200, answer.text
        assert (await tw.get_task_status(job_id)).state is JobState.PENDING
        # htmx sends the same token as a header: the page's hx-headers carry it too.
        assert f'"X-CSRF-Token": "{token}"' in (await browser.get("/dashboard")).text


async def test_a_token_without_its_cookie_is_refused(tw: TaskManager) -> None:
    """The SameSite=Strict cookie is the second half: a cross-site request never has it."""
    async with tw, client_for(make_app(tw), authorization=BASIC) as browser:
        job_id = await failed_job(tw)
        token = _page_token((await browser.get("/dashboard")).text)
        browser.cookies.clear()
        answer = await browser.post(f"/api/jobs/{job_id}/retry", headers={"x-csrf-token": token})
        assert answer.status_code == 403


@pytest.mark.parametrize(
    ("user", "password"), [(USER, "the old password"), ("someone-else", PASSWORD)]
)
async def test_a_token_made_for_other_credentials_is_refused(
    tw: TaskManager, user: str, password: str
) -> None:
    """Same server secret, other user or password (a changed password): the token is void."""
    async with tw:
        job_id = await failed_job(tw)
        async with client_for(_app(tw, user=user, password=password)) as other:
            page = await other.get("/dashboard", headers={"authorization": _basic(user, password)})
            foreign = _page_token(page.text)
            planted = other.cookies.get("taskward_csrf")
        assert planted == foreign  # the cookie the other app set: both halves of its pair
        async with client_for(_app(tw), authorization=BASIC) as browser:
            own = _page_token((await browser.get("/dashboard")).text)
            assert own != foreign
            browser.cookies.clear()
            browser.cookies.set("taskward_csrf", foreign)
            answer = await browser.post(
                f"/api/jobs/{job_id}/retry", headers={"x-csrf-token": foreign}
            )
            assert answer.status_code == 403
        assert (await tw.get_task_status(job_id)).state is JobState.FAILED


async def test_another_secret_voids_the_token(tw: TaskManager) -> None:
    """Without a given secret each app draws one: a restart voids every token it gave."""
    async with tw:
        job_id = await failed_job(tw)
        first, second = make_app(tw), make_app(tw)
        async with client_for(first, authorization=BASIC) as browser:
            token = _page_token((await browser.get("/dashboard")).text)
            cookie = browser.cookies["taskward_csrf"]
        async with client_for(second, authorization=BASIC) as browser:
            browser.cookies.set("taskward_csrf", cookie)
            answer = await browser.post(
                f"/api/jobs/{job_id}/retry", headers={"x-csrf-token": token}
            )
            assert answer.status_code == 403


async def test_the_page_never_echoes_a_cookie_it_was_sent(tw: TaskManager) -> None:
    sent = "cookie-value-from-the-request-4f1c"
    async with tw, client_for(make_app(tw), authorization=BASIC) as browser:
        job_id = await failed_job(tw)
        for path in ("/dashboard", "/dashboard/jobs", f"/dashboard/jobs/{job_id}"):
            browser.cookies.clear()
            browser.cookies.set("taskward_csrf", sent)
            page = await browser.get(path)
            assert page.status_code == 200
            assert sent not in page.text, path
            # The server replaces the cookie with the token it computed.
            assert page.cookies["taskward_csrf"] == _page_token(page.text)


async def test_over_https_the_cookie_is_host_only(tw: TaskManager) -> None:
    """``__Host-``: Secure, Path=/, no Domain, so no sibling host can set or shadow it."""
    transport = httpx.ASGITransport(app=make_app(tw))
    async with (
        tw,
        httpx.AsyncClient(
            transport=transport, base_url="https://test", headers={"authorization": BASIC}
        ) as browser,
    ):
        job_id = await failed_job(tw)
        page = await browser.get("/dashboard")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-taskward_csrf=")
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"secure", "path", "httponly", "samesite"} <= attributes
        assert "domain" not in attributes
        assert "Path=/;" in cookie or cookie.rstrip().endswith("Path=/")
        token = _page_token(page.text)
        # The plain name is not read over HTTPS: a cookie a plain-HTTP page could set.
        plain = httpx.AsyncClient(
            transport=transport,
            base_url="https://test",
            headers={"authorization": BASIC},
            cookies={"taskward_csrf": token},
        )
        async with plain:
            refused = await plain.post(f"/api/jobs/{job_id}/retry", headers={"x-csrf-token": token})
            assert refused.status_code == 403
        ok = await browser.post(f"/api/jobs/{job_id}/retry", headers={"x-csrf-token": token})
        assert ok.status_code == 200, ok.text


async def test_bearer_changes_need_no_csrf_token(tw: TaskManager) -> None:
    async with tw, client_for(make_app(tw), authorization=BEARER) as script:
        job_id = await failed_job(tw)
        assert (await script.post(f"/api/jobs/{job_id}/retry")).status_code == 200
