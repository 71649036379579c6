"""Concurrent producers on real stores: each enqueue returns its own job, stored exactly once.

Async producers on one loop and sync producers on many threads, at the same time, share
commits (taskward.commits); a unique job stays unique under the same load.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from taskward import TaskManager
from taskward.jobs import Job


async def all_jobs(tw: TaskManager) -> list[Job]:
    jobs: list[Job] = []
    page = 1
    while True:
        found = await tw.list_tasks(page=page, per_page=1000)
        jobs += found.items
        if len(found.items) < 1000:
            return jobs
        page += 1


async def test_async_and_thread_producers_at_once(store_url: str) -> None:
    tw = TaskManager(store_url)

    @tw.task(name="record")
    def record(producer: int, n: int) -> None: ...

    async with tw:

        def threaded(producer: int) -> list[Job]:
            return [record.enqueue_sync(producer, n) for n in range(25)]

        async def coroutine(producer: int) -> list[Job]:
            return [await record.enqueue(producer, n) for n in range(5)]

        results = await asyncio.gather(
            *(coroutine(p) for p in range(64)),
            *(asyncio.to_thread(threaded, 100 + p) for p in range(8)),
        )
        returned = [job for batch in results for job in batch]
        assert len(returned) == 64 * 5 + 8 * 25
        # Each caller got its own job, with its own arguments.
        for producer, batch in enumerate(results[:64]):
            assert [job.args for job in batch] == [[producer, n] for n in range(5)]
        for index, batch in enumerate(results[64:]):
            assert [job.args for job in batch] == [[100 + index, n] for n in range(25)]
        assert len({job.id for job in returned}) == len(returned)
        stored = await all_jobs(tw)
        counts = Counter((job.args[0], job.args[1]) for job in stored)
        assert len(stored) == len(returned)
        assert set(counts.values()) == {1}
        assert {job.id for job in stored} == {job.id for job in returned}
    tw.sync.shutdown()


async def test_a_unique_job_stays_unique_under_concurrency(store_url: str) -> None:
    tw = TaskManager(store_url)

    @tw.task(name="once", unique_for=3600)
    def once(key: str) -> None: ...

    @tw.task(name="plain")
    def plain(n: int) -> None: ...

    async with tw:
        mixed = await asyncio.gather(
            *(once.enqueue("k") for _ in range(30)), *(plain.enqueue(n) for n in range(30))
        )
        assert len({job.id for job in mixed[:30]}) == 1
        assert len({job.id for job in mixed[30:]}) == 30
        assert len(await all_jobs(tw)) == 31
