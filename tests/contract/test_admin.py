"""Contract: get, list (filters, sort, pages), cancel, retry, delete, stats, pause and resume."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from taskward.backends import Backend
from taskward.errors import JobNotFound
from taskward.jobs import Job, JobFilter, JobState
from taskward.states import Completed, Failed

from .helpers import (
    LEASE_SECONDS,
    NOW,
    WORKER,
    at,
    claim,
    fetch_one,
    finish_with,
    insert_one,
    new_job,
    reach,
)

S = JobState

# (task, queue, priority, inserted at +s, scheduled at +s, state): every sortable value distinct.
SEED: list[tuple[str, str, int, int, int, JobState]] = [
    ("app:a", "default", 3, 0, 50, S.PENDING),
    ("app:b", "default", 1, 10, 40, S.PENDING),
    ("app:a", "emails", 7, 20, 3600, S.SCHEDULED),
    ("app:b", "emails", 0, 30, 20, S.PENDING),
    ("app:a", "default", 5, 40, 4000, S.SCHEDULED),
]


async def seed(backend: Backend) -> list[Job]:
    jobs = []
    for task, queue, priority, inserted, scheduled, state in SEED:
        new = new_job(
            task=task, queue=queue, priority=priority, scheduled_at=at(scheduled), state=state
        )
        [i] = await backend.insert([new], now=at(inserted))
        jobs.append(i.job)
    return jobs


async def ids(backend: Backend, **filters: Any) -> list[int]:
    page = await backend.list_jobs(JobFilter(**filters))
    return [j.id for j in page.items]


# -- get / list ----------------------------------------------------------------------------


async def test_list_defaults_to_newest_first(backend: Backend) -> None:
    jobs = await seed(backend)
    page = await backend.list_jobs(JobFilter())
    assert [j.id for j in page.items] == [j.id for j in reversed(jobs)]
    assert list(page.items) == list(reversed(jobs))
    assert (page.total_entries, page.page_number, page.page_size) == (5, 1, 50)


async def test_list_filters_by_state_queue_and_task(backend: Backend) -> None:
    j = [job.id for job in await seed(backend)]
    assert await ids(backend, sort_by="id", states=frozenset({S.PENDING})) == [j[0], j[1], j[3]]
    assert await ids(backend, sort_by="id", states=frozenset({S.SCHEDULED})) == [j[2], j[4]]
    both = frozenset({S.PENDING, S.SCHEDULED})
    assert await ids(backend, sort_by="id", states=both) == j
    assert await ids(backend, sort_by="id", states=frozenset({S.FAILED})) == []
    assert await ids(backend, sort_by="id", queue="emails") == [j[2], j[3]]
    assert await ids(backend, sort_by="id", task="app:b") == [j[1], j[3]]
    assert await ids(backend, sort_by="id", task="app:a", queue="default") == [j[0], j[4]]
    combined = {"task": "app:a", "queue": "default", "states": frozenset({S.SCHEDULED})}
    assert await ids(backend, sort_by="id", **combined) == [j[4]]
    assert await ids(backend, queue="nope") == []


async def test_list_filter_total_counts_only_matches(backend: Backend) -> None:
    await seed(backend)
    page = await backend.list_jobs(JobFilter(queue="default", per_page=1))
    assert page.total_entries == 3
    assert page.total_pages == 3
    assert len(page.items) == 1


@pytest.mark.parametrize("field", ["id", "inserted_at", "scheduled_at", "priority"])
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
async def test_list_sorts_by_field(backend: Backend, field: str, descending: bool) -> None:
    jobs = await seed(backend)
    expected = sorted(jobs, key=lambda job: getattr(job, field), reverse=descending)
    sort_by = f"-{field}" if descending else field
    assert await ids(backend, sort_by=sort_by) == [job.id for job in expected]


async def test_list_sort_ties_are_broken_by_id_in_the_same_direction(backend: Backend) -> None:
    inserted = await backend.insert([new_job(priority=4) for _ in range(4)], now=NOW)
    j = [i.job.id for i in inserted]
    assert await ids(backend, sort_by="priority") == j
    assert await ids(backend, sort_by="-priority") == j[::-1]
    assert await ids(backend, sort_by="inserted_at") == j


async def run_to_completion(backend: Backend, queue: str, fetch_at: list[int], done_at: int) -> Job:
    """Fail the job once per extra fetch, then complete it: attempts = len(fetch_at)."""
    job = await insert_one(backend, queue=queue, max_attempts=5)
    for n, second in enumerate(fetch_at, start=1):
        await backend.promote_due(now=at(second))
        running = await fetch_one(backend, job, now=at(second))
        if n < len(fetch_at):
            assert await finish_with(backend, running, Failed("E", "x"), now=at(second + 1))
    assert await finish_with(backend, running, Completed(), now=at(done_at))
    return await backend.get(job.id)


@pytest.mark.parametrize("field", ["attempt", "attempted_at", "completed_at"])
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
async def test_list_sorts_by_run_fields(backend: Backend, field: str, descending: bool) -> None:
    jobs = [
        await run_to_completion(backend, "q1", [100, 200], done_at=900),  # attempt 2
        await run_to_completion(backend, "q2", [50], done_at=700),  # attempt 1
        await run_to_completion(backend, "q3", [300, 400, 500], done_at=800),  # attempt 3
    ]
    expected = sorted(jobs, key=lambda job: getattr(job, field), reverse=descending)
    sort_by = f"-{field}" if descending else field
    completed = frozenset({S.COMPLETED})
    assert await ids(backend, sort_by=sort_by, states=completed) == [j.id for j in expected]


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
async def test_list_sorts_jobs_without_the_field_last(backend: Backend, descending: bool) -> None:
    """Jobs that never ran (no attempted_at) come after those that did, in either direction."""
    ran = await run_to_completion(backend, "q1", [100], done_at=200)
    waiting = await insert_one(backend, queue="q2")
    ran_later = await run_to_completion(backend, "q1", [300], done_at=400)
    sort_by = "-attempted_at" if descending else "attempted_at"
    order = [ran_later.id, ran.id] if descending else [ran.id, ran_later.id]
    assert await ids(backend, sort_by=sort_by) == [*order, waiting.id]


async def test_pagination_with_totals_and_an_empty_page(backend: Backend) -> None:
    inserted = await backend.insert([new_job(args=[n]) for n in range(5)], now=NOW)
    j = [i.job.id for i in inserted]
    pages = [
        await backend.list_jobs(JobFilter(sort_by="id", per_page=2, page=n)) for n in (1, 2, 3)
    ]
    assert [[job.id for job in p.items] for p in pages] == [j[0:2], j[2:4], j[4:5]]
    for number, page in enumerate(pages, start=1):
        assert (page.total_entries, page.total_pages) == (5, 3)
        assert (page.page_number, page.page_size) == (number, 2)

    beyond = await backend.list_jobs(JobFilter(sort_by="id", per_page=2, page=4))
    assert list(beyond.items) == []
    assert (beyond.total_entries, beyond.total_pages, beyond.page_number) == (5, 3, 4)


@pytest.mark.any_store
async def test_list_of_an_empty_store(backend: Backend) -> None:
    page = await backend.list_jobs(JobFilter())
    assert list(page.items) == []
    assert page.total_entries == 0
    assert page.total_pages == 1


# -- cancel --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.SCHEDULED, S.PENDING, S.RETRYABLE])
async def test_cancel_waiting_job(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state)
    cancelled = await backend.cancel(job.id, reason="no longer needed", now=at(7))
    assert cancelled.state is S.CANCELLED
    assert cancelled.cancelled_at == at(7)
    assert cancelled.last_error is not None
    assert (cancelled.last_error.kind, cancelled.last_error.message) == (
        "Cancelled",
        "no longer needed",
    )
    assert len(cancelled.errors) == len(job.errors) + 1
    assert await backend.get(job.id) == cancelled
    await backend.promote_due(now=at(10_000))
    assert (
        await backend.fetch(
            queue=job.queue, limit=10, worker_id=WORKER, now=at(10_000), lease_until=at(10_060)
        )
        == []
    )


async def test_cancel_running_job_requests_cancellation(backend: Backend) -> None:
    job = await claim(backend)
    flagged = await backend.cancel(job.id, reason="stop", now=at(3))
    assert flagged.state is S.RUNNING
    assert flagged.cancel_requested is True
    assert flagged.lease_until == job.lease_until
    assert flagged.attempted_by == job.attempted_by
    assert await backend.get(job.id) == flagged
    report = await backend.extend_leases([job.id], worker_id=WORKER, lease_until=at(100))
    assert report.cancel_requested == frozenset({job.id})


@pytest.mark.parametrize("state", [S.COMPLETED, S.FAILED, S.DISCARDED, S.CANCELLED])
async def test_cancel_finished_job_changes_nothing(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state)
    after = await backend.cancel(job.id, reason="too late", now=at(50))
    assert after == job
    assert await backend.get(job.id) == job


@pytest.mark.any_store
async def test_cancel_unknown_job_raises(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.cancel(424242, reason="x", now=NOW)


# -- retry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.FAILED, S.DISCARDED, S.CANCELLED])
async def test_retry_dead_or_cancelled_job(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state)
    retried = await backend.retry(job.id, now=at(500))
    assert retried.state is S.PENDING
    assert retried.scheduled_at == at(500)
    assert (retried.completed_at, retried.cancelled_at, retried.discarded_at) == (None,) * 3
    assert retried.attempt < retried.max_attempts  # at least one more attempt
    assert retried.errors == job.errors  # history is kept
    assert await backend.get(job.id) == retried
    again = await fetch_one(backend, job, now=at(501))
    assert again.attempt == retried.attempt + 1
    assert again.state is S.RUNNING


@pytest.mark.parametrize("state", [S.SCHEDULED, S.PENDING, S.RUNNING, S.RETRYABLE, S.COMPLETED])
async def test_retry_of_other_states_changes_nothing(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state)
    assert await backend.retry(job.id, now=at(500)) == job
    assert await backend.get(job.id) == job


@pytest.mark.any_store
async def test_retry_unknown_job_raises(backend: Backend) -> None:
    with pytest.raises(JobNotFound):
        await backend.retry(424242, now=NOW)


# -- delete --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.PENDING, S.SCHEDULED, S.COMPLETED, S.FAILED])
async def test_delete_removes_a_job_that_is_not_running(backend: Backend, state: JobState) -> None:
    job = await reach(backend, state)
    keep = await insert_one(backend, queue="keep")
    assert await backend.delete(job.id) is True
    with pytest.raises(JobNotFound):
        await backend.get(job.id)
    assert await backend.get(keep.id) == keep
    assert await backend.delete(job.id) is False


async def test_delete_refuses_a_running_job(backend: Backend) -> None:
    job = await claim(backend)
    assert await backend.delete(job.id) is False
    assert await backend.get(job.id) == job


@pytest.mark.any_store
async def test_delete_unknown_job_returns_false(backend: Backend) -> None:
    assert await backend.delete(424242) is False


async def test_delete_with_states_takes_a_job_in_one_of_them_only(backend: Backend) -> None:
    # A bulk delete confirmed on a failed job; someone retried it since: it is kept.
    job = await reach(backend, S.FAILED)
    retried = await backend.retry(job.id, now=at(500))
    assert retried.state is S.PENDING
    assert await backend.delete(job.id, states={S.FAILED, S.DISCARDED}) is False
    assert await backend.get(job.id) == retried
    assert await backend.delete(job.id, states={S.PENDING}) is True
    with pytest.raises(JobNotFound):
        await backend.get(job.id)
    running = await claim(backend)
    assert await backend.delete(running.id, states={S.RUNNING}) is False  # never a running job
    assert await backend.get(running.id) == running
    assert await backend.delete(424242, states={S.PENDING}) is False


# -- stats, pause, resume ------------------------------------------------------------------


def count(counts: dict[str, dict[JobState, int]], queue: str, state: JobState) -> int:
    return counts.get(queue, {}).get(state, 0)


async def test_stats_counts_by_queue_and_state(backend: Backend) -> None:
    await backend.insert([new_job(), new_job()], now=NOW)
    await claim(backend, queue="emails")
    await reach(backend, S.SCHEDULED, queue="emails")
    await reach(backend, S.CANCELLED, queue="reports")
    stats = await backend.stats()
    assert count(stats.counts, "default", S.PENDING) == 2
    assert count(stats.counts, "emails", S.RUNNING) == 1
    assert count(stats.counts, "emails", S.SCHEDULED) == 1
    assert count(stats.counts, "reports", S.CANCELLED) == 1
    assert count(stats.counts, "default", S.RUNNING) == 0
    assert set(stats.counts) == {"default", "emails", "reports"}
    totals = sum(n for per_queue in stats.counts.values() for n in per_queue.values())
    assert totals == 5
    assert stats.paused == frozenset()
    assert stats.estimated == frozenset()  # a small store: every count is exact


async def test_stats_lists_a_paused_empty_queue(backend: Backend) -> None:
    await insert_one(backend)
    await backend.pause_queue("idle")
    stats = await backend.stats()
    assert "idle" in stats.counts
    assert sum(stats.counts["idle"].values()) == 0
    assert stats.paused == frozenset({"idle"})
    assert count(stats.counts, "default", S.PENDING) == 1


@pytest.mark.any_store
async def test_stats_of_an_empty_store(backend: Backend) -> None:
    stats = await backend.stats()
    assert stats.counts == {}
    assert stats.paused == frozenset()


async def test_pause_and_resume_stop_and_restart_fetch(backend: Backend) -> None:
    job = await insert_one(backend)
    other = await insert_one(backend, queue="other")
    await backend.pause_queue("default")
    await backend.pause_queue("default")  # idempotent
    assert await backend.paused_queues() == {"default"}

    def fetch(queue: str, when: datetime) -> Any:
        return backend.fetch(
            queue=queue, limit=5, worker_id=WORKER, now=when, lease_until=at(LEASE_SECONDS)
        )

    assert await fetch("default", NOW) == []
    assert [j.id for j in await fetch("other", NOW)] == [other.id]

    await backend.resume_queue("default")
    await backend.resume_queue("default")  # idempotent
    await backend.resume_queue("never-paused")
    assert await backend.paused_queues() == set()
    assert [j.id for j in await fetch("default", at(1))] == [job.id]


@pytest.mark.any_store
async def test_paused_queues_starts_empty(backend: Backend) -> None:
    assert await backend.paused_queues() == set()
