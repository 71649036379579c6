"""Contract: insert stores every field, hands out monotonic ids, and takes big batches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskward.backends import Backend
from taskward.errors import JobNotFound
from taskward.jobs import JobState

from .helpers import NOW, assert_utc, at, insert_one, list_all, new_job

S = JobState


async def test_insert_returns_stored_job_with_every_field(backend: Backend) -> None:
    new = new_job(
        task="app.tasks:send",
        queue="emails",
        args=[1, "héllo ✓", {"nested": [1, 2.5, None, True]}],
        kwargs={"user": {"id": 42, "tags": ["a", "b"]}, "flag": False},
        priority=0,
        max_attempts=7,
        scheduled_at=at(-5),
        timeout=12.5,
        unique_key="send:42",
        unique_window=60.0,
        tags=("welcome", "vip"),
        meta={"trace_id": "abc", "n": 1},
        depends_on=(),
    )
    [inserted] = await backend.insert([new], now=at(10))
    job = inserted.job

    assert inserted.duplicate is False
    assert job.id >= 1
    assert job.task == "app.tasks:send"
    assert job.queue == "emails"
    assert job.args == [1, "héllo ✓", {"nested": [1, 2.5, None, True]}]
    assert job.kwargs == {"user": {"id": 42, "tags": ["a", "b"]}, "flag": False}
    assert job.state is S.PENDING
    assert job.priority == 0
    assert job.attempt == 0
    assert job.max_attempts == 7
    assert job.scheduled_at == at(-5)
    assert job.inserted_at == at(10)
    assert job.timeout == 12.5
    assert job.unique_key == "send:42"
    assert job.tags == ("welcome", "vip")
    assert job.meta == {"trace_id": "abc", "n": 1}
    assert job.depends_on == ()
    assert (job.attempted_at, job.completed_at, job.cancelled_at, job.discarded_at) == (None,) * 4
    assert (job.attempted_by, job.lease_until, job.result, job.progress) == (None,) * 4
    assert job.errors == ()
    assert job.cancel_requested is False
    assert_utc(job.scheduled_at, job.inserted_at)


async def test_get_reads_back_what_insert_returned(backend: Backend) -> None:
    job = await insert_one(
        backend,
        args=[[1, 2], {"k": "v"}],
        kwargs={"x": None},
        tags=("t",),
        meta={"m": [1]},
        timeout=3.0,
        priority=9,
    )
    stored = await backend.get(job.id)
    assert stored == job
    assert isinstance(stored.args, list)
    assert isinstance(stored.kwargs, dict)
    assert isinstance(stored.tags, tuple)
    assert stored.state is S.PENDING
    assert_utc(stored.scheduled_at, stored.inserted_at)


async def test_insert_uses_pre_encoded_json_when_given(backend: Backend) -> None:
    args, kwargs = [1, "two", [3]], {"four": {"five": 5}}
    new = new_job(
        args=args,
        kwargs=kwargs,
        args_json=json.dumps(args, separators=(",", ":")),
        kwargs_json=json.dumps(kwargs, separators=(",", ":")),
    )
    [inserted] = await backend.insert([new], now=NOW)
    stored = await backend.get(inserted.job.id)
    assert stored.args == args
    assert stored.kwargs == kwargs


async def test_insert_scheduled_job_keeps_its_state(backend: Backend) -> None:
    job = await insert_one(backend, state=S.SCHEDULED, scheduled_at=at(3600))
    stored = await backend.get(job.id)
    assert stored.state is S.SCHEDULED
    assert stored.scheduled_at == at(3600)


async def test_ids_are_monotonic_across_and_within_calls(backend: Backend) -> None:
    first = await backend.insert([new_job(), new_job(), new_job()], now=NOW)
    second = await backend.insert([new_job()], now=at(1))
    ids = [i.job.id for i in (*first, *second)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4


async def test_batch_results_follow_input_order(backend: Backend) -> None:
    inserted = await backend.insert([new_job(args=[n]) for n in range(10)], now=NOW)
    assert [i.job.args for i in inserted] == [[n] for n in range(10)]
    for item in inserted:
        assert (await backend.get(item.job.id)).args == item.job.args


async def test_bulk_insert_of_500_in_one_call(backend: Backend) -> None:
    inserted = await backend.insert(
        [new_job(args=[n], queue=f"q{n % 3}") for n in range(500)], now=NOW
    )
    ids = [i.job.id for i in inserted]
    assert len(inserted) == 500
    assert not any(i.duplicate for i in inserted)
    assert ids == sorted(set(ids))
    page = await list_all(backend)
    assert page.total_entries == 500
    assert [j.id for j in page.items] == ids
    assert [j.args for j in page.items] == [[n] for n in range(500)]


@pytest.mark.any_store
async def test_insert_of_nothing_returns_nothing(backend: Backend) -> None:
    assert await backend.insert([], now=NOW) == []
    assert (await list_all(backend)).total_entries == 0


async def test_stored_job_is_isolated_from_caller_mutation(backend: Backend) -> None:
    args: list[Any] = [1, [2]]
    kwargs: dict[str, Any] = {"k": [3]}
    meta: dict[str, Any] = {"m": 1}
    job = await insert_one(backend, args=args, kwargs=kwargs, meta=meta)
    args.append(99)
    args[1].append(99)
    kwargs["k"].append(99)
    meta["m"] = 99
    stored = await backend.get(job.id)
    assert stored.args == [1, [2]]
    assert stored.kwargs == {"k": [3]}
    assert stored.meta == {"m": 1}


@pytest.mark.any_store
async def test_get_unknown_job_raises_job_not_found(backend: Backend) -> None:
    with pytest.raises(JobNotFound) as caught:
        await backend.get(123456)
    assert caught.value.job_id == 123456


async def test_batch_of_unlike_jobs_stores_each_as_given(backend: Backend) -> None:
    # Each job differs from the one before it in one field (PostgreSQL's COPY formats the
    # fields shared by a run of alike jobs once): each is stored as given.
    steps: list[dict[str, Any]] = [
        {},
        {},
        {"task": "t.two"},
        {"queue": "q2"},
        {"priority": 7},
        {"max_attempts": 9},
        {"tags": ()},
        {"timeout": 2.5},
        {"scheduled_at": at(60)},
        {"state": S.SCHEDULED},
        {"meta": {"k": 1}},
        {"meta": {"k": 2}},
        {"meta": {}},
    ]
    shape: dict[str, Any] = {"task": "t.one", "queue": "q1", "priority": 1, "tags": ("a", "b")}
    news = []
    for n, step in enumerate(steps):
        shape = {**shape, **step}
        news.append(new_job(args=[n], **shape))
    inserted = await backend.insert(news, now=NOW)
    for new, item in zip(news, inserted, strict=True):
        stored = await backend.get(item.job.id)
        assert stored == item.job
        got = (stored.task, stored.queue, stored.priority, stored.max_attempts, stored.tags)
        assert got == (new.task, new.queue, new.priority, new.max_attempts, new.tags)
        assert (stored.timeout, stored.state, stored.scheduled_at, stored.meta) == (
            new.timeout, new.state, new.scheduled_at, new.meta
        )  # fmt: skip
        assert stored.args == new.args
