"""Arguments a task's function cannot take are refused at enqueue, and nothing is stored.

``add.enqueue(1)`` for ``def add(x, y)`` used to be stored and then fail at every attempt on
a worker. Every producer path that has the function checks the call against its parameters:
async and sync, one job or many, a schedule, a recurring schedule and a workflow's steps.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from taskward import InvalidJob, JobContext, JobState, TaskManager, Workflow, chain, group


def _manager(url: str) -> tuple[TaskManager, Any]:
    tw = TaskManager(url, poll_interval=0.05)

    @tw.task(name="math.add")
    def add(x: int, y: int) -> int:
        return x + y

    return tw, add


async def test_wrong_arguments_are_refused_on_every_path_and_nothing_is_stored(
    store_url: str,
) -> None:
    tw, add = _manager(store_url)
    refused: list[Callable[[], Awaitable[Any]]] = [
        lambda: add.enqueue(1),
        lambda: add.enqueue(1, 2, 3),
        lambda: add.enqueue(1, z=2),
        lambda: add.enqueue(1, x=2),
        lambda: add.enqueue_with(args=[1], priority=1),
        lambda: add.schedule(60, 1),
        lambda: tw.enqueue_task(add, args=[1]),
        lambda: tw.enqueue_task("math.add", kwargs={"x": 1}),  # registered: checked by name
        lambda: tw.schedule_task(add, at=60, args=[1, 2, 3]),
        lambda: add.enqueue_many([[1, 2], [3]]),  # one bad call: none stored
        lambda: add.enqueue_many([[1, 2], ([3], {"y": 4}), ([5], {"z": 6})]),
        lambda: tw.schedule_recurring_task("nightly", add, cron="0 3 * * *", args=[1]),
        lambda: asyncio.to_thread(add.enqueue_sync, 1),
        lambda: asyncio.to_thread(add.enqueue_with_sync, args=[1, 2], kwargs={"y": 3}),
        lambda: asyncio.to_thread(tw.sync.enqueue_task, "math.add", args=[]),
    ]
    async with tw:
        for call in refused:
            with pytest.raises(InvalidJob, match="Nothing was stored"):
                await call()
        assert (await tw.list_tasks()).total_entries == 0
        assert await tw.list_recurring_tasks() == []

        good = [
            await add.enqueue(1, 2),
            await add.enqueue(1, y=2),
            await tw.enqueue_task("math.add", kwargs={"x": 1, "y": 2}),
            await asyncio.to_thread(add.enqueue_sync, y=2, x=1),
            *await add.enqueue_many([[1, 2], ([1], {"y": 2}), ([], {"x": 1, "y": 2})]),
        ]
        assert (await tw.drain(timeout=30)).counts == {"completed": len(good)}
        for job in good:
            assert (await tw.get_task_status(job.id)).result == 3


async def test_the_context_parameter_is_not_asked_of_the_caller(tmp_path: Path) -> None:
    async with TaskManager(f"sqlite:///{tmp_path}/jobs.db") as tw:

        @tw.task(name="ctx.scale")
        def scale(ctx: JobContext, value: int, *, by: int = 2) -> int:
            return value * by

        with pytest.raises(InvalidJob, match=r"takes \(value, \*, by=…\)"):
            await scale.enqueue()
        with pytest.raises(InvalidJob, match="too many positional arguments"):
            await scale.enqueue(1, 2)
        jobs = [await scale.enqueue(5), await scale.enqueue(5, by=3)]
        assert (await tw.drain(timeout=30)).counts == {"completed": 2}
        assert [(await tw.get_task_status(j.id)).result for j in jobs] == [10, 15]


async def test_a_name_enqueued_without_its_code_is_left_to_the_worker(tmp_path: Path) -> None:
    async with TaskManager(f"sqlite:///{tmp_path}/jobs.db") as tw:
        # No module of that name here: the producer cannot know the parameters.
        job = await tw.enqueue_task("billing_service.tasks:charge", args=[1, 2, 3], kwargs={"x": 1})
        assert job.state is JobState.PENDING
        # A module that imports here: its function is known, so the call is checked.
        with pytest.raises(InvalidJob, match=r"takes \(a, b=…\)"):
            await tw.enqueue_task("tests_support.jobs:add", args=[1, 2, 3])


async def test_workflow_steps_are_checked_with_what_they_receive(tmp_path: Path) -> None:
    async with TaskManager(f"sqlite:///{tmp_path}/jobs.db") as tw:

        @tw.task(name="wf.add")
        def add(x: int, y: int) -> int:
            return x + y

        @tw.task(name="wf.total")
        def total(results: list[int]) -> int:
            return sum(results)

        @tw.task(name="wf.report")
        def report(outcome: dict[str, Any]) -> list[str]:
            return sorted(outcome["completed"])

        # Refused where it is written: no result passed first could make these right.
        with pytest.raises(InvalidJob, match="too many positional arguments"):
            add.s(1, 2, 3)
        with pytest.raises(InvalidJob, match="unexpected keyword argument 'z'"):
            add.s(z=1)
        # A missing argument only once the graph says what the step receives.
        bad_flows = [
            chain(add.s(1, 2), add.s(1)),  # no pass_result: y is missing
            chain(add.s(1, 2), add.s(1, 2), pass_result=True),  # the result makes three
            group(add.s(1, 2), add.s(3, 4)).then(total.s()),  # total gets no list
        ]
        flow = Workflow()
        flow.add(add.s(1, 2))
        flow.finally_(report.s())  # a finalizer receives the outcome only with pass_result
        bad_flows.append(flow)
        for bad in bad_flows:
            with pytest.raises(InvalidJob, match="Nothing was stored"):
                await tw.enqueue_workflow(bad)
        assert (await tw.list_tasks()).total_entries == 0

        good = chain(
            add.s(1, 2),
            group(add.s(10), add.s(y=20)),  # each receives 3 as x
            total.s(),
            pass_result=True,
        )
        good.finally_(report.s().set(pass_result=True, name="report"))
        handle = await tw.enqueue_workflow(good)
        assert (await tw.drain(timeout=30)).counts == {"completed": 5}
        steps = {s.name: s.job.id for s in handle.steps}
        assert (await tw.get_task_status(steps["total"])).result == 13 + 23
        assert len((await tw.get_task_status(steps["report"])).result) == 4


async def test_a_decorated_task_is_checked_as_the_worker_calls_it(tmp_path: Path) -> None:
    # A decorator's wrapper may supply arguments (a session) or take its own: the worker
    # calls the wrapper, so the wrapped function's signature cannot judge the call.
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")

    def inject(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn("session", *args, **kwargs)

        return wrapper

    @tw.task(name="deco.uses")
    @inject
    def uses(session: str, x: int) -> str:
        return f"{session}:{x}"

    async with tw:
        job = await uses.enqueue(1)
        await tw.drain()
        assert (await tw.get_task_status(job.id)).result == "session:1"


async def test_a_refusal_never_shows_a_default_value(tmp_path: Path) -> None:
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")

    @tw.task(name="pay.charge", sensitive=["api_key"])
    def charge(amount: int, *, api_key: str = "sk_live_SECRET") -> None: ...

    async with tw:
        with pytest.raises(InvalidJob) as refused:
            await charge.enqueue()
    assert "sk_live_SECRET" not in str(refused.value)
    assert "api_key=…" in str(refused.value)
