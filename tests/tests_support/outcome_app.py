"""Tasks whose outcomes the wait_for tests await, run by a worker in another process."""

from __future__ import annotations

import os
import time

from taskward import TaskManager
from taskward.errors import Discard

manager = TaskManager(os.environ.get("TASKWARD_TEST_URL", "memory://"), poll_interval=0.05)


@manager.task(name="outcome.add")
def add(a: int, b: int = 0) -> int:
    """Return a + b."""
    return a + b


@manager.task(name="outcome.slow")
def slow(seconds: float, value: object = None) -> object:
    """Sleep, then return ``value``."""
    time.sleep(seconds)
    return value


@manager.task(name="outcome.fail", max_attempts=1)
def fail(message: str) -> None:
    """Fail for good (one attempt)."""
    raise ValueError(message)


@manager.task(name="outcome.discard")
def discard(reason: str) -> None:
    """Give up at once: a dead letter without retries."""
    raise Discard(reason)


@manager.task(name="outcome.flaky", max_attempts=3, backoff=0.1)
def flaky(marker: str) -> str:
    """Fail the first attempt (the job is retryable, not ended), succeed the next."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("tried")
        raise RuntimeError("first attempt fails")
    return "second time lucky"
