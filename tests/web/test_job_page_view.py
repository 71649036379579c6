"""The job page's view model and page over ASGI (issue 26): state and error first.

Unit tests of :mod:`taskward.web.job_view` (progress parsing, internal meta, times per state,
actions per state) on plain ``Job`` values, then the page itself on a frozen clock: the newest
traceback comes before the arguments, ``taskward.*`` meta is not shown, a running job says for
how long, against its timeout, with a progress bar; and the banner after an action never
contradicts the state the page shows, even when a worker ran the job in between.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.jobs import ErrorRecord, Job
from taskward.web import AdminAuth, create_app
from taskward.web.formatting import duration
from taskward.web.job_view import (
    Actions,
    actions_for,
    internal_notes,
    progress_of,
    times_of,
    user_meta,
)
from web.helpers import BASIC, PASSWORD, USER, client_for

NOW = datetime(2026, 12, 6, 11, 31, 0, tzinfo=UTC)
HOSTILE = ["<script>window.__x = 1</script>", '<img src=x onerror="alert(1)">']


def job(state: JobState, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "id": 12,
        "task": "reports.build",
        "queue": "reports",
        "args": [1],
        "kwargs": {},
        "state": state,
        "priority": 0,
        "attempt": 1,
        "max_attempts": 3,
        "scheduled_at": NOW - timedelta(minutes=10),
        "inserted_at": NOW - timedelta(minutes=10),
    }
    return Job(**(values | fields))


# -- progress -------------------------------------------------------------------------------


def test_progress_with_done_and_total_is_a_bar_with_its_text() -> None:
    shown = progress_of({"done": 3, "total": 10, "stage": "resize", "message": "page 3", "x": 1})
    assert shown is not None
    assert shown.fraction == pytest.approx(0.3)
    assert shown.label == "3 / 10 (30%)"
    assert shown.notes == ("resize", "page 3")
    assert shown.rest == '{"x": 1}'
    big = progress_of({"done": 1_500_000, "total": 3_000_000})
    assert big is not None
    assert big.label == "1,500,000 / 3,000,000 (50%)"
    assert big.rest is None
    floats = progress_of({"done": 0.25, "total": 1.0})
    assert floats is not None
    assert floats.label == "0.25 / 1 (25%)"


@pytest.mark.parametrize(
    "value",
    [
        {"done": 3, "total": 0},  # nothing to divide by
        {"done": -1, "total": 10},
        {"done": 3, "total": -10},
        {"done": "3", "total": "10"},  # strings are not counts
        {"done": True, "total": 10},  # nor are booleans
        {"done": math.inf, "total": 10},
        {"done": math.nan, "total": 10},
        {"done": 3, "total": 10**400},  # beyond a float
        {"done": 3, "total": 2**60},  # not exact as a float
        {"done": 3},
        {"total": 10},
    ],
)
def test_progress_that_is_not_a_count_is_shown_as_json(value: dict[str, Any]) -> None:
    shown = progress_of(value)
    assert shown is not None
    assert shown.fraction is None
    assert shown.rest is not None
    assert "\n" not in shown.rest


def test_progress_more_done_than_total_fills_the_bar_and_says_the_count() -> None:
    shown = progress_of({"done": 12, "total": 10})
    assert shown is not None
    assert shown.fraction == 1.0
    assert shown.label == "12 / 10 (100%)"


def test_progress_of_other_shapes() -> None:
    assert progress_of(None) is None
    number = progress_of(0.5)
    assert number is not None
    assert (number.fraction, number.rest) == (None, "0.5")
    long = progress_of({"message": "x" * 10_000})
    assert long is not None
    assert long.rest is None
    assert len(long.notes[0]) == 2000
    huge = progress_of(list(range(5000)))
    assert huge is not None
    assert huge.rest is not None
    assert len(huge.rest) == 2000


# -- meta, times, actions ---------------------------------------------------------------------


def test_internal_meta_is_hidden_and_said_in_words() -> None:
    meta = {
        "taskward.sensitive": {"names": ["password"]},
        "taskward.replays": [{"id": 1}],
        "taskward.sealed": 1,
        "taskward.workflow": {"id": 3},
        "tenant": "acme",
    }
    assert user_meta(meta) == {"tenant": "acme"}
    assert user_meta({"taskward.sealed": 1}) == {}
    notes = internal_notes(meta)
    assert any("***" in n for n in notes)
    assert any("encrypted" in n for n in notes)
    assert internal_notes({"tenant": "acme"}) == []


def test_duration_to_the_second() -> None:
    assert [duration(s) for s in (0, 45.9, 60, 372, 3600, 7500, 90000, -3)] == [
        "0 s",
        "45 s",
        "1 min",
        "6 min 12 s",
        "1 h",
        "2 h 5 min",
        "1 d 1 h",
        "0 s",
    ]


def labels(shown: list[Any]) -> dict[str, str]:
    return {t.label: t.text + (f" [{t.flag}]" if t.flag else "") for t in shown}


def test_times_fit_each_state() -> None:
    later = NOW + timedelta(minutes=5)
    assert labels(times_of(job(JobState.SCHEDULED, scheduled_at=later), NOW, None)) == {
        "Due": "in 5 min",
        "Inserted": "10 min ago",
    }
    assert labels(times_of(job(JobState.RETRYABLE, scheduled_at=later), NOW, None))[
        "Next attempt"
    ] == ("in 5 min")
    assert labels(times_of(job(JobState.PENDING), NOW, None)) == {"Waiting for": "10 min"}
    started = NOW - timedelta(minutes=6, seconds=12)
    running = job(JobState.RUNNING, attempted_at=started)
    assert labels(times_of(running, NOW, 600)) == {
        "Running for": "6 min 12 s",
        "Timeout": "10 min",
    }
    assert labels(times_of(running, NOW, 300))["Timeout"] == "5 min [past its timeout]"
    assert "Timeout" not in labels(times_of(running, NOW, None))
    [first, *_] = times_of(running, NOW, None)
    assert first.at == started  # the absolute start, on hover
    done = job(JobState.COMPLETED, attempted_at=started, completed_at=NOW - timedelta(seconds=30))
    assert labels(times_of(done, NOW, None)) == {
        "Finished": "30 s ago",
        "Ran": "5 min 42 s",
        "Waited": "3 min 48 s",
    }
    died = NOW - timedelta(seconds=2)
    error = ErrorRecord(attempt=3, at=died, kind="ValueError", message="no")
    failed = job(JobState.FAILED, attempted_at=died - timedelta(seconds=0.25), errors=(error,))
    assert labels(times_of(failed, NOW, None)) == {
        "Died": "2 s ago",
        "Ran": "250 ms",
        "Waited": "9 min 57 s",
    }
    cancelled = job(JobState.CANCELLED, cancelled_at=NOW - timedelta(hours=2))
    assert labels(times_of(cancelled, NOW, None)) == {"Cancelled": "2 h ago"}


def test_actions_fit_each_state() -> None:
    expected = {
        JobState.FAILED: Actions(retry=True, cancel=False, stop=False, delete=True),
        JobState.DISCARDED: Actions(retry=True, cancel=False, stop=False, delete=True),
        JobState.CANCELLED: Actions(retry=True, cancel=False, stop=False, delete=True),
        JobState.COMPLETED: Actions(retry=False, cancel=False, stop=False, delete=True),
        JobState.PENDING: Actions(retry=False, cancel=True, stop=False, delete=True),
        JobState.SCHEDULED: Actions(retry=False, cancel=True, stop=False, delete=True),
        JobState.RETRYABLE: Actions(retry=False, cancel=True, stop=False, delete=True),
        JobState.BLOCKED: Actions(retry=False, cancel=True, stop=False, delete=True),
        JobState.RUNNING: Actions(retry=False, cancel=False, stop=True, delete=False),
    }
    assert set(expected) == set(JobState)
    for state, actions in expected.items():
        assert actions_for(job(state)) == actions, state
    asked = job(JobState.RUNNING, cancel_requested=True)
    assert actions_for(asked) == Actions(retry=False, cancel=False, stop=False, delete=False)


# -- the page over ASGI -----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
async def frozen(
    request: pytest.FixtureRequest, tmp_path: Any
) -> AsyncIterator[tuple[TaskManager, FrozenClock]]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/page.db"
    clock = FrozenClock(NOW)
    async with TaskManager(url, clock=clock, poll_interval=0.05, lease_seconds=5) as tw:
        yield tw, clock


def browser_for(tw: TaskManager) -> httpx.AsyncClient:
    app = create_app(tw, auth=AdminAuth(username=USER, password=PASSWORD))
    return client_for(app, authorization=BASIC)


def fail(n: int, label: str = "") -> None:
    raise ValueError(f"report {n} has no rows: " + " ".join(HOSTILE))


def slow(n: int) -> None:
    return None


def register(tw: TaskManager) -> None:
    tw.task(name="reports.fail", queue="reports", max_attempts=2)(fail)
    tw.task(name="media.encode", queue="media", timeout=600)(slow)


async def dead_job(tw: TaskManager, clock: FrozenClock) -> int:
    meta = {"taskward.sneaky": "INTERNAL-VALUE", "tenant": HOSTILE[1]}
    failed = await tw.enqueue_task("reports.fail", args=[7, "x" * 80], meta=meta)
    await tw.drain(["reports"], timeout=30)
    clock.advance(3600)  # past the retry delay: the second attempt fails too
    await tw.drain(["reports"], timeout=30)
    clock.advance(1)
    assert (await tw.get_task_status(failed.id)).state is JobState.FAILED
    return failed.id


async def running_job(tw: TaskManager, clock: FrozenClock, progress: Any) -> int:
    job = await tw.enqueue_task("media.encode", args=[1])
    backend = await tw._backend()
    now = clock.now()
    [claimed] = await backend.fetch(
        queue="media", limit=1, worker_id="w1", now=now, lease_until=now + timedelta(hours=1)
    )
    assert claimed.id == job.id
    assert await backend.set_progress(job.id, progress, worker_id="w1")
    return job.id


async def test_the_newest_error_comes_first_and_internal_meta_is_hidden(
    frozen: tuple[TaskManager, FrozenClock],
) -> None:
    tw, clock = frozen
    register(tw)
    job_id = await dead_job(tw, clock)
    async with browser_for(tw) as browser:
        html = (await browser.get(f"/dashboard/jobs/{job_id}")).text
    head, _, rest = html.partition('<pre class="code args">')
    assert rest, "the arguments are on the page"
    newest = head.split('<section class="panel newest-error">')[1]
    assert "Error of attempt 2" in newest
    assert "Traceback (most recent call last)" in newest  # the traceback is above the args
    assert "&lt;script&gt;window.__x" in newest
    assert "<script>window" not in html
    assert '<img src=x onerror="alert(1)">' not in html
    assert "attempt 2 of 2" in head
    assert re.search(r"<dt>Died</dt>\s*<dd[^>]*>.*?1 s ago", head, re.S)
    # The older attempt is below, folded.
    older = re.split(
        r'<section class="panel older-errors" id="job-errors-[0-9a-f]{12}" hx-preserve>', rest
    )[1]
    assert "Errors of earlier attempts (1)" in older
    assert "attempt 1 ·" in older
    # User meta folded, internal meta nowhere.
    assert re.search(r'<details class="job-meta" id="job-meta-[0-9a-f]{12}" hx-preserve>', rest)
    assert "tenant" in rest
    assert "&lt;img src=x onerror=" in rest
    assert "taskward." not in html.split("<main>")[1].replace("taskward.css", "")
    assert "INTERNAL-VALUE" not in html
    # Retry and Delete for a failed job; no Cancel.
    assert ">Retry</button>" in html
    assert 'href="#edit-retry"' in html
    assert ">Delete</button>" in html
    assert ">Cancel</button>" not in html


async def test_a_running_job_says_for_how_long_against_its_timeout(
    frozen: tuple[TaskManager, FrozenClock],
) -> None:
    tw, clock = frozen
    register(tw)
    job_id = await running_job(
        tw, clock, {"done": 3, "total": 10, "message": HOSTILE[0], "taskward.x": 1}
    )
    clock.advance(6 * 60 + 12)
    async with browser_for(tw) as browser:
        page = (await browser.get(f"/dashboard/jobs/{job_id}")).text
        assert re.search(r"<dt>Running for</dt>\s*<dd[^>]*><time[^>]*>6 min 12 s</time>", page)
        assert re.search(
            r"<dt>Timeout</dt>\s*<dd[^>]*>10 min <span[^>]*>· from the job</span></dd>", page
        )
        assert "past its timeout" not in page
        assert '<progress value="3.0" max="10.0">' in page
        assert "3 / 10 (30%)" in page
        assert '<p class="progress-note">&lt;script&gt;window.__x = 1&lt;/script&gt;</p>' in page
        assert ">Ask to stop</button>" in page
        assert ">Delete</button>" not in page
        assert ">Retry</button>" not in page
        clock.advance(4 * 60)  # the polled fragment recomputes from the manager's clock
        fragment = (await browser.get(f"/dashboard/fragments/jobs/{job_id}")).text
        assert fragment.startswith('<div id="job"')
        assert re.search(r"<dd[^>]*><time[^>]*>10 min 12 s</time>", fragment)
        assert re.search(
            r'10 min <span[^>]*>· from the job</span> <strong class="flag">past its timeout',
            fragment,
        )


async def test_the_banner_after_a_retry_never_contradicts_the_page(
    frozen: tuple[TaskManager, FrozenClock],
) -> None:
    """A worker runs the retried job, and it fails again, before the redirect is followed."""
    tw, clock = frozen
    register(tw)
    job_id = await dead_job(tw, clock)
    async with browser_for(tw) as browser:
        page = (await browser.get(f"/dashboard/jobs/{job_id}")).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        acted = clock.now()
        done = await browser.post(
            f"/dashboard/jobs/{job_id}/retry", data={"csrf_token": token.group(1)}
        )
        assert done.status_code == 303
        clock.advance(2)
        await tw.drain(["reports"], timeout=30)  # the worker: attempt 3 of the retried job fails
        assert (await tw.get_task_status(job_id)).state is JobState.FAILED
        shown = (await browser.get(done.headers["location"])).text
    banner = re.search(r'<p class="flash" role="status">([^<]*)</p>', shown)
    assert banner is not None
    text = banner.group(1)
    assert text == f"job {job_id} retried at {acted:%H:%M:%S} UTC: moved from failed to pending"
    # The banner tells what happened at a time; the page, read later, where the job is now.
    assert '<span class="badge s-failed">failed</span>' in shown
    assert f'as of <time datetime="{clock.now().isoformat()}">' in shown
    assert re.search(r"<dt>Died</dt>\s*<dd[^>]*>.*?just now", shown, re.S)
    assert "now pending" not in shown


async def test_actions_say_what_was_done_and_when(
    frozen: tuple[TaskManager, FrozenClock],
) -> None:
    tw, clock = frozen
    register(tw)
    waiting = await tw.enqueue_task("media.encode", args=[2], delay=3600)
    running = await running_job(tw, clock, None)
    async with browser_for(tw) as browser:
        page = (await browser.get(f"/dashboard/jobs/{waiting.id}")).text
        assert ">Cancel</button>" in page
        assert ">Retry</button>" not in page
        assert re.search(r"<dt>Due</dt>\s*<dd[^>]*><time[^>]*>in 1 h</time>", page)
        token = {"csrf_token": re.findall(r'name="csrf_token" value="([^"]+)"', page)[0]}

        async def act(job_id: int, action: str) -> str:
            answer = await browser.post(f"/dashboard/jobs/{job_id}/{action}", data=token)
            assert answer.status_code == 303
            location = answer.headers["location"]
            banner = re.search(r'role="status">([^<]*)<', (await browser.get(location)).text)
            assert banner is not None
            return banner.group(1)

        at = f"{clock.now():%H:%M:%S} UTC"
        assert await act(waiting.id, "cancel") == f"job {waiting.id} cancelled at {at}"
        assert await act(waiting.id, "retry") == (
            f"job {waiting.id} retried at {at}: moved from cancelled to pending"
        )
        assert (
            await act(waiting.id, "retry")
            == f"job {waiting.id} not retried: it was pending at {at}"
        )
        stop = await act(running, "cancel")
        assert stop.startswith(f"job {running} asked to stop at {at}")
        assert "stop requested" in (await browser.get(f"/dashboard/jobs/{running}")).text
        refused = await act(running, "delete")
        assert "running" in refused
        assert await act(waiting.id, "delete") == f"job {waiting.id} deleted at {at}"
        missing = await browser.get(f"/dashboard/jobs/{waiting.id}")
        assert missing.status_code == 404
        assert 'href="/dashboard/jobs"' in missing.text  # an HTML page with a way back
        unknown = await browser.post(f"/dashboard/jobs/{running}/explode", data=token)
        assert unknown.status_code == 404
        assert "unknown action" in unknown.text
