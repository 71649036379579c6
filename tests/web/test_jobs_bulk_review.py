"""The job lists' bulk actions after review (issue 26): the error-kind filter is a search,
"all matching" takes what the list shows, skips say why, odd input is a 400 page, and a bulk
run returns to the list with its filters.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from taskward import Job, JobState, TaskManager
from taskward.web import Admin, AdminAuth, bulk, create_admin_router, create_dashboard_router
from web.helpers import BASIC, PASSWORD, TOKEN, USER, client_for
from web.jobs_bulk_seed import seed_dead

MEMORY = pytest.mark.parametrize("manager_url", ["memory"], indirect=True)
TWO_STORES = pytest.mark.parametrize("manager_url", ["memory", "sqlite"], indirect=True)


def hosted(admin: Admin) -> FastAPI:
    host = FastAPI()
    host.include_router(create_admin_router(admin))
    host.include_router(create_dashboard_router(admin))
    return host


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def confirmed_ids(page: str) -> list[int]:
    match = re.search(r'<input type="hidden" name="ids" value="([\d,]*)">', page)
    assert match is not None
    return [int(i) for i in match.group(1).split(",") if i]


def query_of(answer: httpx.Response) -> dict[str, list[str]]:
    return parse_qs(urlsplit(answer.headers["location"]).query)


@MEMORY
async def test_the_error_kind_filter_follows_the_search_rules(tw: TaskManager) -> None:
    """Like ``?q=``: credentials when reads are public, a search slot, the search deadline."""
    await seed_dead(tw, timeouts=3, values=2, discarded=0)
    auth = AdminAuth(token=TOKEN, username=USER, password=PASSWORD, public_reads=True)
    admin = Admin(tw, auth=auth)
    async with client_for(hosted(admin)) as anonymous:
        assert (await anonymous.get("/dashboard/dead")).status_code == 200
        for path in ("/dashboard/dead", "/dashboard/fragments/dead", "/dashboard/jobs"):
            searched = await anonymous.get(path, params={"q": "x"})
            kind = await anonymous.get(path, params={"error_kind": "TimeoutError"})
            assert (searched.status_code, kind.status_code) == (401, 401), path
        signed_in = await anonymous.get(
            "/dashboard/fragments/dead",
            params={"error_kind": "ValueError"},
            headers={"authorization": BASIC},
        )
        assert signed_in.status_code == 200
        assert "2 jobs" in signed_in.text
        admin.searches.running = admin.searches.limit  # every slot taken by other searches
        busy = await anonymous.get(
            "/dashboard/fragments/dead",
            params={"error_kind": "ValueError"},
            headers={"authorization": BASIC},
        )
        assert busy.status_code == 429
        plain = await anonymous.get("/dashboard/fragments/dead", headers={"authorization": BASIC})
        assert plain.status_code == 200  # a plain listing needs no slot
        admin.searches.running = 0
    timed = Admin(tw, auth=AdminAuth(username=USER, password=PASSWORD), search_seconds=0)
    async with client_for(hosted(timed), authorization=BASIC) as client:
        page = await client.get("/dashboard/dead", params={"error_kind": "TimeoutError"})
    assert "time limit reached" in page.text


@MEMORY
async def test_all_matching_a_search_takes_the_newest_jobs_the_list_shows(
    tw: TaskManager, auth: AdminAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list scans the newest jobs; "all matching" must take those, not the oldest."""
    ids = await seed_dead(tw, timeouts=15, values=0, discarded=0)
    monkeypatch.setattr(bulk, "SEARCH_SCAN_LIMIT", 10)  # a scan cap of 10 instead of 5,000
    async with client_for(hosted(Admin(tw, auth=auth)), authorization=BASIC) as client:
        token = csrf_of((await client.get("/dashboard/dead")).text)
        form = {"csrf_token": token, "action": "retry-all", "error_kind": "TimeoutError"}
        confirm = await client.post("/dashboard/dead/bulk", data=form)
    assert confirmed_ids(confirm.text) == sorted(ids["timeout"])[-10:]


@TWO_STORES
async def test_skips_say_why(tw: TaskManager, auth: AdminAuth) -> None:
    ids = await seed_dead(tw, timeouts=4, values=0, discarded=1)
    failed = ids["timeout"]
    await tw.retry_task(failed[0])  # retried by someone else: pending now
    await tw.delete_task(failed[1])  # deleted by someone else
    picked = [*failed, *ids["discard"]]
    async with client_for(hosted(Admin(tw, auth=auth)), authorization=BASIC) as client:
        token = csrf_of((await client.get("/dashboard/dead")).text)
        run = {"csrf_token": token, "action": "retry", "id": [str(i) for i in picked]}
        done = await client.post("/dashboard/jobs/bulk/run", data=run)
    assert query_of(done)["flash"] == [
        "Retried 2 jobs; 1 skipped because it no longer exists;"
        " 1 skipped because it is discarded (tick “include discarded” to retry it);"
        " 1 skipped because it is in another state now"
    ]
    assert [(await tw.get_task_status(i)).state for i in failed[2:]] == [JobState.PENDING] * 2


@TWO_STORES
async def test_a_bulk_run_returns_to_the_list_with_its_filters(
    tw: TaskManager, auth: AdminAuth
) -> None:
    ids = await seed_dead(tw, timeouts=2, values=0, discarded=0)
    async with client_for(hosted(Admin(tw, auth=auth)), authorization=BASIC) as client:
        token = csrf_of((await client.get("/dashboard/dead")).text)
        filters = {"queue": "ops", "task": "ops.flaky", "q": "timed", "sort": "id"}
        filters["error_kind"] = "TimeoutError"
        run = {"csrf_token": token, "action": "retry", "id": ids["timeout"], **filters}
        done = await client.post("/dashboard/dead/bulk/run", data=run)
        assert done.status_code == 303
        assert urlsplit(done.headers["location"]).path == "/dashboard/dead"
        kept = query_of(done)
        assert {k: kept[k] for k in filters} == {k: [v] for k, v in filters.items()}
        assert kept["flash"] == ["Retried 2 jobs"]
        shown = await client.get(done.headers["location"])  # the signed flash still shows
        assert "Retried 2 jobs" in shown.text
        plain = await client.post(
            "/dashboard/jobs/bulk/run",
            data={"csrf_token": token, "action": "cancel", "id": ids["timeout"]},
        )
        assert set(query_of(plain)) == {"flash", "flash_sig"}


@MEMORY
async def test_odd_ids_and_filters_answer_the_400_page(tw: TaskManager, auth: AdminAuth) -> None:
    ids = await seed_dead(tw, timeouts=2, values=0, discarded=0)
    async with client_for(hosted(Admin(tw, auth=auth)), authorization=BASIC) as client:
        token = csrf_of((await client.get("/dashboard/dead")).text)
        base = {"csrf_token": token, "action": "retry"}
        cases: list[tuple[dict[str, object], str]] = [
            ({"id": ["9" * 5000]}, "is not a job id"),
            ({"id": [str(2**63)]}, "is not a job id"),
            ({"id": ["-3"]}, "is not a job id"),
            ({"id": ["abc"]}, "is not a job id"),
            ({"id": ["1_0"]}, "is not a job id"),
            ({"id": ["٣"]}, "is not a job id"),  # an Arabic-Indic digit: int() takes it
            ({"ids": "1,2,x"}, "is not a job id"),
            ({"ids": ",".join(str(i) for i in range(1, 1002))}, "at most 1,000 jobs"),
            ({"ids": "," * 20_000}, "at most 1,000 jobs"),
            ({"id": [str(i) for i in range(1, 1002)]}, "the form cannot be read"),
            ({"action": "all", "id": ids["timeout"]}, "choose an action"),
        ]
        for extra, text in cases:
            for path in ("/dashboard/dead/bulk", "/dashboard/dead/bulk/run"):
                answer = await client.post(path, data={**base, **extra})
                assert answer.status_code == 400, (path, str(extra)[:60])
                assert answer.headers["content-type"].startswith("text/html"), path
                assert text in answer.text, (path, str(extra)[:60], answer.text[-600:])
                assert '<a class="btn" href="/dashboard/dead">Back to' in answer.text
        # Duplicates count once, on the confirmation and in the run.
        twice = [str(i) for i in ids["timeout"] * 2]
        confirm = await client.post("/dashboard/dead/bulk", data={**base, "id": twice})
        assert "Retry 2 jobs?" in confirm.text
        done = await client.post("/dashboard/dead/bulk/run", data={**base, "id": twice})
        assert query_of(done)["flash"] == ["Retried 2 jobs"]
        for path in ("/dashboard/jobs", "/dashboard/fragments/jobs"):
            bad = await client.get(path, params={"workflow": "abc"})
            assert bad.status_code == 400
            assert "workflow must be a whole number" in bad.text
            assert "invalid literal" not in bad.text
        everything = {**base, "action": "retry-all", "workflow": "-1"}
        refused = await client.post("/dashboard/jobs/bulk", data=everything)
        assert refused.status_code == 400
        assert "workflow must be a whole number" in refused.text


@MEMORY
async def test_error_kind_counts_are_kept_a_few_seconds_and_renewed_after_a_bulk_run(
    tw: TaskManager, auth: AdminAuth
) -> None:
    ids = await seed_dead(tw, timeouts=3, values=0, discarded=0)
    kinds = re.compile(r'<span class="mono">TimeoutError</span> <span class="count">(\d+)</span>')
    async with client_for(hosted(Admin(tw, auth=auth)), authorization=BASIC) as client:
        page = (await client.get("/dashboard/dead")).text
        assert kinds.findall(page) == ["3"]
        await seed_dead(tw, timeouts=1, values=0, discarded=0)
        assert kinds.findall((await client.get("/dashboard/dead")).text) == ["3"]  # kept
        other = (await client.get("/dashboard/dead", params={"queue": "ops"})).text
        assert kinds.findall(other) == ["4"]  # another filter: its own scan
        run = {"csrf_token": csrf_of(page), "action": "retry", "id": ids["timeout"][:1]}
        await client.post("/dashboard/dead/bulk/run", data=run)
        assert kinds.findall((await client.get("/dashboard/dead")).text) == ["3"]  # 4 - 1


@TWO_STORES
async def test_a_bulk_delete_keeps_a_job_retried_between_its_read_and_its_delete(
    tw: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await seed_dead(tw, timeouts=3, values=0, discarded=0)
    failed = ids["timeout"]
    states = bulk.action_states("delete", dead=True, include_discarded=True)
    read = tw.get_task_status

    async def read_then_someone_retries(job_id: int) -> Job:
        job = await read(job_id)
        if job_id == failed[0]:  # the other operator's retry lands right after the read
            await tw.retry_task(job_id)
        return job

    monkeypatch.setattr(tw, "get_task_status", read_then_someone_retries)
    applied = await bulk.apply(tw, failed, "delete", states)
    monkeypatch.undo()
    assert applied.changed == failed[1:]
    assert applied.reasons == {failed[0]: "moved"}
    assert (await tw.get_task_status(failed[0])).state is JobState.PENDING  # kept
