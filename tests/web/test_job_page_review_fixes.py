"""The job page's review findings (issue 26), each pinned by a test that fails without its fix.

Ids of preserved elements change with their content (a retry moves the newest error into the
list below); a deleted job's polled fragment says so and stops polling; run times, percents and
counts that are not what they seem; meta a store cannot read; timeouts that are not numbers;
the retry banner; a schedule's own meta said in words.
"""

from __future__ import annotations

import math
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.jobs import ErrorRecord
from taskward.web.formatting import duration
from taskward.web.job_page import retry_message
from taskward.web.job_view import (
    internal_notes,
    progress_of,
    schedule_note,
    times_of,
    user_meta,
)
from web.test_job_page_view import NOW, browser_for, dead_job, job, labels, register

ERRORS_ID = r'<section class="panel older-errors" id="(job-errors-[0-9a-f]{12})" hx-preserve>'
NEWEST_ID = r'<details class="error" id="(job-error-[0-9a-f]{12})" hx-preserve open>'


def one(pattern: str, html: str) -> str:
    found = re.findall(pattern, html)
    assert len(found) == 1, (pattern, found)
    return str(found[0])


def token_of(html: str) -> dict[str, str]:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return {"csrf_token": found.group(1)}


# -- finding 1 and 2: preserved elements keyed on their content ------------------------------


async def test_a_retry_changes_the_error_list_id_and_polls_keep_the_open_error(
    tmp_path: Path,
) -> None:
    clock = FrozenClock(NOW)
    async with TaskManager(f"sqlite:///{tmp_path}/e.db", clock=clock) as tw:
        register(tw)
        job_id = await dead_job(tw, clock)  # failed, 2 errors: the newest heads the page
        async with browser_for(tw) as browser:
            fragment = f"/dashboard/fragments/jobs/{job_id}"
            failed = (await browser.get(fragment)).text
            listed = one(ERRORS_ID, failed)
            newest = one(NEWEST_ID, failed)
            assert "Errors of earlier attempts (1)" in failed
            clock.advance(90)  # a later poll: same errors, same ids (kept as the operator left)
            again = (await browser.get(fragment)).text
            assert (one(ERRORS_ID, again), one(NEWEST_ID, again)) == (listed, newest)
            assert "1 min ago" in again  # the relative time moves on, outside the kept element
            answer = await browser.post(f"/dashboard/jobs/{job_id}/retry", data=token_of(failed))
            assert answer.status_code == 303
            retried = (await browser.get(fragment)).text
    assert 'data-state="pending"' in retried
    assert "newest-error" not in retried
    # The same two errors, now all in the list: another id, so htmx swaps the list in.
    assert one(ERRORS_ID, retried) != listed
    assert "Errors (2)" in retried


# -- finding 3: a job deleted while its page is open ---------------------------------------


async def test_a_deleted_job_stops_polling_and_actions_on_it_go_back_to_the_list(
    tmp_path: Path,
) -> None:
    clock = FrozenClock(NOW)
    async with TaskManager(f"sqlite:///{tmp_path}/g.db", clock=clock) as tw:
        register(tw)
        waiting = await tw.enqueue_task("media.encode", args=[2], delay=3600)
        async with browser_for(tw) as browser:
            page = (await browser.get(f"/dashboard/jobs/{waiting.id}")).text
            assert 'hx-get="/dashboard/fragments/jobs/' in page
            await tw.delete_task(waiting.id)  # another operator, or retention
            gone = await browser.get(f"/dashboard/fragments/jobs/{waiting.id}")
            assert gone.status_code == 200  # htmx swaps a 2xx only
            assert gone.text.startswith('<div id="job" data-state="gone">')
            assert "hx-get" not in gone.text  # the poll stops with it
            assert f"job {waiting.id} no longer exists (deleted or cleaned up)" in gone.text
            assert 'href="/dashboard/jobs">back to the job list</a>' in gone.text
            assert (await browser.get(f"/dashboard/jobs/{waiting.id}")).status_code == 404
            for action in ("retry", "cancel", "delete"):
                answer = await browser.post(
                    f"/dashboard/jobs/{waiting.id}/{action}", data=token_of(page)
                )
                assert answer.status_code == 303, action
                target = urlsplit(answer.headers["location"])
                assert target.path == "/dashboard/jobs"
                flash = parse_qs(target.query)["flash"]
                assert flash == [f"job {waiting.id} no longer exists"]
                shown = (await browser.get(answer.headers["location"])).text
                assert f"job {waiting.id} no longer exists" in shown


# -- finding 4: "Ran" only when it measures the last attempt ---------------------------------


def test_ran_is_left_out_for_a_job_cancelled_while_it_waited() -> None:
    started = NOW - timedelta(hours=3)
    error = ErrorRecord(attempt=1, at=started + timedelta(seconds=2), kind="E", message="no")
    # Failed 3 h ago, retried by an operator 1 h ago (due again), cancelled now while pending.
    retried = job(
        JobState.CANCELLED,
        attempted_at=started,
        scheduled_at=NOW - timedelta(hours=1),
        errors=(error,),
        cancelled_at=NOW,
    )
    assert labels(times_of(retried, NOW, None)) == {"Cancelled": "just now"}
    # Failed once, waiting for its automatic retry, cancelled: its error is after its start.
    waiting = job(
        JobState.CANCELLED,
        attempted_at=started,
        scheduled_at=started - timedelta(minutes=1),
        errors=(error,),
        cancelled_at=NOW,
    )
    assert "Ran" not in labels(times_of(waiting, NOW, None))
    # Cancelled while it ran (its second attempt, after the first failed): that run is shown.
    running = job(
        JobState.CANCELLED,
        attempted_at=NOW - timedelta(minutes=5),
        scheduled_at=NOW - timedelta(minutes=6),
        errors=(error,),
        cancelled_at=NOW,
    )
    assert labels(times_of(running, NOW, None)) == {
        "Cancelled": "just now",
        "Ran": "5 min",
        "Waited": "1 min",
    }
    # Completed after an operator's retry: attempted_at is the last attempt's start.
    completed = job(
        JobState.COMPLETED,
        attempted_at=NOW - timedelta(seconds=40),
        scheduled_at=NOW - timedelta(seconds=45),
        errors=(error,),
        completed_at=NOW - timedelta(seconds=10),
    )
    assert labels(times_of(completed, NOW, None))["Ran"] == "30.0 s"


# -- findings 5 and 6: progress percent and small counts -------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "label"),
    [
        (29, 100, "29 / 100 (29%)"),
        (57, 100, "57 / 100 (57%)"),
        (0.29, 1, "0.29 / 1 (29%)"),
        (99, 100, "99 / 100 (99%)"),
        (999_999, 1_000_000, "999,999 / 1,000,000 (99%)"),  # not done: never 100%
        (1e-7, 1e-6, "1e-07 / 1e-06 (10%)"),
        (0.5, 1e-6, "0.5 / 1e-06 (100%)"),
        (12.345, 100, "12.35 / 100 (12%)"),
    ],
)
def test_progress_percent_and_counts(done: float, total: float, label: str) -> None:
    shown = progress_of({"done": done, "total": total})
    assert shown is not None
    assert shown.label == label


# -- finding 7: meta a store cannot read -------------------------------------------------------


async def test_a_job_whose_stored_meta_is_not_an_object_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    clock = FrozenClock(NOW)
    async with TaskManager(f"sqlite:///{path}", clock=clock) as tw:
        tw.task(name="vault.open", queue="vault", sensitive=("token",))(vault_open)
        waiting = await tw.enqueue_task(
            "vault.open", args=["clip"], kwargs={"token": "SECRET-TOKEN"}, meta={"x": 1}
        )
        await tw.cancel_task(waiting.id)  # retriable: the page would offer "Edit & retry"
        with sqlite3.connect(path) as db:  # as someone with SQL access could
            db.execute("UPDATE taskward_jobs SET meta = '[1,2]' WHERE id = ?", (waiting.id,))
        async with browser_for(tw) as browser:
            page = await browser.get(f"/dashboard/jobs/{waiting.id}")
            fragment = await browser.get(f"/dashboard/fragments/jobs/{waiting.id}")
    assert (page.status_code, fragment.status_code) == (200, 200)
    assert "its stored meta is unreadable (a JSON list, not a JSON object)" in page.text
    assert "job-meta" not in page.text
    # Which arguments are sensitive is in the unreadable meta: none is shown, nor offered.
    assert "arguments not shown: the meta that says which are sensitive is unreadable" in page.text
    assert "SECRET-TOKEN" not in page.text
    assert "clip" not in page.text
    assert "edit-retry" not in page.text
    assert ">Retry</button>" in page.text
    # The lists and the API show the job too, its arguments hidden the same way.
    async with TaskManager(f"sqlite:///{path}", clock=clock) as tw, browser_for(tw) as browser:
        listed = await browser.get("/dashboard/jobs")
        api = await browser.get(f"/api/jobs/{waiting.id}")
    assert (listed.status_code, api.status_code) == (200, 200)
    assert "SECRET-TOKEN" not in listed.text + api.text
    assert "clip" not in listed.text + api.text
    assert api.json()["kwargs"] == {"token": "***"}


def vault_open(name: str, *, token: str) -> None:
    return None


def test_meta_helpers_take_meta_that_is_not_a_mapping() -> None:
    for meta in ([1, 2], None, "text", 3):
        assert user_meta(meta) == {}
        assert internal_notes(meta) == []
        assert schedule_note(meta) is None


# -- finding 8: timeouts and durations that are not finite -----------------------------------


def test_duration_of_what_is_not_a_finite_count_of_seconds() -> None:
    assert duration(math.nan) == "—"
    assert duration(math.inf) == "—"
    assert duration(-math.inf) == "—"
    assert duration(1e300) == "over 10 years"
    assert duration(10 * 365 * 86400) == "3650 d"
    running = job(JobState.RUNNING, attempted_at=NOW - timedelta(minutes=1))
    for unknown in (math.nan, math.inf):
        assert "Timeout" not in labels(times_of(running, NOW, unknown, "job"))
    assert labels(times_of(running, NOW, 1e300, "job"))["Timeout"] == "over 10 years"


def test_the_timeout_says_where_it_is_set() -> None:
    running = job(JobState.RUNNING, attempted_at=NOW - timedelta(minutes=1))
    notes = {
        source: [t.note for t in times_of(running, NOW, 60, source) if t.label == "Timeout"]
        for source in ("job", "task", "default")
    }
    assert notes == {
        "job": ["from the job"],
        "task": ["from the task"],
        "default": ["from the default"],
    }


async def test_the_page_says_the_timeout_is_the_default(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    url = f"sqlite:///{tmp_path}/t.db"
    async with TaskManager(url, clock=clock, default_timeout=90) as tw:
        tw.task(name="plain.run", queue="media")(lambda: None)
        job_id = await running_job_of(tw, clock, "plain.run")
        async with browser_for(tw) as browser:
            page = (await browser.get(f"/dashboard/jobs/{job_id}")).text
    assert re.search(r"<dt>Timeout</dt>\s*<dd[^>]*>1 min 30 s <span[^>]*>· from the default", page)


async def running_job_of(tw: TaskManager, clock: FrozenClock, task: str) -> int:
    enqueued = await tw.enqueue_task(task)
    backend = await tw._backend()
    now = clock.now()
    [claimed] = await backend.fetch(
        queue="media", limit=1, worker_id="w1", now=now, lease_until=now + timedelta(hours=1)
    )
    assert claimed.id == enqueued.id
    return enqueued.id


# -- finding 9: the retry banner -----------------------------------------------------------------


def test_the_retry_banner_says_a_retry_only_when_one_happened() -> None:
    at = "11:31:02 UTC"
    assert retry_message(12, JobState.FAILED, JobState.PENDING, at) == (
        "job 12 retried at 11:31:02 UTC: moved from failed to pending"
    )
    assert retry_message(12, JobState.CANCELLED, JobState.SCHEDULED, at).startswith(
        "job 12 retried at"
    )
    # Read as failed, but retried by someone else and claimed by a worker before this retry:
    # the store returns it unchanged, running.
    assert retry_message(12, JobState.FAILED, JobState.RUNNING, at) == (
        "job 12 not retried: it was running at 11:31:02 UTC"
    )
    assert retry_message(12, JobState.FAILED, JobState.FAILED, at) == (
        "job 12 not retried: it was failed at 11:31:02 UTC"
    )
    assert retry_message(12, JobState.PENDING, JobState.PENDING, at) == (
        "job 12 not retried: it was pending at 11:31:02 UTC"
    )


# -- finding 11: a schedule's own meta, in words -------------------------------------------------


def test_a_schedule_s_meta_is_said_in_words() -> None:
    run_now = {"schedule": "nightly", "fire_at": "2026-12-06T11:00:00+00:00", "run_now": True}
    assert schedule_note(run_now) == "inserted by schedule nightly's Run now"
    assert user_meta(run_now) == {"schedule": "nightly", "fire_at": "2026-12-06T11:00:00+00:00"}
    fired = {"schedule": "nightly", "fire_at": "2026-12-06T11:00:00+00:00"}
    assert schedule_note(fired) == (
        "inserted by schedule nightly for its fire time 2026-12-06 11:00:00 UTC"
    )
    assert schedule_note({"schedule": "nightly", "fire_at": "soon"}) == (
        "inserted by schedule nightly"
    )
    # An application's own run_now (no schedule) is its data: shown as written.
    assert user_meta({"run_now": True}) == {"run_now": True}
    assert schedule_note({"run_now": True}) is None


async def test_the_page_says_which_schedule_ran_it_now(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    async with TaskManager(f"sqlite:///{tmp_path}/s.db", clock=clock) as tw:
        register(tw)
        meta: dict[str, Any] = {
            "schedule": "nightly",
            "fire_at": NOW.isoformat(),
            "run_now": True,
        }
        waiting = await tw.enqueue_task("media.encode", args=[1], meta=meta)
        async with browser_for(tw) as browser:
            page = (await browser.get(f"/dashboard/jobs/{waiting.id}")).text
    assert '<p class="note schedule-note">inserted by schedule nightly&#39;s Run now</p>' in page
    assert "run_now" not in page
    assert "nightly" in page.split('class="code meta"')[1]
