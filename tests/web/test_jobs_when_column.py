"""The job lists' "When" column: the time that fits each state (issue 26)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskward import JobState
from taskward.jobs import ErrorRecord, Job
from taskward.web.jobs_when import Progress, job_when, when_sort_field

NOW = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def job(state: JobState, **fields: object) -> Job:
    base: dict[str, object] = {
        "id": 1,
        "task": "t",
        "queue": "q",
        "args": [],
        "kwargs": {},
        "state": state,
        "priority": 5,
        "attempt": 1,
        "max_attempts": 3,
        "scheduled_at": NOW - timedelta(minutes=3),
        "inserted_at": NOW - timedelta(minutes=10),
    }
    return Job(**{**base, **fields})  # type: ignore[arg-type]


def minutes(n: float) -> datetime:
    return NOW + timedelta(minutes=n)


def test_each_state_says_its_own_time() -> None:
    due = job_when(job(JobState.SCHEDULED, scheduled_at=minutes(5)), NOW)
    assert (due.text, due.at) == ("due in 5 min", minutes(5))
    assert job_when(job(JobState.RETRYABLE, scheduled_at=minutes(1)), NOW).text == "due in 1 min"
    assert job_when(job(JobState.PENDING), NOW).text == "waiting for 3 min"
    assert job_when(job(JobState.BLOCKED), NOW).text == "waiting for 3 min"
    running = job_when(
        job(
            JobState.RUNNING,
            attempted_at=minutes(-6),
            progress={"done": 30, "total": 120, "stage": "x"},
            timeout=600,
        ),
        NOW,
    )
    assert (running.text, running.at, running.timeout) == (
        "running for 6 min",
        minutes(-6),
        "timeout 10 min",
    )
    assert running.progress is not None
    assert running.progress.percent == 25
    done = job_when(job(JobState.COMPLETED, completed_at=minutes(-2)), NOW)
    assert (done.text, done.at) == ("finished 2 min ago", minutes(-2))
    error = ErrorRecord(attempt=3, at=minutes(-4), kind="E", message="m")
    failed = job(JobState.FAILED, completed_at=minutes(-4), errors=(error,))
    assert job_when(failed, NOW).text == "died 4 min ago"
    discarded = job(JobState.DISCARDED, discarded_at=minutes(-7), errors=(error,))
    assert job_when(discarded, NOW).text == "died 7 min ago"
    old_failed = job(JobState.FAILED, errors=(error,))  # no completed_at: the error's time
    assert job_when(old_failed, NOW).at == minutes(-4)
    cancelled = job_when(job(JobState.CANCELLED, cancelled_at=minutes(-90)), NOW)
    assert cancelled.text == "cancelled 1 h 30 min ago"


def test_progress_needs_numbers() -> None:
    for progress in (
        {"done": 1},
        {"done": "1", "total": 2},
        {"done": 1, "total": 0},
        {"done": True, "total": 2},
        {"done": float("nan"), "total": 2},
        {"done": 1e308, "total": 1},  # a huge float: round(inf) once broke the list
        {"done": 10**400, "total": 1},  # an int no float holds: math.isfinite overflowed
        {"done": 1, "total": 10**400},
        {"done": -1, "total": 2},
        [1, 2],
        None,
    ):
        shown = job_when(job(JobState.RUNNING, attempted_at=NOW, progress=progress), NOW)
        assert shown.progress is None, progress
    over = job_when(job(JobState.RUNNING, attempted_at=NOW, progress={"done": 9, "total": 3}), NOW)
    assert over.progress is not None
    assert over.progress.percent == 100
    # done / total is inf: no error (a full bar, or none), never a broken list
    tiny = job_when(
        job(JobState.RUNNING, attempted_at=NOW, progress={"done": 1, "total": 1e-320}), NOW
    )
    assert tiny.progress is None or tiny.progress.percent == 100
    assert Progress(done=1, total=1e-320).percent == 100


def test_the_when_header_sorts_by_the_field_that_fits() -> None:
    assert when_sort_field(frozenset({JobState.SCHEDULED, JobState.PENDING})) == "scheduled_at"
    assert when_sort_field(frozenset({JobState.FAILED, JobState.DISCARDED})) == "attempted_at"
    assert when_sort_field(frozenset({JobState.COMPLETED})) == "completed_at"
    assert when_sort_field(None) == "inserted_at"
