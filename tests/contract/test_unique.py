"""Contract: a unique key within its window returns the existing job instead of inserting.

``unique_window`` seconds: an earlier job with the key, inserted within the window and in a
blocking state, is answered as a duplicate. ``unique_window=None`` blocks forever in any state
(cron slots: ``cron:{name}:{fire_at}``).
"""

from __future__ import annotations

import asyncio

import pytest

from taskward.backends import Backend
from taskward.jobs import Inserted, JobState, NewJob

from .helpers import NOW, at, list_all, new_job, reach

S = JobState
KEY = "tests:noop:[42]"


def unique(window: float | None = 60.0, **overrides: object) -> NewJob:
    return new_job(unique_key=KEY, unique_window=window, args=[42], **overrides)


async def test_duplicate_within_window_returns_the_same_job(backend: Backend) -> None:
    [first] = await backend.insert([unique()], now=NOW)
    [second] = await backend.insert([unique()], now=at(30))
    assert first.duplicate is False
    assert second.duplicate is True
    assert second.job.id == first.job.id
    assert second.job == await backend.get(first.job.id)
    assert (await list_all(backend)).total_entries == 1


async def test_duplicate_outside_window_is_a_new_job(backend: Backend) -> None:
    [first] = await backend.insert([unique(window=60)], now=NOW)
    [second] = await backend.insert([unique(window=60)], now=at(61))
    assert second.duplicate is False
    assert second.job.id > first.job.id
    assert second.job.unique_key == KEY
    assert (await list_all(backend)).total_entries == 2


async def test_duplicate_in_the_same_batch(backend: Backend) -> None:
    first, second, other = await backend.insert(
        [unique(), unique(), new_job(unique_key="other", unique_window=60)], now=NOW
    )
    assert (first.duplicate, second.duplicate, other.duplicate) == (False, True, False)
    assert second.job.id == first.job.id
    assert other.job.id != first.job.id
    assert (await list_all(backend)).total_entries == 2


async def test_jobs_without_a_key_are_never_duplicates(backend: Backend) -> None:
    inserted = await backend.insert([new_job(args=[42]), new_job(args=[42])], now=NOW)
    assert [i.duplicate for i in inserted] == [False, False]
    assert inserted[0].job.id != inserted[1].job.id


async def test_different_keys_do_not_clash(backend: Backend) -> None:
    a = await backend.insert([new_job(unique_key="a", unique_window=60)], now=NOW)
    b = await backend.insert([new_job(unique_key="b", unique_window=60)], now=NOW)
    assert not a[0].duplicate
    assert not b[0].duplicate
    assert a[0].job.id != b[0].job.id


@pytest.mark.parametrize("state", [S.SCHEDULED, S.PENDING, S.RUNNING, S.RETRYABLE, S.COMPLETED])
async def test_job_in_blocking_state_is_a_duplicate(backend: Backend, state: JobState) -> None:
    existing = await reach(backend, state, unique_key=KEY, unique_window=3600, args=[42])
    [again] = await backend.insert([unique(window=3600)], now=at(10))
    assert again.duplicate is True
    assert again.job == existing


@pytest.mark.parametrize("state", [S.CANCELLED, S.DISCARDED, S.FAILED])
async def test_job_in_non_blocking_state_allows_a_new_one(
    backend: Backend, state: JobState
) -> None:
    existing = await reach(backend, state, unique_key=KEY, unique_window=3600, args=[42])
    [again] = await backend.insert([unique(window=3600)], now=at(10))
    assert again.duplicate is False
    assert again.job.id != existing.id
    assert again.job.state is S.PENDING
    [third] = await backend.insert([unique(window=3600)], now=at(20))
    assert third.duplicate is True  # the new job now blocks
    assert third.job.id == again.job.id


@pytest.mark.parametrize("state", [S.PENDING, S.COMPLETED, S.CANCELLED, S.DISCARDED, S.FAILED])
async def test_window_none_blocks_forever_in_any_state(backend: Backend, state: JobState) -> None:
    slot = "cron:nightly:2026-01-01T00:00:00+00:00"
    existing = await reach(backend, state, unique_key=slot, unique_window=None)
    ten_years = 10 * 365 * 24 * 3600
    [again] = await backend.insert(
        [new_job(unique_key=slot, unique_window=None)], now=at(ten_years)
    )
    assert again.duplicate is True
    assert again.job == existing
    assert (await list_all(backend)).total_entries == 1


async def test_concurrent_identical_inserts_make_one_job(backend: Backend) -> None:
    results = await asyncio.gather(*(backend.insert([unique()], now=NOW) for _ in range(20)))
    assert_one_job(results)
    assert (await list_all(backend)).total_entries == 1


async def test_concurrent_identical_inserts_from_two_instances_make_one_job(
    backend: Backend, second_backend: Backend
) -> None:
    stores = [backend, second_backend]
    results = await asyncio.gather(*(stores[n % 2].insert([unique()], now=NOW) for n in range(20)))
    assert_one_job(results)
    assert (await list_all(backend)).total_entries == 1
    assert (await list_all(second_backend)).total_entries == 1


def assert_one_job(results: list[list[Inserted]]) -> None:
    inserted = [r for [r] in results]
    assert len({i.job.id for i in inserted}) == 1
    assert sum(not i.duplicate for i in inserted) == 1


async def test_window_boundary_is_the_same_on_every_backend(backend: Backend) -> None:
    # A job inserted exactly unique_window seconds ago still blocks; a microsecond later
    # it no longer does. A backend comparing with > instead of >= drifts from the others.
    [first] = await backend.insert([unique(window=60)], now=NOW)
    [edge] = await backend.insert([unique(window=60)], now=at(60))
    assert edge.duplicate is True
    assert edge.job.id == first.job.id
    [past] = await backend.insert([unique(window=60)], now=at(60.000001))
    assert past.duplicate is False
    assert past.job.id != first.job.id
