"""Unit tests for taskward.jobs: validation helpers, JobFilter, Page and Job serialisation."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime

import pytest

from taskward.errors import InvalidOptions
from taskward.jobs import (
    FINISHED_STATES,
    MAX_ATTEMPTS,
    MAX_DELAY_SECONDS,
    SORTABLE_FIELDS,
    UNIQUE_BLOCKING_STATES,
    WAITING_STATES,
    ErrorRecord,
    Job,
    JobFilter,
    JobState,
    Page,
    validate_max_attempts,
    validate_priority,
    validate_queue_name,
    validate_seconds,
    validate_tags,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = JobState

# -- queue names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["default", "a", "emails.high", "reports-v2", "Q_1", "x" * 64, "0", "a.b-c_D9"]
)
def test_valid_queue_names(name: str) -> None:
    assert validate_queue_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 65,
        "has space",
        " leading",
        "trailing\n",
        "tab\there",
        "q'; DROP TABLE jobs; --",
        'q" OR 1=1',
        "a/b",
        "é",
        "queue:1",
        "*",
    ],
)
def test_invalid_queue_names(name: str) -> None:
    with pytest.raises(InvalidOptions, match="invalid queue name"):
        validate_queue_name(name)


@pytest.mark.parametrize("name", [None, 123, b"default", ["default"]])
def test_queue_name_must_be_a_string(name: object) -> None:
    with pytest.raises(InvalidOptions, match="invalid queue name"):
        validate_queue_name(name)  # type: ignore[arg-type]


# -- priority, max_attempts, seconds ---------------------------------------------------------


@pytest.mark.parametrize("priority", range(10))
def test_valid_priorities(priority: int) -> None:
    assert validate_priority(priority) == priority


@pytest.mark.parametrize("priority", [-1, 10, 100, True, False, 1.0, "1", None])
def test_invalid_priorities(priority: object) -> None:
    with pytest.raises(InvalidOptions, match="priority"):
        validate_priority(priority)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_attempts", [1, 2, 25, 10_000, MAX_ATTEMPTS])
def test_valid_max_attempts(max_attempts: int) -> None:
    assert validate_max_attempts(max_attempts) == max_attempts


@pytest.mark.parametrize("max_attempts", [0, -1, True, 2.0, "3", None, MAX_ATTEMPTS + 1, 2**63])
def test_invalid_max_attempts(max_attempts: object) -> None:
    with pytest.raises(InvalidOptions, match="max_attempts"):
        validate_max_attempts(max_attempts)  # type: ignore[arg-type]


def test_validate_seconds() -> None:
    assert validate_seconds("timeout", None) is None
    assert validate_seconds("timeout", 3) == 3.0
    assert validate_seconds("delay", 0) == 0.0
    for bad in (-1, float("inf"), float("nan"), True, "5"):
        with pytest.raises(InvalidOptions, match="timeout"):
            validate_seconds("timeout", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptions, match="> 0"):
        validate_seconds("timeout", 0, allow_zero=False)
    # Longer would overflow the dates computed from it (datetime ends at year 9999).
    assert validate_seconds("delay", MAX_DELAY_SECONDS) == MAX_DELAY_SECONDS
    with pytest.raises(InvalidOptions, match="delay must be at most"):
        validate_seconds("delay", MAX_DELAY_SECONDS + 1)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (None, ()),
        ([], ()),
        (["urgent"], ("urgent",)),
        (("a", "b"), ("a", "b")),
        ({"b", "a"}, ("a", "b")),  # sorted: the stored order must not depend on hashing
    ],
)
def test_valid_tags(tags: object, expected: tuple[str, ...]) -> None:
    assert validate_tags(tags) == expected


@pytest.mark.parametrize("tags", ["urgent", b"urgent", 3, {"a": 1}, [1], [""], ["\udcff"]])
def test_invalid_tags(tags: object) -> None:
    with pytest.raises(InvalidOptions, match="tag"):
        validate_tags(tags)


# -- JobFilter and Page ------------------------------------------------------------------------


def test_job_filter_defaults() -> None:
    f = JobFilter()
    assert (f.page, f.per_page, f.sort_by) == (1, 50, "-id")
    assert (f.sort_field, f.descending, f.offset) == ("id", True, 0)
    assert (f.states, f.queue, f.task) == (None, None, None)


def test_job_filter_offset_and_direction() -> None:
    f = JobFilter(page=3, per_page=20, sort_by="priority")
    assert f.offset == 40
    assert f.sort_field == "priority"
    assert f.descending is False


@pytest.mark.parametrize("page", [0, -1])
def test_job_filter_rejects_bad_page(page: int) -> None:
    with pytest.raises(InvalidOptions, match="page must be >= 1"):
        JobFilter(page=page)


@pytest.mark.parametrize("per_page", [0, -5, 1001])
def test_job_filter_rejects_bad_per_page(per_page: int) -> None:
    with pytest.raises(InvalidOptions, match="per_page"):
        JobFilter(per_page=per_page)


@pytest.mark.parametrize("per_page", [1, 1000])
def test_job_filter_accepts_per_page_bounds(per_page: int) -> None:
    assert JobFilter(per_page=per_page).per_page == per_page


@pytest.mark.parametrize("field", sorted(SORTABLE_FIELDS))
def test_job_filter_accepts_whitelisted_sort_fields(field: str) -> None:
    assert JobFilter(sort_by=field).sort_field == field
    assert JobFilter(sort_by=f"-{field}").descending is True


@pytest.mark.parametrize(
    "sort_by", ["task", "args", "state; DROP TABLE jobs", "", "-", "id DESC", "+id", "Id"]
)
def test_job_filter_rejects_other_sort_fields(sort_by: str) -> None:
    with pytest.raises(InvalidOptions, match="cannot sort by"):
        JobFilter(sort_by=sort_by)


@pytest.mark.parametrize(
    ("total", "size", "pages"), [(0, 50, 1), (1, 50, 1), (50, 50, 1), (51, 50, 2), (101, 10, 11)]
)
def test_page_total_pages(total: int, size: int, pages: int) -> None:
    page: Page[int] = Page(items=[], total_entries=total, page_number=1, page_size=size)
    assert page.total_pages == pages


# -- Job -----------------------------------------------------------------------------------


def full_job() -> Job:
    return Job(
        id=1,
        task="app:send",
        queue="emails",
        args=[1, "x", {"y": [2]}],
        kwargs={"k": None},
        state=S.RETRYABLE,
        priority=2,
        attempt=1,
        max_attempts=3,
        scheduled_at=NOW,
        inserted_at=NOW,
        attempted_at=NOW,
        attempted_by="w1",
        errors=(ErrorRecord(attempt=1, at=NOW, kind="ValueError", message="bad", traceback="tb"),),
        result={"r": 1},
        progress=0.5,
        unique_key="k",
        tags=("a", "b"),
        meta={"m": 1},
        depends_on=(3, 4),
        timeout=2.5,
    )


def test_job_to_dict_is_json_serializable() -> None:
    data = full_job().to_dict()
    decoded = json.loads(json.dumps(data))
    assert decoded["state"] == "retryable"
    assert decoded["scheduled_at"] == "2026-01-01T00:00:00+00:00"
    assert decoded["completed_at"] is None
    assert decoded["tags"] == ["a", "b"]
    assert decoded["depends_on"] == [3, 4]
    assert decoded["errors"] == [
        {
            "attempt": 1,
            "at": "2026-01-01T00:00:00+00:00",
            "kind": "ValueError",
            "message": "bad",
            "traceback": "tb",
        }
    ]
    assert set(decoded) == set(Job.__dataclass_fields__)


def test_error_record_round_trips_through_dict() -> None:
    record = full_job().errors[0]
    assert ErrorRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_job_properties() -> None:
    job = full_job()
    assert job.last_error == job.errors[0]
    assert job.is_finished is False
    assert replace(job, state=S.COMPLETED).is_finished is True
    assert replace(job, errors=()).last_error is None


def test_job_is_frozen() -> None:
    job = full_job()
    with pytest.raises(FrozenInstanceError):
        job.state = S.PENDING  # type: ignore[misc]


def test_state_sets_are_consistent() -> None:
    assert WAITING_STATES.isdisjoint(FINISHED_STATES)
    assert WAITING_STATES | FINISHED_STATES | {S.RUNNING} == set(JobState)
    assert {S.FAILED, S.DISCARDED, S.CANCELLED}.isdisjoint(UNIQUE_BLOCKING_STATES)


def test_evolve_job_is_dataclasses_replace() -> None:
    from taskward.backends.sql.rows import JOB_FIELDS, evolve_job

    job = full_job()
    assert evolve_job(job) == job
    assert evolve_job(job) is not job
    changes = {"state": S.RUNNING, "attempt": 2, "lease_until": NOW, "errors": (), "result": None}
    assert evolve_job(job, **changes) == replace(job, **changes)
    # every field can be changed, each on its own
    for name in JOB_FIELDS:
        value = getattr(job, name)
        assert getattr(evolve_job(job, **{name: value}), name) is value
    with pytest.raises(TypeError):
        evolve_job(job, no_such_field=1)
