"""Redis Cluster: one store per slot, and a master failover under load.

The contract suite runs on a 3-master cluster too (``redis_cluster`` in
``tests/contract/conftest.py``). Here: stores of different prefixes land on different
masters, and a store's master is killed while a producer enqueues; its replica is promoted.
Replication is asynchronous, so the jobs acknowledged in the last moments before the kill
may be gone: the test reports how many, checks that every job that survived runs, and that
the store takes new work at once after the failover.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from reliability.harness import report
from taskward import JobState, TaskManager
from taskward.errors import BackendUnavailable, JobNotFound
from tests_support.servers import RedisCluster, find_redis_server, private_redis_cluster

pytestmark = [pytest.mark.integration, pytest.mark.redis]


@pytest.fixture
def replicated_cluster() -> Iterator[RedisCluster]:
    """A 3-master cluster with one replica each, for this test alone (it kills a master)."""
    if find_redis_server() is None:
        pytest.skip("redis-server not found")
    with private_redis_cluster(masters=3, replicas=1) as cluster:
        yield cluster


async def test_prefixes_spread_over_the_masters(redis_cluster: RedisCluster) -> None:
    prefixes = [f"spread{i}" for i in range(12)]
    masters = {redis_cluster.master_of("{" + p + "}:seq").port for p in prefixes}
    assert len(masters) > 1  # 12 hash tags on one master of three: (1/3)**11
    for prefix in prefixes[:3]:
        async with TaskManager(redis_cluster.url(prefix=prefix)) as tw:
            job = await tw.enqueue_task("tests_support.jobs:add", args=[1, 2])
            assert (await tw.get_task_status(job.id)).args == [1, 2]


class Producer:
    """Enqueues one job at a time until stopped, retrying through errors."""

    def __init__(self, tw: TaskManager) -> None:
        self.tw = tw
        self.acked: list[tuple[int, int]] = []  # (job id, its argument)
        self.errors = 0
        self.stop = asyncio.Event()
        self._progress = asyncio.Condition()

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                job = await self.tw.enqueue_task("tests_support.jobs:add", args=[n], queue="fo")
            except BackendUnavailable:
                self.errors += 1
                await asyncio.sleep(0.05)
                continue
            n += 1
            async with self._progress:
                self.acked.append((job.id, n - 1))
                self._progress.notify_all()

    async def until(self, count: int) -> None:
        """Return once ``count`` enqueues were acknowledged."""
        async with self._progress:
            await self._progress.wait_for(lambda: len(self.acked) >= count)


async def test_a_master_failover_under_load(replicated_cluster: RedisCluster) -> None:
    cluster = replicated_cluster
    prefix = f"fo_{uuid.uuid4().hex[:8]}"
    key = "{" + prefix + "}:seq"
    tw = TaskManager(cluster.url(prefix=prefix), poll_interval=0.05)
    async with tw:
        producer = Producer(tw)
        acked = producer.acked
        running = asyncio.create_task(producer.run())
        await producer.until(500)
        before_kill = len(acked)
        killed = cluster.kill_master(key)
        started = time.monotonic()
        await asyncio.to_thread(cluster.wait_failover, key)
        failover_s = time.monotonic() - started
        after_failover = len(acked)
        await producer.until(after_failover + 200)  # the store takes work again
        producer.stop.set()
        await running
        assert cluster.master_of(key).port != killed.port

        # A job is lost when its id holds nothing, or holds another job: the id counter is
        # replicated like the rest, so after losing writes the new master hands out the
        # ids of lost jobs again (docs/RELIABILITY.md).
        lost: list[tuple[int, int]] = []
        reused = 0
        for job_id, n in acked:
            try:
                stored = await tw.get_task_status(job_id)
            except JobNotFound:
                lost.append((job_id, n))
                continue
            if stored.args != [n]:
                lost.append((job_id, n))
                reused += 1
        result = await tw.drain(["fo"], timeout=120)
        counts = (await tw.backend.stats()).counts.get("fo", {})
    report(
        "redis cluster failover",
        acknowledged=len(acked),
        acknowledged_before_kill=before_kill,
        lost=len(lost),
        ids_given_again=reused,
        producer_errors=producer.errors,
        failover_seconds=round(failover_s, 2),
    )
    # Every job that survived the failover runs once it is over; none is stuck.
    assert counts == {JobState.COMPLETED: len(acked) - len(lost)}
    assert result.counts == {"completed": len(acked) - len(lost)}
    # Asynchronous replication loses at most what was acknowledged before the kill: every
    # job acknowledged after the failover survives.
    assert not set(lost) & set(acked[after_failover:])
