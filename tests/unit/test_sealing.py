"""``taskward.sealing``: what a sealed job stores, and how each reader treats it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskward.encryption import EncryptionError, KeyRing, generate_key, is_envelope
from taskward.jobs import EncodedPayload, ErrorRecord, Job, JobState, JobUpdate
from taskward.sealing import (
    ENCRYPTED_PLACEHOLDER,
    SEALED_KWARG,
    SEALED_META,
    masked,
    open_arguments,
    open_job,
    seal_payload,
    seal_update,
    still_sealed,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stored(ring: KeyRing, *, task: str = "t", sealed: bool = True) -> Job:
    clear = EncodedPayload(
        args=[1, "secret"],
        kwargs={"k": "v"},
        args_json='[1,"secret"]',
        kwargs_json='{"k":"v"}',
        size=23,
    )
    payload = seal_payload(ring, clear, task) if sealed else clear
    assert payload.size == clear.size  # the limit applies to what the producer gave
    return Job(
        id=7,
        task=task,
        queue="q",
        args=payload.args,
        kwargs=payload.kwargs,
        state=JobState.RUNNING,
        priority=5,
        attempt=1,
        max_attempts=3,
        scheduled_at=NOW,
        inserted_at=NOW,
        meta={SEALED_META: 1} if sealed else {},
    )


def test_arguments_are_one_envelope_bound_to_the_task() -> None:
    ring = KeyRing([generate_key()])
    job = stored(ring)
    assert job.args == []
    assert set(job.kwargs) == {SEALED_KWARG}
    assert is_envelope(job.kwargs[SEALED_KWARG])
    assert still_sealed(job)
    opened = open_arguments(ring, job)
    assert (opened.args, opened.kwargs) == ([1, "secret"], {"k": "v"})
    assert not still_sealed(opened)
    assert open_arguments(ring, opened) is opened
    moved = stored(ring, task="other")
    with pytest.raises(EncryptionError):
        open_arguments(ring, Job(**{**_fields(moved), "task": "t"}))
    with pytest.raises(EncryptionError, match="no encryption keys"):
        open_arguments(None, job)


def test_outcomes_are_sealed_for_the_store_and_opened_for_readers() -> None:
    ring = KeyRing([generate_key()])
    job = stored(ring)
    error = ErrorRecord(attempt=1, at=NOW, kind="ValueError", message="bad secret", traceback="tb")
    update = JobUpdate(job_id=7, attempt=1, state=JobState.COMPLETED, at=NOW, result={"x": 1})
    failed = JobUpdate(job_id=7, attempt=1, state=JobState.FAILED, at=NOW, error=error)
    sealed_result = seal_update(ring, job, update).result
    sealed_error = seal_update(ring, job, failed).error
    assert is_envelope(sealed_result)
    assert sealed_error is not None
    assert sealed_error.kind == "ValueError"
    assert is_envelope(sealed_error.message)
    assert is_envelope(sealed_error.traceback)
    assert seal_update(None, job, update) is update  # no key: written as computed
    plain = stored(ring, sealed=False)
    assert seal_update(ring, plain, update) is update

    read = Job(**{**_fields(job), "result": sealed_result, "errors": (sealed_error,)})
    opened = open_job(ring, read)
    assert opened.result == {"x": 1}
    assert (opened.errors[0].message, opened.errors[0].traceback) == ("bad secret", "tb")
    assert opened.args == [1, "secret"]
    other = KeyRing([generate_key()])
    unopened = open_job(other, read)  # never raises: what it cannot open stays sealed
    assert unopened.result == sealed_result
    shown = masked(unopened)
    assert shown.result == ENCRYPTED_PLACEHOLDER
    assert (shown.errors[0].message, shown.errors[0].traceback) == (ENCRYPTED_PLACEHOLDER, None)
    assert still_sealed(shown)
    assert masked(plain) is plain


def _fields(job: Job) -> dict[str, object]:
    return {name: getattr(job, name) for name in job.__dataclass_fields__}
