"""``TaskManager.retry_task`` with edits and ``retry_dead_letters``, on every store.

The edits are validated as an enqueue is (nothing changes when they are bad), the job runs
with its new arguments, its history keeps what they replaced (secrets redacted) and no
secret reaches events or logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from taskward import InvalidJob, JobState, TaskManager, replays
from taskward.edits import REPLAYS_META_KEY
from taskward.encryption import generate_key
from taskward.errors import InvalidOptions
from taskward.observe.events import Event
from taskward.replays import DeadLetterFilter
from taskward.sealing import still_sealed
from taskward.tasks import shown_job

S = JobState


async def dead(tw: TaskManager, task: Any, *args: Any, **kwargs: Any) -> int:
    """Enqueue one job of ``task`` and drain it to ``failed``; its id."""
    job = await task.enqueue(*args, **kwargs)
    await tw.drain()
    assert (await tw.get_task_status(job.id)).state is S.FAILED
    return job.id


async def test_edited_arguments_are_validated_then_run(tw: TaskManager) -> None:
    seen: list[tuple[int, int]] = []

    @tw.task(max_attempts=1)
    async def add(x: int, y: int) -> int:
        if y == 0:
            raise ValueError("y must not be 0")
        seen.append((x, y))
        return x + y

    job_id = await dead(tw, add, 1, 0)
    before = await tw.get_task_status(job_id)
    bad: list[dict[str, Any]] = [
        {"args": [1, 2, 3]},  # too many for the signature
        {"args": [1], "kwargs": {"z": 2}},  # no such parameter
        {"args": [object()]},  # not JSON
        {"args": "[1, 2]"},  # a string is not a list
        {"args": [1, "x" * 2_000_000]},  # past max_payload_bytes
        {"queue": "no spaces allowed"},
        {"priority": 42},
        {"note": "\ud800"},
    ]
    for edit in bad:
        with pytest.raises(InvalidJob):
            await tw.retry_task(job_id, **edit)
        assert await tw.get_task_status(job_id) == before  # nothing changed
    retried = await tw.retry_task(job_id, args=[1, 2], note="y was 0", by="ada")
    assert retried.state is S.PENDING
    explained = await tw.explain(job_id)  # `taskward why --json` shows the history too
    assert explained.job["meta"][REPLAYS_META_KEY][0]["note"] == "y was 0"
    await tw.drain()
    done = await tw.get_task_status(job_id)
    assert done.state is S.COMPLETED
    assert done.result == 3
    assert seen == [(1, 2)]
    [record] = done.meta[REPLAYS_META_KEY]
    assert (record["args"], record["note"], record["by"]) == ([1, 0], "y was 0", "ada")


async def test_a_job_in_another_state_is_refused_with_changes(tw: TaskManager) -> None:
    @tw.task
    async def noop() -> None:
        return None

    job = await noop.enqueue()
    with pytest.raises(InvalidJob, match="pending: only a failed, discarded or cancelled"):
        await tw.retry_task(job.id, note="too early")
    assert await tw.get_task_status(job.id) == job
    assert await tw.retry_task(job.id) == job  # a plain retry answers it unchanged, as before


async def test_secrets_stay_hidden_in_history_events_and_logs(
    tw: TaskManager, caplog: pytest.LogCaptureFixture
) -> None:
    @tw.task(max_attempts=1, sensitive=("password",))
    async def login(user: str, password: str) -> str:
        if user == "bad":
            raise ValueError("no such user")
        return f"{user}:{password}"

    job_id = await dead(tw, login, "bad", "hunter2")
    events: list[Event] = []
    tw.events.on("job.retried", events.append)
    caplog.set_level(logging.DEBUG, logger="taskward")
    # "***" where the job shows a hidden value keeps the stored one: the secret is not retyped.
    retried = await tw.retry_task(job_id, args=["ada", "***"], note="user renamed")
    assert retried.args == ["ada", "hunter2"]
    [record] = retried.meta[REPLAYS_META_KEY]
    assert record["args"] == ["bad", "***"]  # the original, stored redacted
    shown = str(shown_job(retried))
    assert "hunter2" not in shown
    assert "ada" in shown
    await asyncio.sleep(0)
    [event] = events
    assert event.data == {"by": "operator", "changed": ["args"], "note": "user renamed"}
    assert "hunter2" not in repr([e.job for e in events])
    assert "hunter2" not in caplog.text
    await tw.drain()
    assert (await tw.get_task_status(job_id)).result == "ada:hunter2"
    # A new secret typed in its place replaces it.
    await tw.cancel_task(job_id)
    job = await tw.get_task_status(job_id)
    if job.state is S.COMPLETED:  # a finished job cannot be cancelled: make another
        job_id = await dead(tw, login, "bad", "old")
    replaced = await tw.retry_task(job_id, args=["ada", "new-secret"])
    assert replaced.args == ["ada", "new-secret"]
    assert "new-secret" not in str(replaced.meta)


async def test_queue_and_priority_change(tw: TaskManager) -> None:
    @tw.task(max_attempts=1, queue="slow")
    async def boom(n: int) -> None:
        raise ValueError(n)

    job_id = await dead(tw, boom, 1)
    moved = await tw.retry_task(job_id, queue="fast", priority=0)
    assert (moved.queue, moved.priority) == ("fast", 0)
    record = moved.meta[REPLAYS_META_KEY][-1]
    assert (record["queue"], record["priority"]) == ("slow", 5)
    result = await tw.drain(["slow"])
    assert result.counts == {}
    result = await tw.drain(["fast"])
    assert result.counts == {"failed": 1}


async def test_bulk_replay_merges_kwargs_and_reports_each_refusal(tw: TaskManager) -> None:
    @tw.task(max_attempts=1)
    async def send(to: str, *, retries: int = 0) -> str:
        if retries < 1:
            raise ConnectionError("smtp down")
        return to

    @tw.task(max_attempts=1)
    async def other(x: int) -> None:
        raise KeyError(x)

    ids = [await dead(tw, send, f"u{n}@x") for n in range(3)]
    other_id = await dead(tw, other, 1)
    flt = DeadLetterFilter(task=send.name, error_kind="ConnectionError")
    assert (await tw.retry_dead_letters(flt, dry_run=True)).matched == 3
    # retries is a keyword-only parameter of send; "nope" for other would be refused
    report = await tw.retry_dead_letters(flt, set_kwargs={"retries": 1}, note="smtp back")
    assert report.matched == 3
    assert sorted(report.retried) == ids
    assert report.refused == {}
    await tw.drain()
    assert [(await tw.get_task_status(i)).state for i in ids] == [S.COMPLETED] * 3
    assert (await tw.get_task_status(other_id)).state is S.FAILED
    refused = await tw.retry_dead_letters(DeadLetterFilter(), set_kwargs={"nope": 1})
    assert refused.matched == 1
    assert list(refused.refused) == [other_id]
    assert (await tw.get_task_status(other_id)).state is S.FAILED


def test_the_sync_twins(tmp_path: Path) -> None:
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")

    @tw.task(max_attempts=1)
    def half(n: int) -> float:
        if n % 2:
            raise ValueError("odd")
        return n / 2

    try:
        job = half.enqueue_sync(3)
        tw.sync.drain()
        retried = tw.sync.retry_task(job.id, args=[4], note="even now")
        assert retried.args == [4]
        assert tw.sync.retry_dead_letters(DeadLetterFilter(), dry_run=True).matched == 0
        tw.sync.drain()
        assert tw.sync.get_task_status(job.id).result == 2
    finally:
        tw.sync.shutdown()


async def test_an_encrypted_job_is_replayed_sealed(store_url: str, tmp_path: Path) -> None:
    key = generate_key()

    def register(tw: TaskManager) -> Any:
        @tw.task(name="sealed.pay", encrypted=True, max_attempts=1)
        async def pay(card: str, amount: int) -> str:
            if amount < 0:
                raise ValueError("negative amount")
            return f"{card[-4:]}:{amount}"

        return pay

    async with TaskManager(store_url, encryption_keys=[key], poll_interval=0.05) as tw:
        pay = register(tw)
        job_id = await dead(tw, pay, "CARD-OLD-1111", -5)
        other_id = await dead(tw, pay, "CARD-OLD-2222", -1)
        with pytest.raises(InvalidJob):
            await tw.retry_task(job_id, args=["CARD-NEW-3333"])  # one argument missing
        retried = await tw.retry_task(job_id, args=["CARD-NEW-3333", 5], note="sign fixed")
        assert retried.args == ["CARD-NEW-3333", 5]  # opened for the caller
        stored = await tw.backend.get(job_id)
        assert still_sealed(stored)  # stored sealed again
        assert stored.meta[REPLAYS_META_KEY][-1]["args"] == "encrypted"
        assert "CARD" not in str(stored.meta)
        await tw.drain()
        assert (await tw.get_task_status(job_id)).result == "3333:5"
    if store_url.startswith("sqlite"):
        raw = await asyncio.to_thread(
            lambda: b"".join(p.read_bytes() for p in tmp_path.glob("jobs.db*"))
        )
        assert b"CARD-NEW-3333" not in raw
        assert b"CARD-OLD-1111" not in raw
    async with TaskManager(store_url) as keyless:
        with pytest.raises(InvalidJob, match="encrypted"):
            await keyless.retry_task(other_id, kwargs={"amount": 1})
        moved = await keyless.retry_task(other_id, queue="later", note="no key here")
        assert moved.queue == "later"
        assert still_sealed(moved)


async def test_bulk_replay_reads_a_bounded_number_of_rows(
    tw: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter the store cannot apply (error_kind) stops after MAX_BULK_EXAMINED rows."""

    @tw.task(max_attempts=1)
    async def boom(n: int) -> None:
        raise ValueError(n)

    for n in range(7):
        await dead(tw, boom, n)
    monkeypatch.setattr(replays, "_PAGE_SIZE", 2)
    monkeypatch.setattr(replays, "MAX_BULK_EXAMINED", 4)
    reads = spy_listing(tw, monkeypatch)
    report = await tw.retry_dead_letters(DeadLetterFilter(error_kind="KeyError"), dry_run=True)
    assert (report.matched, report.capped) == (0, True)  # more unread: capped, not "none"
    assert len(reads) == 2  # 4 rows read, not the whole history
    reads.clear()
    everything = await tw.retry_dead_letters(DeadLetterFilter(), dry_run=True, limit=3)
    assert (everything.matched, everything.capped) == (3, True)


async def test_bulk_replay_survives_jobs_leaving_and_joining_the_listing(
    tw: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process changing dead letters while the pages are read skips and repeats none."""

    @tw.task(max_attempts=1)
    async def boom(n: int) -> None:
        raise ValueError(n)

    @tw.task(max_attempts=1, queue="later")
    async def late(n: int) -> None:
        raise ValueError(n)

    joiner = await late.enqueue(0)  # the lowest id: it fails only once listing has begun
    ids = [(await boom.enqueue(n)).id for n in range(6)]
    await tw.drain(["default"])
    monkeypatch.setattr(replays, "_PAGE_SIZE", 2)
    change: list[Callable[[], Awaitable[Any]]] = []

    async def meanwhile(page: int) -> None:
        if page == 1 and change:
            await change.pop()()

    spy_listing(tw, monkeypatch, meanwhile)
    # A job read on page 1 leaves (another operator retries it): the rest move up a row.
    change.append(lambda: tw.retry_task(ids[0]))
    report = await tw.retry_dead_letters(DeadLetterFilter(), note="again")
    assert list(report.refused) == [ids[0]]  # dead when listed, pending when its turn came
    assert sorted(report.retried) == ids[1:]  # none skipped by the shifted page
    await tw.drain(["default"])  # they fail again
    # A job with a lower id fails meanwhile: the rest move down a row.
    change.append(lambda: tw.drain(["later"]))
    report = await tw.retry_dead_letters(DeadLetterFilter(), note="again")
    assert report.refused == {}  # none read twice, so none retried twice
    assert sorted(report.retried) == ids
    assert (await tw.get_task_status(joiner.id)).state is S.FAILED  # joined before its page


async def test_bulk_options_are_checked_once_up_front(tw: TaskManager) -> None:
    @tw.task(max_attempts=1)
    async def boom(n: int) -> None:
        raise ValueError(n)

    ids = [await dead(tw, boom, n) for n in range(3)]
    bad: list[dict[str, Any]] = [
        {"priority": 42},
        {"queue": "no spaces allowed"},
        {"note": "x" * 3000},
        {"limit": 0},
        {"limit": -5},
    ]
    for options in bad:
        with pytest.raises(InvalidOptions):  # one error, not one refusal per job
            await tw.retry_dead_letters(DeadLetterFilter(), **options)
    assert [(await tw.get_task_status(i)).state for i in ids] == [S.FAILED] * 3


def spy_listing(
    tw: TaskManager,
    monkeypatch: pytest.MonkeyPatch,
    after: Callable[[int], Awaitable[None]] | None = None,
) -> list[int]:
    """Record the page numbers the bulk replay reads (``after(page)`` runs after each)."""
    reads: list[int] = []
    real = tw.list_tasks

    async def listing(**kwargs: Any) -> Any:
        found = await real(**kwargs)
        reads.append(kwargs["page"])
        if after is not None:
            await after(kwargs["page"])
        return found

    monkeypatch.setattr(tw, "list_tasks", listing)
    return reads


async def test_a_sealed_job_moves_queue_without_its_key_function(
    store_url: str,
) -> None:
    """A process without the key never runs partition_key on the envelope; the key is kept."""
    key = generate_key()
    async with TaskManager(store_url, encryption_keys=[key], poll_interval=0.05) as tw:

        @tw.task(name="sealed.card", encrypted=True, max_attempts=1, partition_key=lambda c: c[-4:])
        async def card(number: str) -> None:
            raise ValueError("declined")

        job_id = await dead(tw, card, "CARD-1111")
        assert (await tw.backend.get(job_id)).partition_key == "1111"
    async with TaskManager(store_url) as keyless:

        @keyless.task(
            name="sealed.card", encrypted=True, max_attempts=1, partition_key=lambda c: c[-4:]
        )
        async def card_here(number: str) -> None:
            raise ValueError("declined")

        moved = await keyless.retry_task(job_id, queue="elsewhere", note="no key here")
        assert moved.queue == "elsewhere"
        assert still_sealed(moved)
        assert (await keyless.backend.get(job_id)).partition_key == "1111"
