"""What a worker says at start and when asked to stop, and how it stops to be recycled.

On the in-memory store: these are the worker's own decisions, whatever the store.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from taskward import JobState, TaskManager
from taskward.runtime.recycle import RecycleLimits, Recycler
from taskward.runtime.served import tasks_by_queue


async def _wait_for(condition: asyncio.Event) -> None:
    await asyncio.wait_for(condition.wait(), 10)


async def test_the_worker_warns_about_queues_of_tasks_it_does_not_serve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="taskward.worker")
    # No task modules (the suite declares some): only this test's tasks are registered.
    async with TaskManager("memory://", poll_interval=0.05, task_modules=()) as tw:

        @tw.task(name="mail.send", queue="emails")
        async def send() -> None: ...

        @tw.task(name="report")
        async def report() -> None: ...

        worker = tw.make_worker()  # no queues given: the default queue only
        worker.tasks_by_queue = tasks_by_queue(tw.registry, tw.settings.default_queue)
        assert worker.tasks_by_queue == {"default": ["report"], "emails": ["mail.send"]}
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await _wait_for(worker.started)
        worker.stop()
        await asyncio.wait_for(runner, 10)

    known = [r.getMessage() for r in caplog.records if "registered task" in r.getMessage()]
    assert known == [
        f"worker {worker.id} knows 2 registered task(s): default: report; emails: mail.send"
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "does not serve queue 'emails', where the jobs of mail.send go" in warnings[0]
    assert "taskward worker -q emails" in warnings[0]


async def test_a_stop_is_logged_at_once_with_the_jobs_it_waits_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="taskward.runtime.worker")
    async with TaskManager("memory://", poll_interval=0.05, shutdown_timeout=0.2) as tw:
        running = asyncio.Event()

        @tw.task(name="stuck")
        async def stuck() -> None:
            running.set()
            await asyncio.sleep(30)

        job = await stuck.enqueue()
        worker = tw.make_worker({"default": 2})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        await _wait_for(running)
        worker.stop()
        said = [r.getMessage() for r in caplog.records if "stop requested" in r.getMessage()]
        assert said == [
            f"worker {worker.id}: stop requested; claiming no more jobs, waiting up to 0.2s "
            "for 1 running job(s) before releasing them"
        ]
        worker.stop()  # said once
        await asyncio.wait_for(runner, 10)
        released = await tw.get_task_status(job.id)

    messages = [r.getMessage() for r in caplog.records]
    assert sum("stop requested" in m for m in messages) == 1
    assert any("1 job(s) still running after the 0.2s shutdown timeout" in m for m in messages)
    assert released.state is not JobState.RUNNING  # handed back, to run again


async def test_a_worker_stops_itself_after_its_job_budget() -> None:
    async with TaskManager("memory://", poll_interval=0.05) as tw:

        @tw.task(name="quick")
        async def quick(n: int) -> int:
            return n

        jobs = await quick.enqueue_many([[i] for i in range(7)])
        worker = tw.make_worker({"default": 5})
        worker.recycler = Recycler(RecycleLimits(max_jobs=3))
        await asyncio.wait_for(tw.run_worker(worker=worker, install_signal_handlers=False), 10)
        states = [(await tw.get_task_status(j.id)).state for j in jobs]

    assert worker.recycled == "it ran 3 jobs (limit 3)"
    assert states.count(JobState.COMPLETED) == 3  # claims were capped: no job over budget
    assert states.count(JobState.PENDING) == 4


async def test_a_worker_stops_itself_at_its_memory_limit() -> None:
    async with TaskManager("memory://", poll_interval=0.05) as tw:

        @tw.task(name="quick")
        async def quick() -> None: ...

        await quick.enqueue()
        worker = tw.make_worker({"default": 1})
        worker.recycler = Recycler(RecycleLimits(max_rss=100), rss=lambda: 150)
        await asyncio.wait_for(tw.run_worker(worker=worker, install_signal_handlers=False), 10)

    assert worker.recycled is not None
    assert worker.recycled.startswith("its resident set is")
