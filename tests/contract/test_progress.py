"""Contract: progress is stored for a running job, only by the worker that owns it."""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.jobs import JobState
from taskward.states import Completed

from .helpers import OTHER_WORKER, WORKER, claim, finish_with, reach

S = JobState


async def test_owner_sets_progress(backend: Backend) -> None:
    job = await claim(backend)
    assert await backend.set_progress(job.id, {"done": 3, "total": 10}, worker_id=WORKER)
    assert (await backend.get(job.id)).progress == {"done": 3, "total": 10}
    assert await backend.set_progress(job.id, 0.75, worker_id=WORKER)
    stored = await backend.get(job.id)
    assert stored.progress == 0.75
    assert stored.state is S.RUNNING


async def test_other_worker_cannot_set_progress(backend: Backend) -> None:
    job = await claim(backend, worker=WORKER)
    assert await backend.set_progress(job.id, 10, worker_id=WORKER)
    assert not await backend.set_progress(job.id, 99, worker_id=OTHER_WORKER)
    assert (await backend.get(job.id)).progress == 10


async def test_progress_is_refused_after_finish_and_kept(backend: Backend) -> None:
    job = await claim(backend)
    assert await backend.set_progress(job.id, "half", worker_id=WORKER)
    assert await finish_with(backend, job, Completed())
    assert not await backend.set_progress(job.id, "more", worker_id=WORKER)
    assert (await backend.get(job.id)).progress == "half"


@pytest.mark.parametrize("state", [S.PENDING, S.SCHEDULED, S.CANCELLED])
async def test_progress_of_a_job_that_is_not_running_is_refused(
    backend: Backend, state: JobState
) -> None:
    job = await reach(backend, state)
    assert not await backend.set_progress(job.id, 1, worker_id=WORKER)
    assert await backend.get(job.id) == job


@pytest.mark.any_store
async def test_progress_of_unknown_job_is_refused(backend: Backend) -> None:
    assert not await backend.set_progress(987654, 1, worker_id=WORKER)
