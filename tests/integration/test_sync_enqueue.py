"""Sync producers: ``Task.enqueue_sync`` and ``manager.sync.enqueue_task`` on each backend.

SQLite and PostgreSQL insert from the calling thread (no portal loop); other backends go
through the portal. Either way: the same validation, the same stored job, the same events.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime

from taskward import JobState, NotSerializable, TaskManager, UnknownTask


async def test_sync_enqueue_inserts_from_the_callers_thread(store_url: str) -> None:
    async with TaskManager(store_url, poll_interval=0.05) as tw:
        announced: list[tuple[int, int]] = []
        tw.on("job.enqueued", lambda event: announced.append((event.job_id, threading.get_ident())))

        @tw.task(name="double")
        def double(x: int) -> int:
            return 2 * x

        def produce() -> tuple[list[int], int]:
            ids = [double.enqueue_sync(n).id for n in range(3)]
            ids.append(tw.sync.enqueue_task(double, args=[10]).id)
            ids.append(double.enqueue_with_sync(args=[20], priority=3).id)
            ids.append(tw.sync.enqueue_task("double", args=[30]).id)
            return ids, threading.get_ident()

        ids, producer = await asyncio.to_thread(produce)
        # The portal's loop never started: every insert ran on the producer's thread.
        assert tw.sync.portal._loop is None
        assert [job_id for job_id, _ in announced] == ids
        assert {thread for _, thread in announced} == {producer}
        assert (await tw.get_task_status(ids[4])).priority == 3
        result = await tw.drain()
        assert result.counts == {"completed": 6}
        results = [(await tw.get_task_status(job_id)).result for job_id in ids]
        assert results == [0, 2, 4, 20, 40, 60]


async def test_sync_schedule_and_bad_input_on_the_direct_path(store_url: str) -> None:
    async with TaskManager(store_url) as tw:

        @tw.task(name="later")
        def later(x: object) -> None: ...

        def produce() -> list[str]:
            errors = []
            job = tw.sync.schedule_task(later, at=3600, args=[1])
            assert job.state is JobState.SCHEDULED
            for bad in (
                lambda: later.enqueue_sync(datetime.now()),
                lambda: tw.sync.enqueue_task("no.such:task"),
            ):
                try:
                    bad()
                except (NotSerializable, UnknownTask) as exc:
                    errors.append(type(exc).__name__)
            return errors

        assert await asyncio.to_thread(produce) == ["NotSerializable", "UnknownTask"]
        stats = await tw.get_statistics()
        assert sum(sum(by_state.values()) for by_state in stats["queues"].values()) == 1


def test_sync_enqueue_on_a_backend_without_it_goes_through_the_portal() -> None:
    tw = TaskManager("memory://")

    @tw.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    try:
        job = double.enqueue_sync(21)
        assert tw.sync.portal._loop is not None
        assert tw.sync.drain().counts == {"completed": 1}
        assert tw.sync.get_task_status(job.id).result == 42
    finally:
        tw.sync.shutdown()


def test_sync_enqueue_opens_a_manager_nobody_opened(tmp_path: object) -> None:
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")

    @tw.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    try:
        job = double.enqueue_sync(4)
        assert tw.sync.drain().counts == {"completed": 1}
        assert tw.sync.get_task_status(job.id).result == 8
    finally:
        tw.sync.shutdown()
