"""Arguments marked sensitive never appear in logs, the API, the dashboard, events or the CLI.

The job function still receives them: redaction is for people, at every place taskward shows
a job, and the stored row keeps the value (the worker needs it). A search cannot find them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from typer.testing import CliRunner

from security.helpers import BASIC, BEARER, client_for, make_app
from taskward import JobState, TaskManager
from taskward.cli import app as cli
from taskward.errors import InvalidOptions
from taskward.tasks import REDACTED, SENSITIVE_META_KEY, redact

PASSWORD = "hunter2-Pa55w0rd"
TOKEN = "tok-9f8e7d6c5b4a"
NESTED = "nested-secret-4711"
SECRETS = (PASSWORD, TOKEN, NESTED)
received: list[tuple[Any, ...]] = []


def login(user: str, password: str, *, token: str = "", profile: dict[str, Any]) -> None:
    received.append((user, password, token, profile))
    raise ConnectionError(f"identity provider unreachable for {user}")


def register(tw: TaskManager) -> None:
    tw.task(name="auth.login", max_attempts=2, backoff=0, sensitive=("password", "token"))(login)


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


async def test_sensitive_args_are_shown_as_stars_everywhere(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    received.clear()
    tw = TaskManager(store_url, poll_interval=0.05)
    register(tw)
    events: list[dict[str, Any]] = []
    tw.on("*", lambda event: events.append(event.to_dict()))
    async with tw:
        profile = {"name": "Ada", "settings": [{"password": NESTED}]}
        job = await tw.enqueue_task(
            "auth.login", args=["ada", PASSWORD], kwargs={"token": TOKEN, "profile": profile}
        )
        await tw.drain(timeout=30, with_scheduled=True)
        stored = await tw.get_task_status(job.id)
        assert stored.state is JobState.FAILED
        # The function got the real values, on both attempts.
        assert received == [("ada", PASSWORD, TOKEN, profile), ("ada", PASSWORD, TOKEN, profile)]
        assert stored.meta[SENSITIVE_META_KEY] == {"names": ["password", "token"], "positions": [1]}
        await tw.retry_task(job.id)  # an operator action, logged and evented

        pages: dict[str, str] = {}
        async with client_for(make_app(tw), authorization=BEARER) as admin:
            for url in ("/api/jobs", f"/api/jobs/{job.id}", "/api/events", "/api/stats"):
                pages[url] = (await admin.get(url)).text
            detail = json.loads(pages[f"/api/jobs/{job.id}"])
            assert detail["args"] == ["ada", REDACTED]
            assert detail["kwargs"] == {
                "token": REDACTED,
                "profile": {"name": "Ada", "settings": [{"password": REDACTED}]},
            }
            for secret in SECRETS:  # search is no oracle: each secret finds nothing
                found = (await admin.get("/api/jobs", params={"q": secret[:8]})).json()
                assert found["total"] == 0, secret
            assert (await admin.get("/api/jobs", params={"q": "ada"})).json()["total"] == 1
        async with client_for(make_app(tw), authorization=BASIC) as browser:
            for url in (
                "/dashboard",
                "/dashboard/jobs",
                "/dashboard/fragments/jobs",
                f"/dashboard/jobs/{job.id}",
                f"/dashboard/fragments/jobs/{job.id}",
            ):
                page = await browser.get(url)
                assert page.status_code == 200, url
                pages[url] = page.text
            assert "&#34;***&#34;" in pages[f"/dashboard/jobs/{job.id}"]

        runner = CliRunner()
        for command in (["status", str(job.id), "--json"], ["jobs", "--json"]):
            # The CLI runs its own event loop: call it from a thread, as a shell would.
            result = await asyncio.to_thread(runner.invoke, cli, [*command, "--url", store_url])
            assert result.exit_code == 0, result.output
            pages[" ".join(command)] = result.output
        assert REDACTED in pages[f"status {job.id} --json"]

    for where, text in pages.items():
        assert_no_secret(where, text)
    assert_no_secret("the events", json.dumps(events))
    assert {e["name"] for e in events} >= {"job.enqueued", "job.failed", "job.retried"}
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "auth.login" in logged  # the log was captured
    assert_no_secret("the logs", logged)


def test_redaction_rules() -> None:
    marker = {"names": ["password"], "positions": [0]}
    args = ["p", {"password": "x", "keep": [{"password": "y"}]}]
    shown_args, shown_kwargs = redact(args, {"password": "z", "n": 1}, {SENSITIVE_META_KEY: marker})
    assert shown_args == [REDACTED, {"password": REDACTED, "keep": [{"password": REDACTED}]}]
    assert shown_kwargs == {"password": REDACTED, "n": 1}
    assert args == ["p", {"password": "x", "keep": [{"password": "y"}]}]  # not mutated
    assert redact(args, {}, {}) == (args, {})  # nothing marked: unchanged


def test_sensitive_names_are_validated() -> None:
    tw = TaskManager("memory://")
    with pytest.raises(InvalidOptions, match="sensitive"):
        tw.task(sensitive=("password", ""))(login)
    single = tw.task(name="one", sensitive="password")(login)
    assert single.sensitive_marker == {"names": ["password"], "positions": [1]}
