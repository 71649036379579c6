"""A FastAPI app that runs its durable jobs itself: a worker inside the web process.

For a small deployment, one process to run: ``taskward_lifespan`` opens the manager at
start-up, runs a worker of the ``emails`` queue beside the app, and at shutdown stops the
worker gracefully (running jobs finish), drains the ``taskward.aio`` background tasks and
closes the manager. Bigger deployments drop ``worker=`` and run ``taskward worker`` processes.

    TASKWARD_URL=sqlite:///signups.db uvicorn examples.fastapi_worker_app:app
    curl -X POST localhost:8000/signups/42          # 202 {"job_id": 1, "state": "pending"}
    curl localhost:8000/jobs/1                      # {"state": "completed", "result": ...}

Importing this module starts nothing, so tests can import it and drive ``app``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from fastapi import FastAPI, HTTPException

from taskward import JobNotFound, TaskManager
from taskward.aio import safe_create_task
from taskward.contrib.fastapi import taskward_lifespan

tw = TaskManager(os.environ.get("TASKWARD_URL", "sqlite:///signups.db"))

#: Signups the analytics service was told about (a stand-in, so the example can be tested).
signups_counted: list[int] = []


@tw.task(name="signups.send_welcome", queue="emails", max_attempts=3)
async def send_welcome(user_id: int) -> str:
    """Pretend to send the welcome email of ``user_id`` (a real app would call its mailer)."""
    await asyncio.sleep(0)  # the mailer's round trip
    return f"welcome email sent to user {user_id}"


async def count_signup(user_id: int) -> None:
    """Tell the analytics service about a signup; it refuses user 13 (to show a failure)."""
    await asyncio.sleep(0.01)  # the service's round trip
    if user_id == 13:
        raise ConnectionError("analytics service refused the connection")
    signups_counted.append(user_id)


app = FastAPI(
    title="taskward worker-in-app example",
    lifespan=taskward_lifespan(tw, worker={"emails": 5}, drain_timeout=10),
)


@app.post("/signups/{user_id}", status_code=202)
async def signup(user_id: int) -> dict[str, Any]:
    """Sign a user up: a durable job sends the email, a background task counts the signup."""
    job = await send_welcome.enqueue(user_id)
    # Not worth a durable job: if it fails it is logged and counted, and shutdown drains it.
    safe_create_task(count_signup(user_id), name="analytics.signup")
    return {"job_id": job.id, "state": job.state.value}


@app.get("/jobs/{job_id}")
async def job_state(job_id: int) -> dict[str, Any]:
    """The job's state and, once it completed, its result."""
    try:
        job = await tw.get_task_status(job_id)
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return {"job_id": job.id, "state": job.state.value, "result": job.result}


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app)
