"""TaskManager end to end on each backend: enqueue, run, outcomes, admin, bad input."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskward import (
    Cancel,
    Discard,
    InvalidCron,
    InvalidOptions,
    JobContext,
    JobNotFound,
    JobRunning,
    JobState,
    NotSerializable,
    PayloadTooLarge,
    ScheduleNotFound,
    Snooze,
    TaskManager,
    TaskwardError,
    UnknownTask,
)


async def test_enqueue_and_drain_stores_result(tw: TaskManager) -> None:
    @tw.task(queue="emails")
    async def greet(name: str, *, punctuation: str = "!") -> str:
        return f"hello {name}{punctuation}"

    job = await greet.enqueue("ada", punctuation="?")
    assert job.state is JobState.PENDING
    assert job.queue == "emails"
    result = await tw.drain()
    assert result.counts == {"completed": 1}
    done = await tw.get_task_status(job.id)
    assert done.state is JobState.COMPLETED
    assert done.result == "hello ada?"
    assert done.attempt == 1
    assert done.completed_at is not None


async def test_sync_function_runs_in_a_thread(tw: TaskManager) -> None:
    seen: list[str] = []

    @tw.task
    def blocking(x: int) -> int:
        seen.append(threading.current_thread().name)
        return x * 2

    job = await blocking.enqueue(21)
    await tw.drain()
    assert (await tw.get_task_status(job.id)).result == 42
    assert seen
    assert seen[0] != threading.main_thread().name


async def test_failures_retry_then_dead_letter(tw: TaskManager) -> None:
    @tw.task(max_attempts=3, backoff=0)
    async def broken() -> None:
        raise ValueError("nope")

    job = await broken.enqueue()
    await tw.drain(with_scheduled=True, timeout=10)
    dead = await tw.get_task_status(job.id)
    assert dead.state is JobState.FAILED
    assert dead.attempt == 3
    assert [e.kind for e in dead.errors] == ["ValueError"] * 3
    assert [e.attempt for e in dead.errors] == [1, 2, 3]
    assert dead.errors[-1].traceback is not None
    assert "nope" in dead.errors[-1].traceback


async def test_flaky_job_succeeds_on_a_later_attempt(tw: TaskManager) -> None:
    @tw.task(max_attempts=5, backoff=0)
    async def flaky(ctx: JobContext) -> int:
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return ctx.attempt

    job = await flaky.enqueue()
    await tw.drain(with_scheduled=True, timeout=10)
    done = await tw.get_task_status(job.id)
    assert done.state is JobState.COMPLETED
    assert done.result == 3
    assert len(done.errors) == 2


async def test_outcome_signals(tw: TaskManager) -> None:
    @tw.task
    async def discard() -> None:
        raise Discard("bad data")

    @tw.task
    async def cancel() -> None:
        raise Cancel("not needed")

    @tw.task
    async def snooze(ctx: JobContext) -> str:
        if ctx.job.meta.get("snoozed") is None and ctx.attempt == 1 and not ctx.job.errors:
            raise Snooze(3600)
        return "done"

    d, c, s = await discard.enqueue(), await cancel.enqueue(), await snooze.enqueue()
    await tw.drain()
    assert (await tw.get_task_status(d.id)).state is JobState.DISCARDED
    assert (await tw.get_task_status(d.id)).errors[-1].message == "bad data"
    assert (await tw.get_task_status(c.id)).state is JobState.CANCELLED
    snoozed = await tw.get_task_status(s.id)
    assert snoozed.state is JobState.SCHEDULED
    assert snoozed.attempt == 0  # a snooze does not spend an attempt
    assert snoozed.scheduled_at > datetime.now(UTC) + timedelta(minutes=59)


async def test_timeouts_fail_the_attempt(tw: TaskManager) -> None:
    @tw.task(timeout=0.05, max_attempts=1)
    async def slow_async() -> None:
        await asyncio.sleep(5)

    @tw.task(timeout=0.05, max_attempts=1)
    def slow_sync() -> None:
        threading.Event().wait(0.5)

    a, s = await slow_async.enqueue(), await slow_sync.enqueue()
    await tw.drain()
    for job_id in (a.id, s.id):
        job = await tw.get_task_status(job_id)
        assert job.state is JobState.FAILED
        assert job.errors[-1].kind == "Timeout"


async def test_enqueue_timeout_overrides_task_default(tw: TaskManager) -> None:
    @tw.task(timeout=60, max_attempts=1)
    async def slow() -> None:
        await asyncio.sleep(5)

    job = await tw.enqueue_task(slow, timeout=0.05)
    assert job.timeout == 0.05
    await tw.drain()
    assert (await tw.get_task_status(job.id)).errors[-1].kind == "Timeout"


async def test_progress_reported_from_async_and_sync_jobs(tw: TaskManager) -> None:
    @tw.task
    async def report(ctx: JobContext) -> None:
        assert await ctx.report_progress({"done": 1, "total": 2})

    @tw.task
    def report_sync(ctx: JobContext) -> None:
        assert ctx.report_progress_sync({"done": 2, "total": 2})

    a, s = await report.enqueue(), await report_sync.enqueue()
    assert (await tw.drain()).counts == {"completed": 2}
    assert (await tw.get_task_status(a.id)).progress == {"done": 1, "total": 2}
    assert (await tw.get_task_status(s.id)).progress == {"done": 2, "total": 2}


async def test_concurrency_one_runs_in_priority_order(tw: TaskManager) -> None:
    order: list[int] = []

    @tw.task
    async def record(n: int) -> None:
        order.append(n)

    for priority in (5, 9, 0, 3, 0):
        await tw.enqueue_task(record, args=[priority], priority=priority)
    await tw.drain(concurrency=1)
    assert order == [0, 0, 3, 5, 9]


async def test_unique_jobs_concurrent_enqueues_make_one(tw: TaskManager) -> None:
    @tw.task(unique_for=60)
    async def sync_account(account: str) -> None:
        return None

    jobs = await asyncio.gather(*(sync_account.enqueue("acme") for _ in range(20)))
    assert len({j.id for j in jobs}) == 1
    other = await sync_account.enqueue("globex")
    assert other.id != jobs[0].id
    assert (await tw.list_tasks()).total_entries == 2


async def test_unique_key_covers_queue_and_every_argument(tw: TaskManager) -> None:
    @tw.task(unique_for=60)
    async def sync_account(account: int, *, full: bool = False, region: str = "eu") -> None:
        return None

    first = await sync_account.enqueue_with(args=[1], kwargs={"full": True, "region": "us"})
    # The same call with its kwargs in another order is the same job.
    again = await sync_account.enqueue_with(args=[1], kwargs={"region": "us", "full": True})
    assert again.id == first.id
    # One kwarg differs: another job (a key without the kwargs would drop this call).
    other_kwarg = await sync_account.enqueue_with(args=[1], kwargs={"full": True, "region": "eu"})
    # Another queue: another job.
    other_queue = await sync_account.enqueue_with(
        args=[1], kwargs={"full": True, "region": "us"}, queue="other"
    )
    # Another positional arg: another job.
    other_arg = await sync_account.enqueue_with(args=[2], kwargs={"full": True, "region": "us"})
    ids = {first.id, other_kwarg.id, other_queue.id, other_arg.id}
    assert len(ids) == 4
    assert (await tw.list_tasks()).total_entries == 4


async def test_enqueue_by_name_and_import_path(tw: TaskManager) -> None:
    @tw.task(name="named.task")
    async def named() -> str:
        return "ok"

    by_name = await tw.enqueue_task("named.task")
    # Runs because the tests declare tests_support.jobs a task module (tests/conftest.py).
    by_path = await tw.enqueue_task("tests_support.jobs:add", args=[2, 3])
    await tw.drain()
    assert (await tw.get_task_status(by_name.id)).result == "ok"
    assert (await tw.get_task_status(by_path.id)).result == 5


async def test_enqueue_many_in_bulk(tw: TaskManager) -> None:
    @tw.task
    async def add(a: int, b: int = 0) -> int:
        return a + b

    jobs = await add.enqueue_many([[1], ([2], {"b": 3}), (4, 5)], priority=2)
    assert [j.args for j in jobs] == [[1], [2], [4, 5]]
    assert all(j.priority == 2 for j in jobs)
    await tw.drain()
    results = sorted([(await tw.get_task_status(j.id)).result for j in jobs])
    assert results == [1, 5, 9]


async def test_enqueue_many_with_bad_input_late_stores_none(tw: TaskManager) -> None:
    # PostgreSQL streams a bulk enqueue into one COPY while it is still being built: the bad
    # call, long after the first chunks went out, must cancel the whole COPY.
    received: list[Any] = []
    tw.on("job.enqueued", received.append)
    calls: list[Any] = [[n] for n in range(1500)]
    calls[1234] = [object()]
    with pytest.raises(NotSerializable):
        await tw.enqueue_many("tests_support.jobs:add", calls)
    assert (await tw.list_tasks()).total_entries == 0
    assert received == []
    calls[1234] = [1234]
    jobs = await tw.enqueue_many("tests_support.jobs:add", calls, batch_size=700)
    assert [job.args[0] for job in jobs] == list(range(1500))
    assert len({job.id for job in jobs}) == 1500
    assert (await tw.list_tasks()).total_entries == 1500
    assert len(received) == 1500


async def test_enqueue_many_takes_any_iterable_of_calls(tw: TaskManager) -> None:
    generated = await tw.enqueue_many("tests_support.jobs:add", ([n] for n in range(250)))
    queued = await tw.enqueue_many("tests_support.jobs:add", deque([[n], [n + 1]] for n in (7,)))
    assert [job.args[0] for job in generated] == list(range(250))
    assert [job.args for job in queued] == [[[7], [8]]]
    assert (await tw.list_tasks()).total_entries == 251
    with pytest.raises(InvalidOptions, match="batch_size"):
        await tw.enqueue_many("tests_support.jobs:add", [[1]], batch_size=0)


async def test_schedule_task_at_time_and_delay(tw: TaskManager) -> None:
    @tw.task
    async def later() -> None:
        return None

    at = datetime.now(UTC) + timedelta(hours=1)
    job = await tw.schedule_task(later, at=at)
    assert job.state is JobState.SCHEDULED
    assert abs((job.scheduled_at - at).total_seconds()) < 0.01
    delayed = await tw.schedule_task(later, at=30)
    assert delayed.state is JobState.SCHEDULED
    assert (await tw.drain()).total == 0
    now_job = await tw.schedule_task(later, at=0)
    assert now_job.state is JobState.PENDING


async def test_cancel_and_retry(tw: TaskManager) -> None:
    @tw.task(max_attempts=1)
    async def maybe(fail: bool) -> str:
        if fail:
            raise RuntimeError("first run fails")
        return "ok"

    waiting = await maybe.schedule(3600, False)
    cancelled = await tw.cancel_task(waiting.id, reason="changed my mind")
    assert cancelled.state is JobState.CANCELLED
    failing = await maybe.enqueue(True)
    await tw.drain()
    assert (await tw.get_task_status(failing.id)).state is JobState.FAILED
    retried = await tw.retry_task(failing.id)
    assert retried.state is JobState.PENDING
    await tw.drain()
    again = await tw.get_task_status(failing.id)
    assert again.state is JobState.FAILED
    assert again.attempt == 2
    with pytest.raises(JobNotFound):
        await tw.get_task_status(999_999)


async def test_pause_and_resume_queue(tw: TaskManager) -> None:
    @tw.task(queue="reports")
    async def build() -> None:
        return None

    job = await build.enqueue()
    await tw.pause_queue("reports")
    assert (await tw.drain(["reports"])).total == 0
    assert (await tw.get_statistics())["paused"] == ["reports"]
    await tw.resume_queue("reports")
    assert (await tw.drain(["reports"])).total == 1
    assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED


async def test_list_tasks_filters_and_pages(tw: TaskManager) -> None:
    @tw.task(queue="a")
    async def one() -> None:
        return None

    @tw.task(queue="b")
    async def two() -> None:
        return None

    for _ in range(7):
        await one.enqueue()
    for _ in range(3):
        await two.enqueue()
    page = await tw.list_tasks(queue="a", per_page=3, page=3)
    assert page.total_entries == 7
    assert page.total_pages == 3
    assert len(page.items) == 1
    assert (await tw.list_tasks(task=two)).total_entries == 3
    assert (await tw.list_tasks(state="completed")).total_entries == 0
    ids = [j.id for j in (await tw.list_tasks(sort_by="id", per_page=100)).items]
    assert ids == sorted(ids)
    with pytest.raises(InvalidOptions):
        await tw.list_tasks(state="bogus")


async def test_statistics_shape(tw: TaskManager) -> None:
    @tw.task(queue="stats", max_attempts=1)
    async def boom() -> None:
        raise RuntimeError("x")

    await boom.enqueue()
    await boom.schedule(3600)
    await tw.drain(["stats"])
    stats = await tw.get_statistics()
    counts = stats["queues"]["stats"]
    assert counts["failed"] == 1
    assert counts["scheduled"] == 1
    assert set(counts) == {s.value for s in JobState}
    assert set(stats["workers"]) >= {"total", "busy_slots", "total_slots", "nodes"}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"args": [datetime.now(UTC)]}, NotSerializable),
        ({"args": [object()]}, NotSerializable),
        ({"args": ["x" * 2_000_000]}, PayloadTooLarge),
        ({"queue": "bad queue!"}, InvalidOptions),
        ({"queue": "q" * 65}, InvalidOptions),
        ({"delay": -1}, InvalidOptions),
        ({"max_attempts": 0}, InvalidOptions),
        ({"priority": 10}, InvalidOptions),
        ({"timeout": 0}, InvalidOptions),
        ({"colour": "blue"}, InvalidOptions),
    ],
)
async def test_bad_input_is_rejected_before_anything_is_written(
    tw: TaskManager, kwargs: dict[str, Any], error: type[TaskwardError]
) -> None:
    @tw.task
    async def anything(*args: Any) -> None:
        return None

    with pytest.raises(error):
        await tw.enqueue_task(anything, **kwargs)
    assert (await tw.list_tasks()).total_entries == 0


async def test_unknown_task_and_bad_cron_are_rejected(tw: TaskManager) -> None:
    with pytest.raises(UnknownTask):
        await tw.enqueue_task("no_such_task")
    with pytest.raises(UnknownTask):
        await tw.enqueue_task("tests_support.jobs:missing")
    with pytest.raises(InvalidCron):
        await tw.schedule_recurring_task("x", "tests_support.jobs:add", cron="61 * * * *")
    with pytest.raises(InvalidCron):
        await tw.schedule_recurring_task(
            "x", "tests_support.jobs:add", cron="0 3 * * *", timezone="Mars/Olympus"
        )
    assert (await tw.list_tasks()).total_entries == 0
    assert await tw.list_recurring_tasks() == []


async def test_payload_limit_is_configurable(manager_url: str) -> None:
    async with TaskManager(manager_url, max_payload_bytes=100) as small:
        with pytest.raises(PayloadTooLarge):
            await small.enqueue_task("tests_support.jobs:add", args=["y" * 200])
        job = await small.enqueue_task("tests_support.jobs:add", args=[1, 2])
        assert job.id > 0


async def test_a_reused_template_gets_each_calls_own_schedule_and_options() -> None:
    """build_job reuses a task's validated template: time, options and meta stay per call."""
    from taskward import FrozenClock

    clock = FrozenClock()
    tw = TaskManager("memory://", clock=clock)

    @tw.task(queue="q1", priority=3)
    async def work(i: int) -> None:
        return None

    async with tw:
        first = await work.enqueue(1)
        clock.advance(60)
        second = await work.enqueue(2)
        assert second.scheduled_at == first.scheduled_at + timedelta(seconds=60)
        assert (second.queue, second.priority, second.args) == ("q1", 3, [2])
        later = await work.enqueue_with(args=(3,), delay=30)
        assert later.state is JobState.SCHEDULED
        assert later.scheduled_at == second.scheduled_at + timedelta(seconds=30)
        assert (await work.enqueue(4)).state is JobState.PENDING
        tw.meta_providers.append(lambda task, queue: {"tenant": "t1"})
        assert (await work.enqueue(5)).meta == {"tenant": "t1"}
        tw.meta_providers.clear()
        work.options = replace(work.options, queue="q2")  # a changed task: a new template
        assert (await work.enqueue(6)).queue == "q2"


async def test_jobs_built_from_one_template_do_not_share_their_meta(tw: TaskManager) -> None:
    @tw.task(sensitive=("password",))
    async def login(user: str, password: str) -> None:
        return None

    first = await login.enqueue("ada", "secret")
    first.meta.clear()  # the caller's copy: must not reach the next job, nor the template
    second = await login.enqueue("bob", "hunter2")
    assert second.meta == (await tw.get_task_status(second.id)).meta != {}
    batch = await login.enqueue_many([["c", "p1"], ["d", "p2"]])
    assert batch[0].meta is not batch[1].meta


async def test_commands_on_missing_things_raise(tw: TaskManager) -> None:
    @tw.task(name="slow")
    async def slow() -> None:
        return None

    with pytest.raises(JobNotFound):
        await tw.delete_task(424242)
    with pytest.raises(JobNotFound):
        await tw.cancel_task(424242)
    with pytest.raises(ScheduleNotFound, match="never"):
        await tw.cancel_recurring_task("never")
    done = await tw.enqueue_task(slow)
    await tw.drain()
    await tw.delete_task(done.id)
    with pytest.raises(JobNotFound):
        await tw.get_task_status(done.id)
    running = await tw.enqueue_task(slow)
    now = tw.clock.now()
    await tw.backend.fetch(
        queue="default", limit=1, worker_id="w", now=now, lease_until=now + timedelta(seconds=60)
    )
    with pytest.raises(JobRunning, match="cancel it first"):
        await tw.delete_task(running.id)
    assert (await tw.get_task_status(running.id)).state is JobState.RUNNING
