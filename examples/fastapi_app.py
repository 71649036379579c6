"""A FastAPI app that sends emails in the background: the bare ``create_task`` trap and the fix.

Run it with ``uvicorn examples.fastapi_app:app`` (from the repository root), then::

    curl -X POST localhost:8000/signup/before/13    # fails: nothing counted, maybe nothing logged
    curl -X POST localhost:8000/signup/after/13     # fails: logged with traceback, counted
    curl localhost:8000/health/tasks                # {"total_failures": 1, ...}

Importing this module starts nothing, so tests can import it and drive ``app``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from taskward.aio import drain_background_tasks, fire_and_forget, safe_create_task
from taskward.web import health_router

logger = logging.getLogger(__name__)

#: Emails "sent" so far (a stand-in for an SMTP server, so the example can be tested).
sent_emails: list[int] = []


async def send_welcome_email(user_id: int) -> None:
    """Pretend to talk to an SMTP server, which refuses user 13."""
    await asyncio.sleep(0.01)
    if user_id == 13:
        raise ConnectionError("SMTP server refused the connection")
    sent_emails.append(user_id)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Drain background tasks at shutdown: uvicorn waits for requests, not for their tasks."""
    yield
    if not await drain_background_tasks(timeout=10):
        logger.warning("background tasks still running after 10s were cancelled")


app = FastAPI(title="taskward example", lifespan=lifespan)
app.include_router(health_router)


# BEFORE: the loop keeps only a weak reference to this task, so it can be garbage-collected
# mid-flight, and its exception surfaces (if ever) as "Task exception was never retrieved"
# with no name, no counter and no alert. It is also simply dropped at shutdown.
@app.post("/signup/before/{user_id}", status_code=202)
async def signup_before(user_id: int) -> dict[str, int]:
    """Sign a user up and send the email with a bare create_task (don't do this)."""
    asyncio.create_task(send_welcome_email(user_id))  # noqa: RUF006 - the trap, on purpose
    return {"user_id": user_id}


# AFTER: the task is held until done, a failure is logged with its traceback and counted under
# "emails.welcome" (see /health/tasks and the Prometheus counter), and shutdown drains it.
@app.post("/signup/after/{user_id}", status_code=202)
async def signup_after(user_id: int) -> dict[str, int]:
    """Sign a user up and send the email as a safe background task."""
    safe_create_task(send_welcome_email(user_id), name="emails.welcome")
    return {"user_id": user_id}


# AFTER, as a decorator: calling the function starts it as a safe task and returns the Task.
@fire_and_forget(name="emails.welcome")
async def send_welcome_later(user_id: int) -> None:
    """Send the welcome email in the background."""
    await send_welcome_email(user_id)


@app.post("/signup/decorated/{user_id}", status_code=202)
async def signup_decorated(user_id: int) -> dict[str, int]:
    """Sign a user up and send the email through a fire_and_forget function."""
    send_welcome_later(user_id)
    return {"user_id": user_id}


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app)
