"""The job lists' bulk actions, error kinds, sorting and bad input, over ASGI (issue 26).

Every bulk action is confirmed with its exact count and then changes exactly the confirmed
ids, each only from a state its action takes; the dead letters are grouped by error kind and
keep discarded jobs out of a retry unless asked; bad filters answer the 400 page.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from taskward import JobState, TaskManager
from taskward.web import AdminAuth, create_app
from web.helpers import BASIC, client_for
from web.jobs_bulk_seed import HOSTILE_KIND, TASK, seed_dead

TWO_STORES = pytest.mark.parametrize("manager_url", ["memory", "sqlite"], indirect=True)


@pytest.fixture
async def browser(tw: TaskManager, auth: AdminAuth) -> httpx.AsyncClient:
    return client_for(create_app(tw, auth=auth), authorization=BASIC)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def confirmed_ids(page: str) -> list[int]:
    """The ids a confirmation page posts (its hidden id fields)."""
    match = re.search(r'<input type="hidden" name="ids" value="([\d,]*)">', page)
    assert match is not None
    return [int(i) for i in match.group(1).split(",") if i]


def flash_of(answer: httpx.Response) -> str:
    location = answer.headers["location"]
    return parse_qs(urlsplit(location).query)["flash"][0]


async def states_of(tw: TaskManager, ids: list[int]) -> list[JobState]:
    return [(await tw.get_task_status(i)).state for i in ids]


@TWO_STORES
async def test_dead_letters_grouped_by_error_kind(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    await seed_dead(tw, timeouts=30, values=4, discarded=4)
    async with browser:
        page = (await browser.get("/dashboard/dead")).text
        kinds = dict(
            re.findall(
                r'<span class="mono">([^<]+)</span> <span class="count">([\d,]+)</span>', page
            )
        )
        assert kinds == {"TimeoutError": "30", "ValueError": "4", "Discarded": "4"}
        assert 'href="/dashboard/dead?error_kind=TimeoutError"' in page
        assert "include discarded (4)" in page
        timeouts = await browser.get("/dashboard/dead", params={"error_kind": "TimeoutError"})
        assert "page 1 of 2 · 30 jobs" in timeouts.text
        assert 'class="kind on"' in timeouts.text
        values = await browser.get("/dashboard/fragments/dead", params={"error_kind": "ValueError"})
        assert "4 jobs" in values.text
        assert "TimeoutError" not in values.text


@TWO_STORES
async def test_markup_in_error_kinds_and_task_names_is_text(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    await seed_dead(tw, timeouts=0, values=0, discarded=0, hostile=2)
    hostile_task = "<script>alert('task')</script>"
    tw.task(name=hostile_task, queue="ops")(lambda: None)
    await tw.enqueue_task(hostile_task)
    async with browser:
        dead = (await browser.get("/dashboard/dead")).text
        jobs = (await browser.get("/dashboard/jobs")).text
        filtered = await browser.get("/dashboard/dead", params={"error_kind": HOSTILE_KIND})
    for page in (dead, jobs, filtered.text):
        assert "<script>window" not in page
        assert "<script>alert" not in page
    assert "&lt;script&gt;window.__xss = 9&lt;/script&gt;" in dead  # the kind, as text
    assert '<option value="&lt;script&gt;alert(&#39;task&#39;)&lt;/script&gt;">' in jobs
    assert "2 jobs" in filtered.text


@TWO_STORES
async def test_bad_state_sort_or_kind_answers_the_400_page(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    async with browser:
        for path, params, text in [
            ("/dashboard/jobs", {"state": "nope"}, "unknown state &#39;nope&#39;"),
            ("/dashboard/jobs", {"sort": "args"}, "cannot sort by &#39;args&#39;"),
            ("/dashboard/dead", {"sort": "-password"}, "cannot sort by"),
            ("/dashboard/fragments/jobs", {"sort": "x"}, "cannot sort by"),
            ("/dashboard/dead", {"error_kind": "E" * 300}, "error_kind must be at most"),
        ]:
            answer = await browser.get(path, params=params)
            assert answer.status_code == 400, (path, params)
            assert answer.headers["content-type"].startswith("text/html")
            assert text in answer.text
            back = "/dashboard/dead" if "dead" in path else "/dashboard/jobs"
            assert f'<a class="btn" href="{back}">Back to' in answer.text


@TWO_STORES
async def test_headers_sort_and_keep_the_filters(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    await seed_dead(tw, timeouts=3, values=0, discarded=0)
    async with browser:
        page = (await browser.get("/dashboard/jobs", params={"queue": "ops"})).text
        header = '<th class="n" aria-sort="descending"><a class="sort" href="{}"'
        assert header.format("/dashboard/jobs?queue=ops&amp;sort=id") in page
        ascending = (
            await browser.get("/dashboard/jobs", params={"queue": "ops", "sort": "id"})
        ).text
        assert 'aria-sort="ascending"' in ascending
        assert 'href="/dashboard/jobs?queue=ops&amp;sort=-id"' in ascending
        ids = [
            int(i) for i in re.findall(r'<td class="n"><a href="/dashboard/jobs/(\d+)">', ascending)
        ]
        assert ids == sorted(ids)
        assert len(ids) == 3
        dead = (await browser.get("/dashboard/dead")).text
        assert 'href="/dashboard/dead?sort=-attempted_at"' in dead  # "When" of dead letters


@TWO_STORES
async def test_a_selection_is_confirmed_then_changed_exactly(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    ids = await seed_dead(tw, timeouts=6, values=0, discarded=0)
    picked = ids["timeout"][:3]
    async with browser:
        token = csrf_of((await browser.get("/dashboard/dead")).text)
        form = {"csrf_token": token, "action": "retry", "id": [str(i) for i in picked]}
        confirm = await browser.post("/dashboard/dead/bulk", data=form)
        assert confirm.status_code == 200
        assert '<h1 id="confirm-title">Retry 3 jobs?</h1>' in confirm.text
        assert sorted(confirmed_ids(confirm.text)) == sorted(picked)
        assert await states_of(tw, ids["timeout"]) == [JobState.FAILED] * 6  # nothing yet
        await tw.retry_task(picked[0])  # someone else retries one meanwhile
        run = {"csrf_token": token, "action": "retry", "id": [str(i) for i in picked]}
        done = await browser.post("/dashboard/dead/bulk/run", data=run)
        assert done.status_code == 303
        assert done.headers["location"].startswith("/dashboard/dead?flash=")
        assert flash_of(done) == "Retried 2 jobs; 1 skipped because it is in another state now"
        assert await states_of(tw, picked) == [JobState.PENDING] * 3
        assert await states_of(tw, ids["timeout"][3:]) == [JobState.FAILED] * 3
        refused = await browser.post("/dashboard/dead/bulk/run", data={**run, "csrf_token": "x"})
        assert refused.status_code == 403


@TWO_STORES
async def test_all_matching_leaves_discarded_out_unless_asked(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    ids = await seed_dead(tw, timeouts=30, values=0, discarded=4)
    async with browser:
        token = csrf_of((await browser.get("/dashboard/dead")).text)
        form = {"csrf_token": token, "action": "retry-all"}
        confirm = await browser.post("/dashboard/dead/bulk", data=form)
        assert "Retry 30 jobs?" in confirm.text
        assert "4 discarded jobs left out" in confirm.text
        assert sorted(confirmed_ids(confirm.text)) == sorted(ids["timeout"])
        both = await browser.post("/dashboard/dead/bulk", data={**form, "include_discarded": "1"})
        assert "Retry 34 jobs?" in both.text
        assert 'name="include_discarded" value="1"' in both.text
        # The selection buttons with "all" ticked in the page (jobs.js) ask the same.
        same = await browser.post(
            "/dashboard/dead/bulk", data={**form, "action": "retry", "all": "1"}
        )
        assert "Retry 30 jobs?" in same.text
        run = {"csrf_token": token, "action": "retry", "id": confirmed_ids(confirm.text)}
        done = await browser.post("/dashboard/dead/bulk/run", data=run)
        assert flash_of(done) == "Retried 30 jobs"
    assert set(await states_of(tw, ids["timeout"])) == {JobState.PENDING}
    assert set(await states_of(tw, ids["discard"])) == {JobState.DISCARDED}


@TWO_STORES
async def test_discarded_ids_posted_without_the_box_are_skipped(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    ids = await seed_dead(tw, timeouts=1, values=0, discarded=2)
    async with browser:
        token = csrf_of((await browser.get("/dashboard/dead")).text)
        run = {"csrf_token": token, "action": "retry", "id": ids["timeout"] + ids["discard"]}
        done = await browser.post("/dashboard/dead/bulk/run", data=run)
        assert flash_of(done) == (
            "Retried 1 job; 2 skipped because they are discarded"
            " (tick “include discarded” to retry them)"
        )
        done = await browser.post(
            "/dashboard/dead/bulk/run", data={**run, "include_discarded": "1"}
        )
        assert flash_of(done).startswith("Retried 2 jobs")
    assert set(await states_of(tw, ids["discard"])) == {JobState.PENDING}


@TWO_STORES
async def test_delete_and_cancel_never_touch_a_running_job(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    ids = await seed_dead(tw, timeouts=2, values=0, discarded=0)
    waiting = [job.id for job in await tw.enqueue_many(TASK, [[n, "timeout"] for n in range(3)])]
    now = tw.clock.now()
    (running,) = await tw.backend.fetch(
        queue="ops", limit=1, worker_id="w", now=now, lease_until=now + timedelta(seconds=60)
    )
    async with browser:
        token = csrf_of((await browser.get("/dashboard/jobs")).text)
        picked = [*ids["timeout"], running.id]
        form = {"csrf_token": token, "action": "delete", "id": picked}
        confirm = await browser.post("/dashboard/jobs/bulk", data=form)
        assert "Delete 2 jobs?" in confirm.text
        assert "1 running job left out: a running job is never deleted" in unescape(confirm.text)
        # Posted anyway (a forged or stale form): the running job is skipped, never deleted.
        done = await browser.post("/dashboard/jobs/bulk/run", data=form)
        assert flash_of(done) == "Deleted 2 jobs; 1 skipped because it is running"
        assert (await tw.get_task_status(running.id)).state is JobState.RUNNING
        assert (await tw.list_tasks(state="failed")).total_entries == 0
        rest = [i for i in waiting if i != running.id]
        cancel = {"csrf_token": token, "action": "cancel", "id": rest}
        done = await browser.post("/dashboard/jobs/bulk/run", data=cancel)
        assert flash_of(done) == "Cancelled 2 jobs"
        assert await states_of(tw, rest) == [JobState.CANCELLED] * 2
        # The dead letters offer no cancel; nothing selected is a 400 page.
        no = await browser.post("/dashboard/dead/bulk", data={**cancel, "action": "cancel"})
        assert no.status_code == 400
        none = await browser.post(
            "/dashboard/jobs/bulk", data={"csrf_token": token, "action": "retry"}
        )
        assert none.status_code == 400
        assert "select at least one job" in none.text


@pytest.mark.parametrize("manager_url", ["memory"], indirect=True)
async def test_a_capped_confirmation_says_the_first_1000_of_all(
    tw: TaskManager, browser: httpx.AsyncClient
) -> None:
    tw.task(name="ops.wait", queue="paused")(lambda n: n)
    jobs = await tw.enqueue_many("ops.wait", [[n] for n in range(1234)])
    async with browser:
        page = await browser.get("/dashboard/jobs", params={"state": "pending"})
        assert "1,234 jobs" in page.text
        assert "page 1 of 50" in page.text
        token = csrf_of(page.text)
        form = {"csrf_token": token, "action": "cancel", "all": "1", "state": "pending"}
        confirm = await browser.post("/dashboard/jobs/bulk", data=form)
        assert "Cancel 1,000 jobs?" in confirm.text
        assert "the first 1,000 of 1,234 matching jobs" in confirm.text
        taken = confirmed_ids(confirm.text)
        assert taken == [job.id for job in jobs[:1000]]  # the oldest first
        run = {"csrf_token": token, "action": "cancel", "ids": ",".join(map(str, taken))}
        done = await browser.post("/dashboard/jobs/bulk/run", data=run)
        assert flash_of(done) == "Cancelled 1,000 jobs"
    assert (await tw.list_tasks(state="pending")).total_entries == 234


@TWO_STORES
async def test_read_only_lists_have_no_selection(tw: TaskManager) -> None:
    await seed_dead(tw, timeouts=1, values=0, discarded=0)
    async with client_for(create_app(tw)) as anonymous:
        page = (await anonymous.get("/dashboard/dead")).text
    assert 'name="id"' not in page
    assert 'id="bulk"' not in page
    assert "TimeoutError" in page
