"""Partitioned queues through the public API, on every backend.

The claim's order and per-key limits are in tests/contract/test_partitions.py; here: the rule
and the task's key function, bad input, ``RateLimited`` holding one key, ``explain``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from taskward import (
    InvalidOptions,
    JobState,
    QueueLimits,
    RateLimited,
    TaskManager,
)
from taskward.jobs import WorkerInfo
from taskward.limits import PartitionBy


async def live_worker(tw: TaskManager, **queues: int) -> None:
    now = tw.clock.now()
    info = WorkerInfo(
        id="w1", hostname="host", pid=1, queues=queues, started_at=now, heartbeat_at=now
    )
    await tw.backend.record_worker(info)


async def claim(tw: TaskManager, queue: str, limit: int = 10) -> list[int]:
    now = tw.clock.now()
    jobs = await tw.backend.fetch(
        queue=queue, limit=limit, worker_id="w1", now=now, lease_until=now + timedelta(seconds=60)
    )
    return [j.id for j in jobs]


async def test_a_kwarg_or_a_position_partitions_a_queue(tw: TaskManager) -> None:
    @tw.task(queue="api")
    async def call(host: str, *, tenant: str) -> None:
        return None

    limits = await tw.configure_queue("api", partition_by="tenant", global_limit=2)
    assert limits == QueueLimits(global_limit=2, partition_by=PartitionBy(kwarg="tenant"))
    job = await call.enqueue("h1", tenant="acme")
    assert job.partition_key == "acme"
    await tw.configure_queue("api", partition_by=0)  # the rule changes; the limit stays
    assert (await tw.get_task_status(job.id)).partition_key == "h1"
    assert (await tw.queue_limits())["api"].global_limit == 2
    explicit = await tw.enqueue_task(call, args=["h2"], kwargs={"tenant": "x"}, partition_key="k")
    assert explicit.partition_key == "k"


async def test_a_tasks_key_function_wins_over_the_rule(tw: TaskManager) -> None:
    @tw.task(queue="api", partition_key=lambda url, account: f"acct-{account['id']}")
    async def fetch_page(url: str, account: dict[str, Any]) -> None:
        return None

    await tw.configure_queue("api", partition_by="url")
    job = await fetch_page.enqueue("https://x", {"id": 7})
    assert job.partition_key == "acct-7"
    many = await tw.enqueue_many(fetch_page, [["https://y", {"id": i}] for i in range(3)])
    assert [j.partition_key for j in many] == ["acct-0", "acct-1", "acct-2"]


async def test_a_key_function_that_fails_stores_nothing(tw: TaskManager) -> None:
    @tw.task(queue="api", partition_key=lambda account: account["id"])
    async def returns_an_int(account: dict[str, Any]) -> None:
        return None

    @tw.task(queue="api", partition_key=lambda account: account["tenant"])
    async def raises(account: dict[str, Any]) -> None:
        return None

    with pytest.raises(InvalidOptions, match="must return a str"):
        await returns_an_int.enqueue({"id": 7})
    with pytest.raises(InvalidOptions, match="raised KeyError"):
        await raises.enqueue({"id": 7})
    with pytest.raises(InvalidOptions, match="raised KeyError"):
        await tw.enqueue_many(raises, [({"tenant": "a"},), ({"id": 1},)])
    assert (await tw.list_tasks()).total_entries == 0


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (lambda job: "k", "give the task a key function"),
        ("not an identifier!", "must name a keyword argument"),
        ("", "must name a keyword argument"),
        (-1, "args position must be an int in 0..255"),
        (256, "args position must be an int in 0..255"),
        (True, "must be a kwarg name, an args position or None"),
        (1.5, "must be a kwarg name, an args position or None"),
    ],
)
async def test_bad_rules_change_nothing(tw: TaskManager, rule: Any, message: str) -> None:
    await tw.configure_queue("api", partition_by="tenant")
    with pytest.raises(InvalidOptions, match=message):
        await tw.configure_queue("api", partition_by=rule)
    assert await tw.queue_limits() == {"api": QueueLimits(partition_by=PartitionBy(kwarg="tenant"))}


async def test_rate_limited_holds_only_the_jobs_key(tw: TaskManager) -> None:
    ran: list[str] = []

    @tw.task(queue="api")
    async def call(tenant: str, n: int) -> None:
        ran.append(f"{tenant}{n}")
        if tenant == "a" and n == 0:
            raise RateLimited(retry_after=3600)

    await tw.configure_queue("api", partition_by="tenant")
    first = await call.enqueue(tenant="a", n=0)  # by name: the rule reads the kwarg
    await tw.drain(["api"], concurrency=1)
    assert ran == ["a0"]
    flow = await tw.partition_flow("api", "a")
    assert flow.held_until == (await tw.get_task_status(first.id)).scheduled_at
    await call.enqueue(tenant="a", n=1)
    await call.enqueue(tenant="b", n=1)
    await tw.drain(["api"])
    assert ran == ["a0", "b1"]  # a is held on every node; b is not
    await tw.hold_queue("api", seconds=None, key="a")
    await tw.drain(["api"])
    assert ran == ["a0", "b1", "a1"]


async def test_rate_limited_whole_queue_holds_every_key(tw: TaskManager) -> None:
    @tw.task(queue="api")
    async def call(tenant: str) -> None:
        if tenant == "a":
            raise RateLimited(retry_after=3600, whole_queue=True)

    await tw.configure_queue("api", partition_by="tenant")
    await call.enqueue(tenant="a")
    await tw.drain(["api"])
    other = await call.enqueue(tenant="b")
    await tw.drain(["api"])
    assert (await tw.get_task_status(other.id)).state is JobState.PENDING
    assert (await tw.queue_flow())["api"].held_until is not None


async def test_explain_a_key_at_its_limit_held_or_out_of_rate(tw: TaskManager) -> None:
    await live_worker(tw, api=10)
    await tw.configure_queue("api", partition_by="tenant", global_limit=1)
    a1 = await tw.enqueue_task("tests_support.jobs:add", args=[1, 1], kwargs={}, queue="api")
    assert a1.partition_key == ""  # the job lacks the kwarg: the empty key
    jobs = [
        await tw.enqueue_task("tests_support.jobs:keep", kwargs={"tenant": "a"}, queue="api")
        for _ in range(2)
    ]
    claimed = await claim(tw, "api")
    assert jobs[0].id in claimed
    why = await tw.explain(jobs[1].id)
    assert why.codes == ("partition_limit",)
    data = why.reasons[0].data
    assert (data["key"], data["limit"], data["running"], data["held_by"]) == (
        "a",
        1,
        1,
        [jobs[0].id],
    )
    assert "partition key 'a' of queue api is at its limit" in why.reasons[0].text

    await tw.hold_queue("api", seconds=600, key="a")
    assert (await tw.explain(jobs[1].id)).codes == ("partition_held", "partition_limit")

    await tw.configure_queue("rated", partition_by="tenant", rate_limit="1/h")
    await live_worker(tw, api=10, rated=10)
    rated = [
        await tw.enqueue_task("tests_support.jobs:keep", kwargs={"tenant": "b"}, queue="rated")
        for _ in range(2)
    ]
    [started] = await claim(tw, "rated")
    (left,) = [j.id for j in rated if j.id != started]
    why = await tw.explain(left)
    assert why.codes == ("partition_rate",)
    assert why.reasons[0].data["key"] == "b"
    assert "partition key 'b' of queue rated is full" in why.reasons[0].text


async def test_rate_limited_with_a_key_in_a_queue_not_partitioned_holds_the_queue(
    tw: TaskManager,
) -> None:
    @tw.task(queue="api", partition_key=lambda tenant: tenant)
    async def call(tenant: str) -> None:
        raise RateLimited(retry_after=3600)

    job = await call.enqueue("a")
    assert job.partition_key == "a"
    await tw.drain(["api"])
    assert (await tw.queue_flow())["api"].held_until is not None  # a key's hold would hold none


async def test_a_key_of_a_task_with_secrets_is_not_shown(tw: TaskManager) -> None:
    @tw.task(queue="api", sensitive=("token",), partition_key=lambda token: token)
    async def call(token: str) -> None:
        return None

    job = await call.enqueue("s3cr3t")
    why = await tw.explain(job.id)
    assert why.job["partition_key"] == "***"
    assert "s3cr3t" not in str(why.to_dict())
