"""Contract: ``Backend.reseal`` (key rotation) writes only a job still as it was read.

The fence is the job's state, attempt and number of errors; every other field stays as it was.
"""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.jobs import ErrorRecord, JobState, Reseal
from taskward.states import Completed, Failed

from .helpers import claim, finish_with, insert_one

S = JobState
SEALED = {"taskward.sealed": "twenc1.old.AAAA"}


async def test_a_job_as_read_is_rewritten_and_nothing_else_changes(backend: Backend) -> None:
    job = await insert_one(backend, kwargs=SEALED, meta={"taskward.sealed": 1}, tags=("t",))
    rewrite = Reseal(
        job_id=job.id,
        state=S.PENDING,
        attempt=0,
        errors_count=0,
        kwargs={"taskward.sealed": "twenc1.new.BBBB"},
    )
    assert await backend.reseal([rewrite]) == [True]
    stored = await backend.get(job.id)
    assert stored.kwargs == {"taskward.sealed": "twenc1.new.BBBB"}
    assert stored.meta == job.meta
    assert (stored.state, stored.attempt, stored.tags, stored.args) == (S.PENDING, 0, ("t",), [])


async def test_results_and_errors_are_rewritten_whole(backend: Backend) -> None:
    done = await claim(backend, queue="a")
    assert await finish_with(backend, done, Completed(result="twenc1.old.R"))
    failed = await claim(backend, queue="b", max_attempts=1)
    assert await finish_with(backend, failed, Failed(kind="ValueError", message="twenc1.old.M"))
    error = (await backend.get(failed.id)).errors[0]
    new_error = ErrorRecord(
        attempt=error.attempt,
        at=error.at,
        kind=error.kind,
        message="twenc1.new.M",
        traceback="twenc1.new.T",
    )
    flags = await backend.reseal(
        [
            Reseal(
                job_id=done.id, state=S.COMPLETED, attempt=1, errors_count=0, result="twenc1.new.R"
            ),
            Reseal(
                job_id=failed.id,
                state=S.FAILED,
                attempt=1,
                errors_count=1,
                errors=(new_error,),
            ),
        ]
    )
    assert flags == [True, True]
    assert (await backend.get(done.id)).result == "twenc1.new.R"
    (stored_error,) = (await backend.get(failed.id)).errors
    assert (stored_error.kind, stored_error.message, stored_error.traceback) == (
        "ValueError",
        "twenc1.new.M",
        "twenc1.new.T",
    )
    assert stored_error.at == error.at


@pytest.mark.parametrize(
    ("state", "attempt", "errors"),
    [(S.RUNNING, 1, 0), (S.PENDING, 1, 0), (S.PENDING, 0, 1)],
    ids=["state", "attempt", "errors"],
)
async def test_a_job_that_changed_is_left_alone(
    backend: Backend, state: JobState, attempt: int, errors: int
) -> None:
    job = await insert_one(backend, kwargs=SEALED)
    stale = Reseal(
        job_id=job.id,
        state=state,
        attempt=attempt,
        errors_count=errors,
        kwargs={"taskward.sealed": "twenc1.new.BBBB"},
    )
    missing = Reseal(job_id=job.id + 1000, state=S.PENDING, attempt=0, errors_count=0, kwargs={})
    assert await backend.reseal([stale, missing]) == [False, False]
    assert (await backend.get(job.id)).kwargs == SEALED
    assert await backend.reseal([]) == []


@pytest.mark.any_store
async def test_no_job_no_write(backend: Backend) -> None:
    absent = [
        Reseal(job_id=job_id, state=S.PENDING, attempt=0, errors_count=0, kwargs={})
        for job_id in (424242, 424243)
    ]
    assert await backend.reseal(absent) == [False, False]


async def test_the_arguments_envelope_is_part_of_the_fence(backend: Backend) -> None:
    job = await insert_one(backend, kwargs=SEALED)
    new = {"taskward.sealed": "twenc1.new.BBBB"}
    read_before_an_edit = Reseal(
        job_id=job.id, state=S.PENDING, attempt=0, errors_count=0, envelope="twenc1.other.CC"
    )
    assert await backend.reseal([read_before_an_edit]) == [False]
    as_read = Reseal(
        job_id=job.id,
        state=S.PENDING,
        attempt=0,
        errors_count=0,
        envelope=SEALED["taskward.sealed"],
        kwargs=new,
    )
    assert await backend.reseal([as_read]) == [True]
    assert (await backend.get(job.id)).kwargs == new
