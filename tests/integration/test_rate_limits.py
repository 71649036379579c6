"""Rate limits and ``RateLimited`` through the public API, on every backend.

The claim-level arithmetic is in tests/contract/test_rate_limits.py; here: configuring,
validating, what a job raising ``RateLimited`` does to its queue, ``explain``, statistics.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskward import (
    InvalidOptions,
    JobContext,
    JobState,
    QueueLimits,
    Rate,
    RateLimited,
    TaskManager,
)
from taskward.jobs import WorkerInfo
from taskward.observe.events import Event

ADD = "tests_support.jobs:add"


async def live_worker(tw: TaskManager, worker_id: str, **queues: int) -> None:
    now = tw.clock.now()
    info = WorkerInfo(
        id=worker_id, hostname="host", pid=1, queues=queues, started_at=now, heartbeat_at=now
    )
    await tw.backend.record_worker(info)


async def test_configure_keeps_what_is_not_named(tw: TaskManager) -> None:
    assert await tw.configure_queue("api", global_limit=3) == QueueLimits(global_limit=3)
    both = await tw.configure_queue("api", rate_limit="5/m")
    assert both == QueueLimits(global_limit=3, rate_limit=Rate(5, 60.0))
    assert await tw.configure_queue("api", global_limit=None) == QueueLimits(
        rate_limit=Rate(5, 60.0)
    )
    assert await tw.configure_queue("api", rate_limit=(2, 0.5)) == QueueLimits(
        rate_limit=Rate(2, 0.5)
    )
    assert await tw.queue_limits() == {"api": QueueLimits(rate_limit=Rate(2, 0.5))}
    await tw.configure_queue("api", rate_limit=None)
    assert await tw.queue_limits() == {}


@pytest.mark.parametrize(
    "options",
    [
        {"rate_limit": "fast"},
        {"rate_limit": "0/s"},
        {"rate_limit": "-5/s"},
        {"rate_limit": (10, 0)},
        {"global_limit": -1},
        {"global_limit": 0},
        {"global_limit": 2, "rate_limit": "often"},
    ],
)
async def test_bad_limits_change_nothing(tw: TaskManager, options: dict[str, object]) -> None:
    await tw.configure_queue("api", global_limit=4, rate_limit="10/s")
    with pytest.raises(InvalidOptions):
        await tw.configure_queue("api", **options)  # type: ignore[arg-type]
    assert await tw.queue_limits() == {"api": QueueLimits(global_limit=4, rate_limit=Rate(10, 1.0))}


async def test_rate_limited_snoozes_the_job_and_holds_its_queue(tw: TaskManager) -> None:
    calls: list[int] = []
    held: list[Event] = []
    tw.on("queue.held", held.append)

    @tw.task(queue="api", max_attempts=1)
    async def call_upstream(ctx: JobContext, n: int) -> int:
        calls.append(n)
        if n == 0:
            raise RateLimited(retry_after=3600)
        return n

    @tw.task(queue="other")
    async def elsewhere() -> str:
        return "ran"

    first = await call_upstream.enqueue(0)
    await tw.drain(["api"])
    job = await tw.get_task_status(first.id)
    assert job.state is JobState.SCHEDULED
    assert job.attempt == 0  # no attempt spent, although max_attempts=1
    assert job.scheduled_at > datetime.now(UTC) + timedelta(minutes=59)
    flow = (await tw.queue_flow())["api"]
    assert flow.held_until == job.scheduled_at  # the queue waits exactly as long as the job
    assert [e.queue for e in held] == ["api"]
    assert held[0].data["job_id"] == first.id

    # Held on every node: another job of the queue does not start; other queues run.
    second = await call_upstream.enqueue(1)
    other = await elsewhere.enqueue()
    await tw.drain(["api", "other"])
    assert calls == [0]
    assert (await tw.get_task_status(second.id)).state is JobState.PENDING
    assert (await tw.get_task_status(other.id)).state is JobState.COMPLETED
    await live_worker(tw, "w1", api=1)
    why = await tw.explain(second.id)
    assert why.codes == ("held",)
    assert why.reasons[0].data["until"] == job.scheduled_at.isoformat()
    assert "raised RateLimited" in why.reasons[0].text

    # Released by an operator: the queue runs again.
    await tw.hold_queue("api", seconds=None)
    await tw.drain(["api"])
    assert calls == [0, 1]
    assert (await tw.get_task_status(second.id)).state is JobState.COMPLETED


async def test_a_hold_by_an_operator_only_grows(tw: TaskManager) -> None:
    await tw.hold_queue("api", seconds=600)
    long = (await tw.queue_flow())["api"].held_until
    assert long is not None
    await tw.hold_queue("api", seconds=5)
    assert (await tw.queue_flow())["api"].held_until == long
    with pytest.raises(InvalidOptions):
        await tw.hold_queue("api", seconds=-1)
    with pytest.raises(InvalidOptions):
        await tw.hold_queue("not a queue!", seconds=1)


async def test_explain_a_full_rate_window(tw: TaskManager) -> None:
    await live_worker(tw, "w1", api=10)
    await tw.configure_queue("api", rate_limit="2/h")
    jobs = [await tw.enqueue_task(ADD, args=[i, i], queue="api") for i in range(3)]
    now = tw.clock.now()
    claimed = await tw.backend.fetch(
        queue="api", limit=10, worker_id="w1", now=now, lease_until=now + timedelta(seconds=60)
    )
    assert len(claimed) == 2
    (left,) = [j.id for j in jobs if j.id not in {c.id for c in claimed}]
    why = await tw.explain(left)
    assert why.codes == ("rate_limit",)
    data = why.reasons[0].data
    assert (data["rate"], data["count"], data["used"]) == ("2/h", 2, 2)
    opens = datetime.fromisoformat(str(data["next_window_at"]))
    assert opens.minute == opens.second == 0  # hourly windows open on the hour
    assert now < opens <= now + timedelta(hours=1)
    assert "rate window of queue api is full" in why.reasons[0].text
    # Raised at run time: the window has room again.
    await tw.configure_queue("api", rate_limit="3/h")
    assert (await tw.explain(left)).codes == ("waiting",)


async def test_statistics_show_rates_and_holds(tw: TaskManager) -> None:
    await tw.configure_queue("api", global_limit=2, rate_limit="1/h")
    await tw.hold_queue("held", seconds=600)
    await tw.enqueue_task(ADD, args=[1, 1], queue="api")
    now = tw.clock.now()
    await tw.backend.fetch(
        queue="api", limit=10, worker_id="w1", now=now, lease_until=now + timedelta(seconds=60)
    )
    limits = (await tw.get_statistics())["limits"]
    assert limits["api"] == {
        "partition_by": None,
        "global_limit": 2,
        "rate_limit": "1/h",
        "rate_used": 1,
        "rate_full": True,
        "held_until": None,
        "waits": {},  # one job, claimed: none waited
    }
    assert limits["held"]["global_limit"] is None
    assert limits["held"]["held_until"] is not None


def test_the_sync_twins(tmp_path: object) -> None:
    tw = TaskManager("memory://")
    try:
        assert tw.sync.configure_queue("api", rate_limit="100/s") == QueueLimits(
            rate_limit=Rate(100, 1.0)
        )
        tw.sync.hold_queue("api", seconds=30)
        assert tw.sync.queue_flow()["api"].held_until is not None
    finally:
        tw.sync.shutdown()
