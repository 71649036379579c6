"""The pure rules of replays: hidden values put back, the record, the dead-letter filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskward.edits import REPLAYS_META_KEY, edited_job, replay_record
from taskward.graph import WORKFLOW_META_KEY
from taskward.jobs import ErrorRecord, Job, JobEdit, JobState
from taskward.limits import PartitionBy
from taskward.replays import DeadLetterFilter, matches, restore_hidden
from taskward.tasks import SENSITIVE_META_KEY, redact

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MARKER = {"names": ["token"], "positions": [1], "rest": None, "params": None}


def job(**fields: object) -> Job:
    values: dict[str, object] = {
        "id": 7,
        "task": "t",
        "queue": "q",
        "args": ["ada", "pw-1"],
        "kwargs": {"opts": {"token": "tk-1", "n": 1}, "plain": "x"},
        "state": JobState.FAILED,
        "priority": 5,
        "attempt": 3,
        "max_attempts": 3,
        "scheduled_at": NOW,
        "inserted_at": NOW,
        "completed_at": NOW,
        "meta": {SENSITIVE_META_KEY: MARKER},
        "errors": (ErrorRecord(attempt=3, at=NOW, kind="SMTPError", message="down"),),
    }
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


def test_stars_where_a_value_is_hidden_keep_it_elsewhere_they_are_values() -> None:
    args, kwargs = restore_hidden(
        job(), ["***", "***"], {"opts": {"token": "***", "n": 2}, "plain": "***"}
    )
    assert args == ["***", "pw-1"]  # position 0 is not hidden: "***" is a value there
    assert kwargs == {"opts": {"token": "tk-1", "n": 2}, "plain": "***"}
    assert restore_hidden(job(), None, None) == (None, None)


def test_the_record_keeps_originals_redacted_and_only_what_changed() -> None:
    edit = JobEdit(
        replay={"id": "r", "at": NOW.isoformat(), "by": None, "note": "n"},
        args=["bob", "pw-2"],
        args_json='["bob","pw-2"]',
        queue="q",  # unchanged: not recorded
        priority=1,
    )
    record = replay_record(job(), edit)
    assert record == {
        "id": "r",
        "at": NOW.isoformat(),
        "by": None,
        "note": "n",
        "state": "failed",
        "attempt": 3,
        "args": ["ada", "***"],
        "priority": 5,
    }
    edited = edited_job(job(), edit, PartitionBy(arg=0))
    assert edited.args == ["bob", "pw-2"]
    assert edited.partition_key == "bob"
    assert edited.meta[REPLAYS_META_KEY] == [record]
    assert edited.meta[SENSITIVE_META_KEY] == MARKER


def test_the_dead_letter_filter() -> None:
    failed, discarded = job(), job(state=JobState.DISCARDED, completed_at=None, discarded_at=NOW)
    assert matches(failed, DeadLetterFilter())
    assert not matches(discarded, DeadLetterFilter())
    assert matches(discarded, DeadLetterFilter(include_discarded=True))
    assert matches(failed, DeadLetterFilter(error_kind="SMTPError"))
    assert not matches(failed, DeadLetterFilter(error_kind="KeyError"))
    assert matches(failed, DeadLetterFilter(since=NOW))
    assert not matches(failed, DeadLetterFilter(since=NOW + timedelta(seconds=1)))
    assert not matches(job(state=JobState.CANCELLED), DeadLetterFilter(include_discarded=True))


def test_large_originals_are_recorded_by_size_only() -> None:
    big = job(args=["x" * 10_000], meta={})
    edit = JobEdit(replay={"id": "r"}, args=["y"], args_json='["y"]')
    record = replay_record(big, edit)
    assert "args" not in record
    assert record["args_omitted_bytes"] == 10_004  # ["x…x"]


def test_a_step_receiving_a_value_has_its_marks_shifted() -> None:
    """Marks count from the first parameter; a pass_result step's args start at the second."""
    # def s(upstream, password, x, *rest) with sensitive=("password", "rest")
    marker = {"names": ["password", "rest"], "positions": [1], "rest": 3}
    step = {WORKFLOW_META_KEY: {"id": 1, "step": "s", "pass": "result", "dependents": False}}
    meta = {SENSITIVE_META_KEY: marker, **step}
    assert redact(["hunter2", "x", "r1", "r2"], {}, meta)[0] == ["***", "x", "***", "***"]
    plain = {
        SENSITIVE_META_KEY: marker,
        WORKFLOW_META_KEY: {**step[WORKFLOW_META_KEY], "pass": "none"},
    }
    assert redact(["u", "hunter2", "x", "r1"], {}, plain)[0] == ["u", "***", "x", "***"]
    shown = job(args=["hunter2", "x"], meta=meta)
    record = replay_record(shown, JobEdit(replay={"id": "r"}, args=["***", "y"]))
    assert record["args"] == ["***", "x"]
    assert restore_hidden(shown, ["***", "y"], None)[0] == ["hunter2", "y"]
