"""Contract: how often a limit held jobs back. ``queue_flow()[q].waits`` counts, by reason, the
claims of ``q`` that a limit turned away while ``q`` had due jobs left to give.

A claim counts at most once per reason (``held``, ``global_limit``, ``rate_limit``; a key's
own hold, limit or window in a partitioned queue counts under the same three). A claim that
took all it asked, or that emptied the queue, counts nothing; a paused queue is not limited.
"""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.limits import PartitionBy, QueueLimits, Rate

from .helpers import NOW, at, fetch, fill, new_job


async def waits(backend: Backend, queue: str = "q") -> dict[str, int]:
    flow = (await backend.queue_flow()).get(queue)
    return {} if flow is None else {k: n for k, n in flow.waits.items() if n}


async def test_nothing_has_waited_at_first(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=2))
    assert await waits(backend) == {}


async def test_a_full_global_limit_counts_each_claim_it_turned_away(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=2))
    await fill(backend, 5)
    assert len(await fetch(backend, 10)) == 2
    assert await waits(backend) == {"global_limit": 1}
    assert await fetch(backend, 10) == []
    assert await waits(backend) == {"global_limit": 2}


async def test_a_claim_that_emptied_the_queue_or_got_all_it_asked_waited_for_nothing(
    backend: Backend,
) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=3))
    await fill(backend, 3)
    assert len(await fetch(backend, 1)) == 1  # all it asked
    assert len(await fetch(backend, 10)) == 2  # capped at the limit, but nothing is left
    assert await fetch(backend, 10) == []  # full, and nothing waits
    assert await waits(backend) == {}


async def test_a_full_rate_window_counts_under_rate_limit(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(rate_limit=Rate(3, 1.0)))
    await fill(backend, 5)
    assert len(await fetch(backend, 10)) == 3
    assert await fetch(backend, 10) == []
    assert await waits(backend) == {"rate_limit": 2}
    assert len(await fetch(backend, 10, now=at(1))) == 2  # the next window: the rest
    assert await waits(backend) == {"rate_limit": 2}


async def test_a_hold_counts_under_held_only_while_jobs_wait(backend: Backend) -> None:
    await backend.hold_queue("q", until=at(60))
    assert await fetch(backend, 10) == []  # nothing waits
    assert await waits(backend) == {}
    await fill(backend, 2)
    assert await fetch(backend, 10) == []
    assert await waits(backend) == {"held": 1}


async def test_one_claim_counts_once_per_reason(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=5, rate_limit=Rate(2, 1.0)))
    await fill(backend, 10)
    assert len(await fetch(backend, 10)) == 2  # the window allows 2 of the 5 the limit would
    assert await waits(backend) == {"rate_limit": 1}


async def test_a_keys_own_limit_counts_for_its_queue(backend: Backend) -> None:
    by_tenant = QueueLimits(global_limit=1, partition_by=PartitionBy(kwarg="tenant"))
    await backend.set_queue_limits("q", by_tenant)
    jobs = [new_job(queue="q", args=[i], kwargs={"tenant": "a"}) for i in range(3)]
    await backend.insert(jobs, now=NOW)
    assert len(await fetch(backend, 10)) == 1
    assert await waits(backend) == {"global_limit": 1}
    await backend.hold_queue("q", until=at(60), key="b")
    await backend.insert([new_job(queue="q", kwargs={"tenant": "b"})], now=NOW)
    assert await fetch(backend, 10) == []
    assert await waits(backend) == {"global_limit": 2, "held": 1}


async def test_a_partitioned_claim_that_got_all_it_asked_counts_nothing(
    backend: Backend,
) -> None:
    by_tenant = QueueLimits(global_limit=1, partition_by=PartitionBy(kwarg="tenant"))
    await backend.set_queue_limits("q", by_tenant)
    jobs = [new_job(queue="q", args=[i], kwargs={"tenant": t}) for t in "abc" for i in range(2)]
    await backend.insert(jobs, now=NOW)
    assert len(await fetch(backend, 2)) == 2  # two keys gave one each: all it asked
    assert await waits(backend) == {}


async def test_clearing_the_limits_drops_their_counts(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=1))
    await backend.hold_queue("q", until=at(60))
    await fill(backend, 2)
    await fetch(backend, 10)
    assert await waits(backend) == {"held": 1}
    await backend.set_queue_limits("q", QueueLimits())  # the hold keeps the queue's row
    await backend.set_queue_limits("q", QueueLimits(global_limit=1))
    assert await waits(backend) == {}


async def test_a_paused_queue_is_not_limited(backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=1))
    await fill(backend, 3)
    await backend.pause_queue("q")
    assert await fetch(backend, 10) == []
    assert await waits(backend) == {}


async def test_the_counts_are_the_stores(backend: Backend, second_backend: Backend) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=1))
    await fill(backend, 3)
    assert len(await fetch(backend, 10)) == 1
    assert len(await fetch(second_backend, 10, worker="w2")) == 0
    assert await waits(backend) == {"global_limit": 2}
    assert await waits(second_backend) == {"global_limit": 2}


@pytest.mark.parametrize("other", ["other", "q2"])
async def test_the_counts_are_per_queue(backend: Backend, other: str) -> None:
    await backend.set_queue_limits("q", QueueLimits(global_limit=1))
    await backend.set_queue_limits(other, QueueLimits(global_limit=1))
    await fill(backend, 3)
    await fill(backend, 1, queue=other)
    await fetch(backend, 10)
    await fetch(backend, 10, queue=other)
    assert await waits(backend) == {"global_limit": 1}
    assert await waits(backend, other) == {}
