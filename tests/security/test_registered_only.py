"""Only registered code runs: a task name read from the store never chooses what is imported.

The attacker model: someone who can write to the job or schedule tables (a leaked database
password, a compromised neighbour service) but not to the workers' code. Before issue 17 a
job whose ``task`` column was changed to ``os:system`` with the args ``["touch marker"]`` ran
a shell command in the next worker, because the worker imported any ``module:function``.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.jobs import Schedule
from taskward.runtime.maintenance import Rescuer
from taskward.runtime.scheduler import CronScheduler

SENTINEL = "tests_support.import_sentinel"
FORGED = [
    "os:system",
    "subprocess:getoutput",
    "builtins:exec",
    f"{SENTINEL}:run",
    # Names inside a declared task module that are not its own public functions.
    "tests_support.jobs:os.system",
    "tests_support.jobs:Path.touch",
    "tests_support.jobs:manager",
]


def forge(tw: TaskManager, url: str, job_id: int, task: str, args: list[Any]) -> None:
    """Change a stored job's task and args behind taskward's back, as an attacker would."""
    import json

    if url.startswith("memory"):
        jobs = tw.backend._jobs  # type: ignore[attr-defined]
        jobs[job_id] = replace(jobs[job_id], task=task, args=args)
        return
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.execute(
                "UPDATE taskward_jobs SET task = ?, args = ? WHERE id = ?",
                (task, json.dumps(args), job_id),
            )
        return
    if url.startswith("redis"):
        import redis

        prefix = parse_qs(urlsplit(url).query)["prefix"][0]
        with redis.Redis.from_url(url.partition("?")[0]) as db:
            db.hset(f"{{{prefix}}}:job:{job_id}", mapping={"task": task, "args": json.dumps(args)})
        return
    import psycopg

    parts = urlsplit(url)
    schema = parse_qs(parts.query)["schema"][0]
    with psycopg.connect(parts._replace(query="").geturl(), autocommit=True) as db:
        db.execute(f"SET search_path TO {schema}")
        db.execute(
            "UPDATE taskward_jobs SET task = %s, args = %s::json WHERE id = %s",
            (task, json.dumps(args), job_id),
        )


def harmless(value: Any = None) -> Any:
    return value


@pytest.fixture(params=["sqlite", "redis"])
def planted_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of a backend that lets an attacker write any text: SQLite, then Redis."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path}/x.db"


@pytest.mark.parametrize("name", FORGED)
async def test_a_forged_task_name_never_runs(
    manager_url: str, tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "marker.txt"
    tw = TaskManager(manager_url, poll_interval=0.05, task_modules=("tests_support.jobs",))
    tw.task(name="harmless", max_attempts=5)(harmless)
    async with tw:
        jobs = [await tw.enqueue_task("harmless", args=[n]) for n in range(2)]
        for job in jobs:
            forge(tw, manager_url, job.id, name, [f"touch {marker}"])
        with caplog.at_level(logging.WARNING, logger="taskward"):
            await tw.drain()
        for job in jobs:
            stored = await tw.get_task_status(job.id)
            assert stored.state is JobState.FAILED  # at once, not retried 5 times
            assert stored.attempt == 1
            assert stored.last_error is not None
            assert stored.last_error.kind == "UnknownTask"
            assert "not registered" in stored.last_error.message
    assert not marker.exists()
    assert SENTINEL not in sys.modules
    # Logged once per name, however many jobs carry it.
    warnings = [r for r in caplog.records if "not registered here" in r.getMessage()]
    assert len(warnings) == 1


async def test_an_unknown_task_is_retried_after_the_deploy(store_url: str) -> None:
    # A producer enqueues by path for workers that have the code; a worker deployed without
    # it fails the job, and the same job runs once a worker that declares the module retries it.
    async with TaskManager(store_url, poll_interval=0.05, task_modules=()) as old:
        job = await old.enqueue_task("tests_support.jobs:add", args=[2, 3])
        await old.drain()
        failed = await old.get_task_status(job.id)
        assert failed.state is JobState.FAILED
        assert failed.last_error is not None
        assert failed.last_error.kind == "UnknownTask"
    async with TaskManager(
        store_url, poll_interval=0.05, task_modules=("tests_support.jobs",)
    ) as new:
        await new.retry_task(job.id)
        await new.drain()
        done = await new.get_task_status(job.id)
        assert done.state is JobState.COMPLETED
        assert done.result == 5


async def test_a_producer_without_the_code_enqueues_by_path(tw: TaskManager) -> None:
    job = await tw.enqueue_task("billing_service.jobs:charge", args=[10], queue="billing")
    assert job.task == "billing_service.jobs:charge"
    assert job.state is JobState.PENDING
    assert "billing_service" not in sys.modules
    await tw.drain()
    failed = await tw.get_task_status(job.id)
    assert failed.last_error is not None
    assert failed.last_error.kind == "UnknownTask"


async def test_a_producer_import_by_path_does_not_make_a_task_runnable(tmp_path: Path) -> None:
    # The producer may import a module to read a task's options; a plain function found so
    # is still not runnable by this process's workers unless its module is declared.
    async with TaskManager(f"sqlite:///{tmp_path}/x.db", task_modules=()) as tw:
        job = await tw.enqueue_task("tests_support.jobs:add", args=[1, 1])
        assert tw.runnable_task("tests_support.jobs:add") is None
        await tw.drain()
        stored = await tw.get_task_status(job.id)
        assert stored.state is JobState.FAILED


async def test_declared_modules_run_their_own_public_functions_only() -> None:
    tw = TaskManager("memory://", task_modules=("tests_support.jobs",))
    add = tw.runnable_task("tests_support.jobs:add")
    assert add is not None
    assert add.fn(2, 3) == 5
    for name in ("tests_support.jobs:os", "tests_support.jobs:os.system", "tests_support.jobs:Path",
                 "tests_support.jobs:manager", "tests_support.jobs:__name__",
                 "tests_support.other:add", "os:system"):  # fmt: skip
        assert tw.runnable_task(name) is None, name


async def test_import_by_path_is_an_explicit_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "opted-in.txt"
    async with TaskManager("memory://", import_by_path=True, task_modules=()) as tw:
        job = await tw.enqueue_task(f"{SENTINEL}:run", args=[str(marker)])
        await tw.drain()
        assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED
    assert marker.exists()
    sys.modules.pop(SENTINEL, None)  # the other tests check that nothing imported it


async def test_the_rescuer_never_imports_a_forged_name(store_url: str) -> None:
    clock = FrozenClock()
    async with TaskManager(store_url, clock=clock, lease_seconds=1, task_modules=()) as tw:
        tw.task(name="harmless")(harmless)
        job = await tw.enqueue_task("harmless", args=[1])
        forge(tw, store_url, job.id, f"{SENTINEL}:run", ["x"])
        now = clock.now()
        (claimed,) = await tw.backend.fetch(
            queue="default",
            limit=1,
            worker_id="dead-worker",
            now=now,
            lease_until=now + timedelta(seconds=1),
        )
        assert claimed.task == f"{SENTINEL}:run"
        rescuer = Rescuer(
            tw.backend,
            clock,
            1,
            leadership=None,
            resolve=tw._lookup,
            default_policy=tw.default_policy,
        )
        clock.advance(5)
        await rescuer.run_once()
        assert (await tw.get_task_status(job.id)).state is JobState.RETRYABLE
    assert SENTINEL not in sys.modules


async def test_a_forged_cron_schedule_never_imports_its_task(store_url: str) -> None:
    async with TaskManager(store_url, poll_interval=0.05, task_modules=()) as tw:
        now = tw.clock.now()
        await tw.backend.save_schedule(
            Schedule(
                name="forged",
                task=f"{SENTINEL}:run",
                cron="* * * * *",
                timezone="UTC",
                args=["x"],
                kwargs={},
                created_at=now - timedelta(minutes=5),
            )
        )
        scheduler = CronScheduler(tw.backend, tw.clock, make_job=tw.schedule_job, leadership=None)
        await scheduler.run_once()
        await tw.drain(with_scheduled=False)
        jobs = (await tw.list_tasks()).items
        assert jobs, "the scheduler inserts the slot; the worker refuses it"
        for job in jobs:
            assert job.task == f"{SENTINEL}:run"
            assert job.state is JobState.FAILED
            assert job.last_error is not None
            assert job.last_error.kind == "UnknownTask"
    assert SENTINEL not in sys.modules


async def test_a_declared_module_that_fails_to_import_fails_its_jobs(
    planted_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = planted_url
    module = "tests_support.broken_task_module"
    async with TaskManager(url, poll_interval=0.05, task_modules=(module,)) as tw:
        tw.task(name="harmless")(harmless)
        jobs = [await tw.enqueue_task("harmless", args=[n]) for n in range(2)]
        for job in jobs:
            forge(tw, url, job.id, f"{module}:anything", [])
        with caplog.at_level(logging.ERROR, logger="taskward"):
            await tw.drain(timeout=30)
        for job in jobs:
            stored = await tw.get_task_status(job.id)
            assert stored.state is JobState.FAILED  # not left running, nor stuck for the Rescuer
            assert stored.last_error is not None
            assert stored.last_error.kind == "UnknownTask"
    imports = [r for r in caplog.records if "cannot import the declared task module" in r.message]
    assert len(imports) == 1  # once, not once per job


async def test_a_custom_named_task_of_a_declared_module_runs(tmp_path: Path) -> None:
    from tests_support.named_tasks import nightly

    url = f"sqlite:///{tmp_path}/x.db"
    async with TaskManager(url, task_modules=()) as producer:
        job = await producer.enqueue_task(nightly, args=["monday"])
        assert job.task == "reports.nightly"
    async with TaskManager(
        url, poll_interval=0.05, task_modules=("tests_support.named_tasks",)
    ) as worker:
        await worker.drain(timeout=30)
        assert (await worker.get_task_status(job.id)).result == "report of monday"


async def test_worker_logs_show_a_forged_name_escaped(
    planted_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = planted_url
    forged = "x\x1b]8;;http://evil\x07CLICK\x1b[2K"
    async with TaskManager(url, poll_interval=0.05, task_modules=()) as tw:
        tw.task(name="harmless")(harmless)
        job = await tw.enqueue_task("harmless", args=[1])
        forge(tw, url, job.id, forged, [])
        with caplog.at_level(logging.INFO, logger="taskward"):
            await tw.drain(timeout=30)
    messages = [r.getMessage() for r in caplog.records]
    assert any("\\x1b]8;;http://evil" in m for m in messages)
    assert not any("\x1b" in m or "\x07" in m for m in messages)
