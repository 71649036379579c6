"""Contract of the no-op backend (``noop://``): it accepts every call, keeps nothing, says so.

The shared contract tests that hold for a store that keeps nothing run on it too (marked
``any_store``); this file pins what it answers to each of its calls, one test per part of the
``Backend`` protocol, so that every public method runs here with an assertion on its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from taskward.backends import Backend, open_backend
from taskward.backends.noop import NoopBackend
from taskward.errors import JobNotFound, NotSupported
from taskward.jobs import JobFilter, JobState, JobUpdate, Schedule, WorkerInfo

from .helpers import NOW, OTHER_WORKER, WORKER, at, new_job

S = JobState
UNKNOWN = 424242
NOOP_LOGGER = "taskward.backends.noop"


@pytest.fixture
async def noop() -> AsyncIterator[NoopBackend]:
    store = open_backend("noop://")
    assert isinstance(store, NoopBackend)
    await store.open()
    await store.migrate()
    yield store
    await store.close()


async def test_it_is_a_backend_with_no_optional_feature(noop: NoopBackend) -> None:
    assert isinstance(noop, Backend)
    assert noop.url == "noop://"
    assert noop.capabilities == frozenset()  # above all, no STORES_JOBS: nothing can be read


async def test_open_warns_that_jobs_are_disabled(caplog: pytest.LogCaptureFixture) -> None:
    store = NoopBackend()
    with caplog.at_level(logging.WARNING, logger=NOOP_LOGGER):
        await store.open()
    [record] = [r for r in caplog.records if r.name == NOOP_LOGGER]
    assert record.levelno == logging.WARNING
    assert "disabled" in record.getMessage()
    assert "dropped" in record.getMessage()


async def test_lifecycle_calls_are_idempotent(noop: NoopBackend) -> None:
    await noop.migrate()
    await noop.close()
    await noop.close()
    await noop.open()  # reopened after close, as a manager may do
    await noop.migrate()
    [inserted] = await noop.insert([new_job()], now=NOW)
    assert inserted.job.id == 0


async def test_insert_answers_each_job_as_given_unsaved_and_counts_the_drop(
    noop: NoopBackend, caplog: pytest.LogCaptureFixture
) -> None:
    news = [
        new_job(
            task="app.tasks:send",
            queue="emails",
            args=[1, {"k": [2]}],
            kwargs={"to": "a@b.c"},
            priority=0,
            max_attempts=7,
            scheduled_at=at(-5),
            timeout=12.5,
            unique_key="send:1",
            unique_window=60.0,
            tags=("welcome",),
            meta={"trace_id": "abc"},
            depends_on=(3, 4),
        ),
        new_job(state=S.SCHEDULED, scheduled_at=at(3600)),
    ]
    with caplog.at_level(logging.DEBUG, logger=NOOP_LOGGER):
        inserted = await noop.insert(news, now=at(10))

    assert [i.duplicate for i in inserted] == [False, False]
    for new, item in zip(news, inserted, strict=True):
        job = item.job
        assert (job.id, job.attempt, job.inserted_at) == (0, 0, at(10))  # 0: never stored
        assert (job.task, job.queue, job.state, job.priority) == (
            new.task, new.queue, new.state, new.priority
        )  # fmt: skip
        assert (job.args, job.kwargs, job.max_attempts) == (new.args, new.kwargs, new.max_attempts)
        assert (job.scheduled_at, job.timeout, job.tags, job.meta) == (
            new.scheduled_at, new.timeout, new.tags, new.meta
        )  # fmt: skip
        assert (job.unique_key, job.depends_on) == (new.unique_key, new.depends_on)
        assert (job.attempted_at, job.attempted_by, job.lease_until, job.errors) == (
            None, None, None, ()
        )  # fmt: skip
    assert noop.dropped == 2
    assert "dropped 2 job(s): taskward is disabled" in caplog.messages

    # Nothing was kept: the same unique key is never a duplicate, and nothing can be read.
    [again] = await noop.insert([news[0]], now=at(11))
    assert again.duplicate is False
    assert noop.dropped == 3
    assert await noop.insert([], now=NOW) == []
    assert noop.dropped == 3
    with pytest.raises(JobNotFound):
        await noop.get(inserted[0].job.id)


async def test_work_calls_find_nothing_and_own_nothing(noop: NoopBackend) -> None:
    await noop.insert([new_job()], now=NOW)
    fetched = await noop.fetch(
        queue="default", limit=10, worker_id=WORKER, now=NOW, lease_until=at(60)
    )
    assert fetched == []

    report = await noop.extend_leases([1, 2], worker_id=WORKER, lease_until=at(60))
    assert report.lost == frozenset({1, 2})  # a worker holding them must stop trusting them
    assert report.cancel_requested == frozenset()

    updates = [
        JobUpdate(job_id=1, attempt=1, state=S.COMPLETED, at=NOW),
        JobUpdate(job_id=2, attempt=1, state=S.FAILED, at=NOW),
    ]
    assert await noop.finish(updates, worker_id=WORKER) == [False, False]
    assert await noop.finish([], worker_id=WORKER) == []
    assert await noop.set_progress(1, {"done": 1}, worker_id=WORKER) is False


async def test_wait_for_jobs_sleeps_its_timeout_even_after_an_insert(noop: NoopBackend) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiter = asyncio.create_task(noop.wait_for_jobs(["default"], timeout=0.2))
    await noop.insert([new_job()], now=NOW)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()  # the insert was dropped: nothing to wake for
    await asyncio.wait_for(waiter, timeout=10)
    assert loop.time() - started >= 0.15


async def test_maintenance_calls_have_nothing_to_do(noop: NoopBackend) -> None:
    await noop.insert([new_job(state=S.SCHEDULED, scheduled_at=at(10))], now=NOW)
    assert await noop.promote_due(now=at(100)) == 0
    assert await noop.expired_leases(now=at(10**6), limit=100) == []
    assert await noop.finished_per_minute(since=NOW - timedelta(days=1)) == []
    cutoffs = {state: at(10**6) for state in (S.COMPLETED, S.FAILED, S.DISCARDED, S.CANCELLED)}
    assert await noop.prune(before=cutoffs) == 0
    assert await noop.release_blocked(now=NOW, limit=100) == (0, 0)
    assert await noop.release_blocked(now=NOW, limit=100, after=UNKNOWN) == (0, 0)


async def test_admin_calls_on_any_id_find_no_job(noop: NoopBackend) -> None:
    [inserted] = await noop.insert([new_job()], now=NOW)
    for job_id in (inserted.job.id, UNKNOWN):
        with pytest.raises(JobNotFound) as caught:
            await noop.get(job_id)
        assert caught.value.job_id == job_id
        with pytest.raises(JobNotFound) as caught:
            await noop.cancel(job_id, reason="x", now=NOW)
        assert caught.value.job_id == job_id
        with pytest.raises(JobNotFound) as caught:
            await noop.retry(job_id, now=NOW)
        assert caught.value.job_id == job_id
        assert await noop.delete(job_id) is False
    assert await noop.get_jobs([inserted.job.id, UNKNOWN]) == []


async def test_listing_and_stats_are_empty(noop: NoopBackend) -> None:
    await noop.insert([new_job(), new_job(queue="emails")], now=NOW)
    page = await noop.list_jobs(JobFilter(states=frozenset({S.PENDING}), page=3, per_page=7))
    assert list(page.items) == []
    assert (page.total_entries, page.page_number, page.page_size) == (0, 3, 7)
    assert page.total_pages == 1
    assert page.total_is_estimate is False
    stats = await noop.stats()
    assert stats.counts == {}
    assert stats.paused == frozenset()
    assert stats.estimated == frozenset()


async def test_queues_cannot_be_paused_and_none_is(noop: NoopBackend) -> None:
    with pytest.raises(NotSupported, match="cannot pause"):
        await noop.pause_queue("default")
    with pytest.raises(NotSupported, match="cannot resume"):
        await noop.resume_queue("default")
    assert await noop.paused_queues() == set()
    assert (await noop.stats()).paused == frozenset()


async def test_schedules_are_dropped(noop: NoopBackend) -> None:
    await noop.save_schedule(Schedule(name="nightly", task="app:report", cron="0 2 * * *"))
    assert await noop.list_schedules() == []
    assert await noop.delete_schedule("nightly") is False


async def test_every_worker_leads_and_none_is_recorded(noop: NoopBackend) -> None:
    # Nothing to coordinate: a leader of a store that keeps nothing has nothing to do.
    assert await noop.acquire_lease("leader", holder=WORKER, now=NOW, until=at(30))
    assert await noop.acquire_lease("leader", holder=OTHER_WORKER, now=at(1), until=at(31))
    info = WorkerInfo(
        id=WORKER,
        hostname="host-1",
        pid=4242,
        queues={"default": 2},
        started_at=NOW,
        heartbeat_at=at(10),
        running=1,
    )
    await noop.record_worker(info)
    assert await noop.list_workers(alive_since=NOW) == []
    await noop.remove_worker(WORKER)
    await noop.remove_worker("never-seen")
    assert await noop.list_workers(alive_since=NOW - timedelta(days=1)) == []
