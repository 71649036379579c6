"""``taskward.contrib.fastapi.taskward_lifespan`` and the two examples that use the manager.

The apps are driven through their lifespan, as a server does: a job enqueued by an endpoint
is run by the in-process worker, shutdown waits for a running job, then drains the
``taskward.aio`` background tasks and closes the manager. ``examples/script.py`` runs as a
subprocess, as its users run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from taskward import InvalidOptions, JobState, TaskManager
from taskward.aio import get_task_failure_counts, reset_task_failure_counts, safe_create_task
from taskward.contrib.fastapi import taskward_lifespan
from tests_support.examples import EXAMPLES, loaded_example


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """examples/fastapi_worker_app.py, loaded fresh on a SQLite file of this test."""
    monkeypatch.setenv("TASKWARD_URL", f"sqlite:///{tmp_path}/app.db")
    with loaded_example("fastapi_worker_app.py") as module:
        yield module


@pytest.fixture(autouse=True)
def fresh_failure_counts() -> Iterator[None]:
    reset_task_failure_counts()
    yield
    reset_task_failure_counts()


def closes(tw: TaskManager) -> list[bool]:
    """Record each call of ``tw.close`` (still closing the manager)."""
    calls: list[bool] = []
    close = tw.close

    async def recorded() -> None:
        calls.append(True)
        await close()

    tw.close = recorded  # type: ignore[method-assign]
    return calls


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_example_app_runs_its_jobs_in_process(
    example: ModuleType, tmp_path: Path
) -> None:
    tw: TaskManager = example.tw
    completed = asyncio.Event()
    tw.on("job.completed", lambda event: completed.set())
    closed = closes(tw)
    app = example.app
    async with app.router.lifespan_context(app), client_for(app) as client:  # as a server does
        answer = await client.post("/signups/42")
        assert answer.status_code == 202
        job_id = answer.json()["job_id"]
        async with asyncio.timeout(30):
            await completed.wait()  # run by the worker inside the app
        assert (await client.get(f"/jobs/{job_id}")).json()["job_id"] == job_id
        assert (await client.get("/jobs/999")).status_code == 404
    assert closed == [True]
    assert example.signups_counted == [42]  # the background task was drained at shutdown
    # The worker wrote its outcomes before it stopped (they are batched while it runs).
    async with TaskManager(f"sqlite:///{tmp_path}/app.db") as again:
        job = await again.get_task_status(job_id)
        assert (job.state, job.result) == (JobState.COMPLETED, "welcome email sent to user 42")
        assert (await again.get_statistics())["workers"]["total"] == 0  # it deregistered


async def test_shutdown_lets_a_running_job_finish_then_closes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    tw = TaskManager(url, poll_interval=0.05)
    gate, started, app_ended = asyncio.Event(), asyncio.Event(), asyncio.Event()
    tw.on("job.started", lambda event: started.set())

    @tw.task(name="slow.report")
    async def report(n: int) -> int:
        await gate.wait()
        return n * 2

    @contextlib.asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello"}  # the app's state: passed on to the requests
        app_ended.set()

    app = FastAPI(lifespan=taskward_lifespan(tw, worker={"default": 2}, lifespan=own_lifespan))

    @app.post("/reports/{n}")
    async def make(n: int) -> dict[str, Any]:
        return {"job_id": (await report.enqueue(n)).id}

    closed = closes(tw)
    lifespan = app.router.lifespan_context(app)
    assert await lifespan.__aenter__() == {"greeting": "hello"}  # the server keeps it
    async with client_for(app) as client:
        answer = (await client.post("/reports/21")).json()
    async with asyncio.timeout(30):
        await started.wait()

    shutdown = asyncio.create_task(lifespan.__aexit__(None, None, None))
    await asyncio.sleep(0.3)
    # The worker stops first and waits for its running job; the app's own resources, which
    # the job may use, are torn down only after it.
    assert not shutdown.done()
    assert not app_ended.is_set()
    assert (await tw.get_task_status(answer["job_id"])).state is JobState.RUNNING
    gate.set()
    async with asyncio.timeout(30):
        await shutdown
    assert app_ended.is_set()
    assert closed == [True]
    async with TaskManager(url) as again:
        job = await again.get_task_status(answer["job_id"])
        assert (job.state, job.result) == (JobState.COMPLETED, 42)
        assert (await again.get_statistics())["workers"]["total"] == 0


async def test_background_tasks_are_drained_and_their_failures_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With Starlette alone; no worker in this process (the default)."""
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")
    gate = asyncio.Event()

    async def notify() -> None:
        await gate.wait()
        raise ConnectionError("the notification service is down")

    async def fire(request: Request) -> JSONResponse:
        safe_create_task(notify(), name="test.notify")
        return JSONResponse({"fired": True})

    app = Starlette(routes=[Route("/fire", fire, methods=["POST"])], lifespan=taskward_lifespan(tw))
    closed = closes(tw)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    async with client_for(app) as client:
        assert (await client.post("/fire")).json() == {"fired": True}
    shutdown = asyncio.create_task(lifespan.__aexit__(None, None, None))
    assert not shutdown.done()  # the drain waits for the task
    with caplog.at_level(logging.ERROR, logger="taskward.aio"):
        gate.set()
        async with asyncio.timeout(30):
            await shutdown
    assert get_task_failure_counts() == {"test.notify": 1}
    assert any(
        "background task 'test.notify' failed: ConnectionError" in r.getMessage()
        for r in caplog.records
    )
    assert closed == [True]


async def test_a_straggler_is_cancelled_after_the_drain_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")
    never = asyncio.Event()
    app = Starlette(lifespan=taskward_lifespan(tw, drain_timeout=0.05))
    closed = closes(tw)
    with caplog.at_level(logging.WARNING, logger="taskward"):
        async with app.router.lifespan_context(app):
            straggler = safe_create_task(never.wait(), name="test.straggler")
    assert straggler.cancelled()
    assert "background tasks still running after 0.05s were cancelled" in caplog.text
    assert closed == [True]


async def test_bad_worker_queues_stop_the_app_from_starting(tmp_path: Path) -> None:
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")
    app = Starlette(lifespan=taskward_lifespan(tw, worker={"bad queue!": 1}))
    closed = closes(tw)
    with pytest.raises(InvalidOptions, match="queue"):
        async with app.router.lifespan_context(app):
            pass
    assert closed == [True]  # opened at start-up, so closed again


def test_importing_the_helper_imports_no_framework() -> None:
    code = (
        "import sys; import taskward.contrib.fastapi; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_script_example_runs_and_prints_its_results(tmp_path: Path) -> None:
    env = {**os.environ, "TASKWARD_URL": f"sqlite:///{tmp_path}/script.db"}
    env.pop("TASKWARD_TASK_MODULES", None)  # the test suite's, not the script's
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "script.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "enqueued 3 jobs: 1, 2, 3",
        "refused: task 'script.count_words' takes (text), which cannot be called with 0 "
        "positional arguments and no keyword argument: missing a required argument: 'text'. "
        "Nothing was stored.",
        "ran 3 jobs: {'completed': 3}",
        "job 1: completed, 4 words in 'the quick brown fox'",
        "job 2: completed, 5 words in 'jumps over the lazy dog'",
        "job 3: completed, 5 words in 'durable jobs survive a crash'",
    ]
    assert done.stderr == ""
    assert (tmp_path / "script.db").exists()
