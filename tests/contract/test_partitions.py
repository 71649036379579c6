"""Contract: partitioned queues. Keys come from the stored rule, take turns, and have limits each.

A queue with ``partition_by`` gets each job's key from its arguments when the job is stored
(or from the producer, ``NewJob.partition_key``); ``fetch`` visits the keys with pending jobs
in ascending order after the last key the previous claim visited, and takes one job of each
key per turn; ``global_limit``, ``rate_limit`` and holds given with a key apply to each key.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from taskward.backends import Backend
from taskward.jobs import Job, JobState
from taskward.limits import RUNNING_SHOWN, PartitionBy, QueueFlow, QueueLimits, Rate
from taskward.states import Completed, Discarded

from .helpers import NOW, at, fetch, finish_with, new_job

S = JobState
BY_TENANT = QueueLimits(partition_by=PartitionBy(kwarg="tenant"))


async def add(backend: Backend, tenant: Any, n: int = 1, **overrides: Any) -> list[Job]:
    """Insert ``n`` jobs of ``tenant`` into queue q (``args`` number them)."""
    jobs = [new_job(queue="q", args=[i], kwargs={"tenant": tenant}, **overrides) for i in range(n)]
    return [i.job for i in await backend.insert(jobs, now=NOW)]


def keys(jobs: list[Job]) -> list[str | None]:
    return [j.partition_key for j in jobs]


async def test_the_rule_is_stored_with_the_limits(backend: Backend) -> None:
    by_arg = QueueLimits(global_limit=2, partition_by=PartitionBy(arg=1))
    await backend.set_queue_limits("q", by_arg)
    await backend.set_queue_limits("other", BY_TENANT)
    assert await backend.queue_limits() == {"q": by_arg, "other": BY_TENANT}
    await backend.set_queue_limits("q", QueueLimits(global_limit=2))
    await backend.set_queue_limits("other", QueueLimits())
    assert await backend.queue_limits() == {"q": QueueLimits(global_limit=2)}


async def test_the_store_reads_each_jobs_key_by_the_rule(backend: Backend) -> None:
    assert keys(await add(backend, "acme")) == [None]  # not partitioned (yet)
    await backend.set_queue_limits("q", BY_TENANT)
    assert keys(await add(backend, "acme")) == ["acme"]
    assert keys(await add(backend, 42)) == ["42"]
    assert keys(await add(backend, None)) == [""]
    [no_kwarg] = await backend.insert([new_job(queue="q", kwargs={})], now=NOW)
    assert no_kwarg.job.partition_key == ""
    [given] = await backend.insert(
        [new_job(queue="q", kwargs={"tenant": "acme"}, partition_key="from-the-task")], now=NOW
    )
    assert given.job.partition_key == "from-the-task"
    assert (await backend.get(given.job.id)).partition_key == "from-the-task"
    await backend.set_queue_limits("p", QueueLimits(partition_by=PartitionBy(arg=1)))
    [by_position, too_short] = await backend.insert(
        [new_job(queue="p", args=["x", "host-1"]), new_job(queue="p", args=["x"])], now=NOW
    )
    assert (by_position.job.partition_key, too_short.job.partition_key) == ("host-1", "")


async def test_a_new_rule_keys_every_waiting_job_of_the_queue(backend: Backend) -> None:
    [running] = await add(backend, "umbrella")
    assert len(await fetch(backend, 10)) == 1
    more = await add(backend, "acme", 2)
    [scheduled] = await add(backend, "initech", scheduled_at=at(600), state=S.SCHEDULED)
    assert [(await backend.get(j.id)).partition_key for j in [*more, scheduled]] == [None] * 3
    await backend.set_queue_limits("q", BY_TENANT)
    assert [(await backend.get(j.id)).partition_key for j in [*more, scheduled]] == [
        "acme",
        "acme",
        "initech",
    ]
    # Running ones too: a retry brings them back to pending, where the claim needs a key.
    assert (await backend.get(running.id)).partition_key == "umbrella"
    # A changed rule keys them again.
    await backend.set_queue_limits("q", QueueLimits(partition_by=PartitionBy(arg=0)))
    assert [(await backend.get(j.id)).partition_key for j in more] == ["0", "1"]


async def test_a_job_retried_after_the_rule_was_set_is_claimed_by_its_key(
    backend: Backend,
) -> None:
    [job] = await add(backend, "acme")
    [claimed] = await fetch(backend, 10)
    assert await finish_with(backend, claimed, Discarded(reason="no"), now=at(1))
    await backend.set_queue_limits("q", BY_TENANT)
    retried = await backend.retry(job.id, now=at(2))
    assert retried.partition_key == "acme"
    assert keys(await fetch(backend, 10, now=at(3))) == ["acme"]


async def test_keys_take_turns_within_a_claim(backend: Backend) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    await add(backend, "a", 50)
    await add(backend, "b", 3)
    await add(backend, "c", 1)
    first = await fetch(backend, 6)
    assert keys(first) == ["a", "b", "c", "a", "b", "a"]
    # In claim order within a key.
    assert [j.args[0] for j in first if j.partition_key == "a"] == [0, 1, 2]


async def test_keys_take_turns_across_claims(backend: Backend) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    for tenant in ("a", "b", "c"):
        await add(backend, tenant, 5)
    claimed = [keys(await fetch(backend, 1)) for _ in range(7)]
    assert claimed == [["a"], ["b"], ["c"], ["a"], ["b"], ["c"], ["a"]]
    assert keys(await fetch(backend, 2)) == ["b", "c"]


async def test_a_deep_backlog_does_not_delay_a_new_keys_first_job(backend: Backend) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    await add(backend, "a", 500)
    assert keys(await fetch(backend, 5)) == ["a"] * 5  # a alone: it takes every turn
    await add(backend, "b", 3)
    assert keys(await fetch(backend, 4)) == ["b", "a", "b", "a"]


async def test_a_global_limit_applies_to_each_key(backend: Backend) -> None:
    await backend.set_queue_limits(
        "q", QueueLimits(global_limit=1, partition_by=PartitionBy(kwarg="tenant"))
    )
    await add(backend, "a", 3)
    await add(backend, "b", 3)
    first = await fetch(backend, 10)
    assert sorted(keys(first)) == ["a", "b"]  # type: ignore[type-var]
    assert await fetch(backend, 10) == []
    done = next(j for j in first if j.partition_key == "a")
    assert await finish_with(backend, done, Completed(), now=at(1))
    assert keys(await fetch(backend, 10, now=at(2))) == ["a"]
    flow = await backend.partition_flow("q", "b")
    assert flow.running == tuple(j.id for j in first if j.partition_key == "b")


async def test_a_rate_limit_applies_to_each_key(backend: Backend) -> None:
    rate = Rate(2, 1.0)
    await backend.set_queue_limits(
        "q", QueueLimits(rate_limit=rate, partition_by=PartitionBy(kwarg="tenant"))
    )
    await add(backend, "a", 5)
    await add(backend, "b", 5)
    assert Counter(keys(await fetch(backend, 10))) == {"a": 2, "b": 2}
    assert await fetch(backend, 10, now=at(0.5)) == []
    flow = await backend.partition_flow("q", "a")
    assert flow.used_in(rate.window_of(NOW)) == 2
    assert Counter(keys(await fetch(backend, 10, now=at(1)))) == {"a": 2, "b": 2}


async def test_a_hold_with_a_key_holds_only_that_key(
    backend: Backend, second_backend: Backend
) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    await add(backend, "a", 2)
    await add(backend, "b", 2)
    await backend.hold_queue("q", until=at(10), key="a")
    await second_backend.hold_queue("q", until=at(5), key="a")  # shorter: the longer stays
    assert keys(await fetch(second_backend, 10)) == ["b", "b"]
    assert (await backend.partition_flow("q", "a")).held_until == at(10)
    assert (await backend.partition_flow("q", "b")).held_until is None
    assert "q" not in await backend.queue_flow() or (
        (await backend.queue_flow())["q"].held_until is None
    )
    assert keys(await fetch(backend, 10, now=at(10))) == ["a", "a"]


async def test_a_hold_of_the_queue_holds_every_key(backend: Backend) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    await add(backend, "a")
    await add(backend, "b")
    await backend.hold_queue("q", until=at(10))
    assert await fetch(backend, 10) == []
    await backend.hold_queue("q", until=None)
    assert len(await fetch(backend, 10)) == 2


async def test_racing_claims_never_exceed_a_keys_limit(
    backend: Backend, second_backend: Backend
) -> None:
    await backend.set_queue_limits(
        "q", QueueLimits(global_limit=1, partition_by=PartitionBy(kwarg="tenant"))
    )
    for tenant in "abcde":
        await add(backend, tenant, 4)
    stores = [backend, second_backend] * 4
    rounds = await asyncio.gather(
        *(fetch(store, 3, worker=f"w{i}") for i, store in enumerate(stores))
    )
    claimed = [j for jobs in rounds for j in jobs]
    assert sorted(keys(claimed)) == list("abcde")  # type: ignore[type-var]


async def test_a_claim_with_many_keys_visits_only_as_many_as_it_takes(backend: Backend) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    tenants = [f"t{i:04d}" for i in range(300)]
    await backend.insert(
        [new_job(queue="q", kwargs={"tenant": t}) for t in tenants for _ in range(2)], now=NOW
    )
    first = await fetch(backend, 10)
    assert keys(first) == tenants[:10]
    assert keys(await fetch(backend, 10)) == tenants[10:20]  # the next keys, not the first again


async def test_keys_blocked_by_their_limit_are_skipped(backend: Backend) -> None:
    await backend.set_queue_limits(
        "q", QueueLimits(global_limit=1, partition_by=PartitionBy(kwarg="tenant"))
    )
    await add(backend, "a", 3)
    await add(backend, "b", 3)
    await add(backend, "c", 3)
    assert keys(await fetch(backend, 1)) == ["a"]
    assert keys(await fetch(backend, 1)) == ["b"]
    assert keys(await fetch(backend, 1)) == ["c"]
    assert await fetch(backend, 1) == []  # every key at its limit


async def test_partition_flow_of_an_unknown_key(backend: Backend) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    assert await backend.partition_flow("q", "nobody") == QueueFlow(limits=BY_TENANT, running=())


async def test_running_ids_are_capped(backend: Backend) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    await add(backend, "a", RUNNING_SHOWN + 5)
    assert len(await fetch(backend, RUNNING_SHOWN + 5)) == RUNNING_SHOWN + 5
    running = (await backend.partition_flow("q", "a")).running
    assert running is not None
    assert len(running) == RUNNING_SHOWN


@pytest.mark.parametrize("tenant", ["ünïcode", "with space", "a:b", "'quote\"", "x" * 200])
async def test_any_text_is_a_key(backend: Backend, tenant: str) -> None:
    await backend.set_queue_limits("q", BY_TENANT)
    await add(backend, tenant, 2)
    await backend.hold_queue("q", until=at(10), key=tenant)
    assert await fetch(backend, 10) == []
    assert keys(await fetch(backend, 10, now=at(10))) == [tenant, tenant]
