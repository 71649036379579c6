"""GET /api/jobs/{id}/wait: the long poll until a job ends (200), or its timeout (202)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from taskward import JobState, TaskManager


async def test_answers_200_once_the_job_completes(tw: TaskManager, api: httpx.AsyncClient) -> None:
    @tw.task(name="web.double")
    def double(n: int) -> int:
        return 2 * n

    job = await double.enqueue(21)
    request = asyncio.ensure_future(api.get(f"/api/jobs/{job.id}/wait", params={"timeout": 20}))
    await asyncio.sleep(0.2)
    assert not request.done()  # held open while the job waits
    await tw.drain()
    response = await asyncio.wait_for(request, timeout=20)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == job.id
    assert body["state"] == "completed"
    assert body["result"] == 42


async def test_answers_200_with_the_error_of_a_failed_job(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    @tw.task(name="web.broken", max_attempts=1)
    def broken(password: str) -> None:
        raise RuntimeError("the disk is full")

    job = await broken.enqueue("hunter2")
    await tw.drain()
    response = await api.get(f"/api/jobs/{job.id}/wait", params={"timeout": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "failed"
    assert body["errors"][-1]["kind"] == "RuntimeError"
    assert "the disk is full" in body["errors"][-1]["message"]


async def test_sensitive_arguments_stay_hidden(tw: TaskManager, api: httpx.AsyncClient) -> None:
    @tw.task(name="web.login", sensitive=("password",))
    def login(user: str, password: str) -> str:
        return user

    job = await login.enqueue("ada", password="hunter2")
    await tw.drain()
    response = await api.get(f"/api/jobs/{job.id}/wait", params={"timeout": 5})
    assert response.status_code == 200
    assert "hunter2" not in response.text
    assert response.json()["result"] == "ada"


async def test_answers_202_with_the_job_as_it_stands_at_the_timeout(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    @tw.task(name="web.later")
    def later() -> None:
        return None

    job = await later.enqueue()
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await api.get(f"/api/jobs/{job.id}/wait", params={"timeout": 0.3})
    assert loop.time() - started >= 0.25
    assert response.status_code == 202
    assert response.json()["state"] == "pending"
    stored = await tw.get_task_status(job.id)
    assert stored.state is JobState.PENDING
    assert stored.attempt == 0  # untouched by the wait


async def test_answers_404_for_a_missing_job(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/jobs/999999/wait", params={"timeout": 1})
    assert response.status_code == 404


@pytest.mark.parametrize("timeout", ["-1", "31", "nan", "soon"])
async def test_refuses_a_timeout_out_of_bounds(api: httpx.AsyncClient, timeout: str) -> None:
    response = await api.get("/api/jobs/1/wait", params={"timeout": timeout})
    assert response.status_code == 422
