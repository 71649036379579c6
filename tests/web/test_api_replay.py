"""Replays over HTTP: ``POST /api/jobs/{id}/retry`` with a body, the bulk replay, the form.

Auth and CSRF are those of every change; bad input is a 400 and changes nothing; secrets
never reach a page or a response.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from taskward import JobState, TaskManager
from taskward.canvas import chain
from taskward.edits import REPLAYS_META_KEY
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, client_for

S = JobState


async def dead_letters(tw: TaskManager) -> dict[str, int]:
    """A failed division, a failed login (a sensitive password) and a discarded one."""

    @tw.task(name="math.div", queue="math", max_attempts=1)
    def div(a: float, b: float) -> float:
        return a / b

    @tw.task(name="auth.login", queue="auth", max_attempts=1, sensitive=("password",))
    def login(user: str, password: str, *, server: str = "old") -> str:
        if server == "old":
            raise ConnectionError("old server is gone")
        return f"{user}@{server}"

    ids = {
        "div": (await div.enqueue(1, 0)).id,
        "login": (await login.enqueue("ada", "hunter2")).id,
        "login2": (await login.enqueue("bob", "swordfish")).id,
    }
    await tw.drain(["math", "auth"], timeout=30)
    for job_id in ids.values():
        assert (await tw.get_task_status(job_id)).state is S.FAILED
    return ids


async def test_retry_with_a_body_edits_and_records(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await dead_letters(tw)
    url = f"/api/jobs/{ids['div']}/retry"
    for bad in (
        {"args": [1, 2, 3]},  # the task takes two
        {"args": "[1, 2]"},  # not a list
        {"queue": "bad queue"},
        {"priority": 11},
    ):
        response = await api.post(url, json=bad)
        assert response.status_code in (400, 422), bad
        assert (await tw.get_task_status(ids["div"])).state is S.FAILED
    response = await api.post(url, json={"args": [1, 4], "note": "b was 0", "queue": "fast"})
    assert response.status_code == 200, response.text
    shown = response.json()
    assert (shown["state"], shown["args"], shown["queue"]) == ("pending", [1, 4], "fast")
    [record] = shown["meta"][REPLAYS_META_KEY]
    assert (record["args"], record["queue"], record["note"]) == ([1, 0], "math", "b was 0")
    assert record["by"] is None  # a bearer token names nobody
    again = await api.post(url, json={"note": "twice"})
    assert again.status_code == 400
    assert "pending: only a failed" in again.json()["detail"]
    assert (await api.post(url)).status_code == 200  # no body: the plain retry, as before


async def test_secrets_stay_hidden_in_responses(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await dead_letters(tw)
    response = await api.post(
        f"/api/jobs/{ids['login']}/retry",
        json={"args": ["ada", "***"], "kwargs": {"server": "new"}, "note": "moved"},
    )
    assert response.status_code == 200
    assert "hunter2" not in response.text
    assert response.json()["args"] == ["ada", "***"]
    await tw.drain(["auth"], timeout=30)
    assert (await tw.get_task_status(ids["login"])).result == "ada@new"  # the secret was kept
    detail = await api.get(f"/api/jobs/{ids['login']}")
    assert "hunter2" not in detail.text


async def test_bulk_replay_with_a_filter_and_a_kwargs_merge(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    ids = await dead_letters(tw)
    body: dict[str, Any] = {
        "error_kind": "ConnectionError",
        "set_kwargs": {"server": "new"},
        "note": "server moved",
    }
    response = await api.post("/api/jobs/bulk/retry", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["matched"] == 2
    assert sorted(out["changed"]) == sorted([ids["login"], ids["login2"]])
    assert out["refused"] == {}
    assert (await tw.get_task_status(ids["div"])).state is S.FAILED
    await tw.drain(["auth"], timeout=30)
    assert (await tw.get_task_status(ids["login2"])).result == "bob@new"
    # A merge the division cannot take: refused, reported, unchanged.
    refused = await api.post("/api/jobs/bulk/retry", json={"set_kwargs": {"server": "x"}})
    assert refused.json()["refused"].keys() == {str(ids["div"])}
    assert (await tw.get_task_status(ids["div"])).state is S.FAILED
    assert (await api.post("/api/jobs/bulk/retry", json={"note": "x", "q": "a"})).status_code == 400
    for bad in ({"to_queue": "bad queue"}, {"priority": 12}):  # one 400, before any job
        response = await api.post("/api/jobs/bulk/retry", json=bad)
        assert response.status_code == 400, response.text
        assert "refused" not in response.json()
    assert (await tw.get_task_status(ids["div"])).state is S.FAILED


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_replays_need_auth_and_the_csrf_token(tw: TaskManager, auth: AdminAuth) -> None:
    ids = await dead_letters(tw)
    url = f"/api/jobs/{ids['div']}/retry"
    async with client_for(create_app(tw, auth=auth)) as anonymous:
        assert (await anonymous.post(url, json={"args": [1, 2]})).status_code == 401
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as basic:
        refused = await basic.post(url, json={"args": [1, 2]})
        assert refused.status_code == 403
        bulk = await basic.post("/api/jobs/bulk/retry", json={"note": "n"})
        assert bulk.status_code == 403
        assert (await tw.get_task_status(ids["div"])).args == [1, 0]
        page = (await basic.get(f"/dashboard/jobs/{ids['div']}")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        # The form's target refuses a post without the token too.
        form = {"args": "[1, 2]", "note": "n"}
        assert (await basic.post(f"/dashboard/replay/{ids['div']}", data=form)).status_code == 403
        ok = await basic.post(url, json={"args": [1, 2]}, headers={"X-CSRF-Token": token.group(1)})
        assert ok.status_code == 200
        assert ok.json()["meta"][REPLAYS_META_KEY][0]["by"] == "admin"  # the basic-auth user


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_the_form_on_the_job_page(tw: TaskManager, auth: AdminAuth) -> None:
    ids = await dead_letters(tw)
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as basic:
        page = (await basic.get(f"/dashboard/jobs/{ids['login']}")).text
        assert "Edit and retry" in page
        assert "hunter2" not in page  # pre-filled redacted
        assert "&#34;***&#34;" in page or '"***"' in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        shown = re.search(r'name="shown" value="([^"]+)"', page)
        assert shown is not None
        target = f"/dashboard/replay/{ids['login']}"
        bad = {"csrf_token": token.group(1), "shown": shown.group(1), "args": "[1,", "note": "x"}
        response = await basic.post(target, data=bad)
        assert response.status_code == 303
        assert "not retried" in (await basic.get(response.headers["location"])).text
        assert (await tw.get_task_status(ids["login"])).state is S.FAILED
        form = {
            "csrf_token": token.group(1),
            "shown": shown.group(1),
            "args": '["ada", "***"]',
            "kwargs": '{"server": "new"}',
            "queue": "auth",
            "priority": "5",
            "note": "<b>moved</b>",
        }
        response = await basic.post(target, data=form)
        assert response.status_code == 303
        job = await tw.get_task_status(ids["login"])
        assert (job.state, job.args, job.kwargs) == (
            S.PENDING,
            ["ada", "hunter2"],
            {"server": "new"},
        )
        page = (await basic.get(f"/dashboard/jobs/{ids['login']}")).text
        assert "&lt;b&gt;moved&lt;/b&gt;" in page  # the note, inert
        assert "<b>moved</b>" not in page
        assert "hunter2" not in page
        assert "Edit and retry</h2>" not in page  # pending: no form


@pytest.mark.parametrize("manager_url", ["memory://"], indirect=True)
async def test_a_stale_form_never_undoes_another_edit(tw: TaskManager, auth: AdminAuth) -> None:
    """The form carries what it showed: a replay made since its page was read refuses it."""
    ids = await dead_letters(tw)
    async with client_for(create_app(tw, auth=auth), authorization=BASIC) as basic:
        page = (await basic.get(f"/dashboard/jobs/{ids['div']}")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        shown = re.search(r'name="shown" value="([^"]+)"', page)
        assert token is not None
        assert shown is not None
        # Another operator edits a meanwhile, and the job fails again (b is still 0).
        await tw.retry_task(ids["div"], args=[2, 0], note="other operator")
        await tw.drain(["math"], timeout=30)
        fixed = await tw.get_task_status(ids["div"])
        assert (fixed.state, fixed.args) == (S.FAILED, [2, 0])
        # This page still shows [1, 0]: compared with the job as it is now, it would put
        # a back to 1, undoing the other edit without anyone seeing it.
        form = {
            "csrf_token": token.group(1),
            "shown": shown.group(1),
            "args": "[1, 0]",
            "kwargs": "{}",
            "queue": "math",
            "priority": "5",
            "note": "from a stale page",
        }
        target = f"/dashboard/replay/{ids['div']}"
        response = await basic.post(target, data=form)
        assert response.status_code == 303
        assert (
            "changed since this page was shown"
            in (await basic.get(response.headers["location"])).text
        )
        after = await tw.get_task_status(ids["div"])
        assert (after.state, after.args) == (S.FAILED, [2, 0])
        assert len(after.meta[REPLAYS_META_KEY]) == 1
        missing = {k: v for k, v in form.items() if k != "shown"}  # a form without it: refused
        await basic.post(target, data=missing)
        assert (await tw.get_task_status(ids["div"])).state is S.FAILED
        page = (await basic.get(f"/dashboard/jobs/{ids['div']}")).text
        fresh = re.search(r'name="shown" value="([^"]+)"', page)
        assert fresh is not None
        assert fresh.group(1) != shown.group(1)
        await basic.post(target, data={**form, "shown": fresh.group(1)})  # a fresh page: applied
        assert (await tw.get_task_status(ids["div"])).state is S.PENDING


async def test_a_step_receiving_a_value_hides_the_right_argument(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    """A pass_result step's stored args start at its second parameter: the marks shift too."""

    @tw.task(name="flow.first", queue="flow")
    def first() -> str:
        return "upstream"

    @tw.task(name="flow.login", queue="flow", max_attempts=1, sensitive=("password",))
    def login(upstream: str, password: str, server: str) -> str:
        if server == "old":
            raise ConnectionError("old server is gone")
        return f"{upstream}@{server}"

    await tw.enqueue_workflow(chain(first.s(), login.s("hunter2", "old"), pass_result=True))
    await tw.drain(["flow"], timeout=30)
    [step] = (await tw.list_tasks(task="flow.login")).items
    assert (step.state, step.args) == (S.FAILED, ["hunter2", "old"])
    shown = await api.get(f"/api/jobs/{step.id}")
    assert shown.json()["args"] == ["***", "old"]
    assert "hunter2" not in shown.text
    page = (await api.get(f"/dashboard/jobs/{step.id}")).text
    assert "hunter2" not in page
    assert "old" in page
    response = await api.post(
        f"/api/jobs/{step.id}/retry", json={"args": ["***", "new"], "note": "moved"}
    )
    assert response.status_code == 200, response.text
    assert "hunter2" not in response.text
    [record] = response.json()["meta"][REPLAYS_META_KEY]
    assert record["args"] == ["***", "old"]  # the replay record keeps the password hidden
    assert (await tw.get_task_status(step.id)).args == ["hunter2", "new"]  # "***" kept it
    await tw.drain(["flow"], timeout=30)
    assert (await tw.get_task_status(step.id)).result == "upstream@new"
