"""Plain functions used as tasks by import path, and a manager for CLI and subprocess tests."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from taskward import TaskManager

# A 1 s lease makes rescue tests quick; a test about claiming sets a longer one, since a
# worker stalled past its lease on a loaded machine is rightly rescued and run again.
manager = TaskManager(
    os.environ.get("TASKWARD_TEST_URL", "memory://"),
    poll_interval=0.05,
    lease_seconds=float(os.environ.get("TASKWARD_TEST_LEASE", "1")),
)


def add(a: int, b: int = 0) -> int:
    """Return a + b."""
    return a + b


def keep(*args: Any, **kwargs: Any) -> None:
    """Take any arguments and do nothing: for tests of what a store keeps, whatever the call.

    A producer refuses arguments its task cannot take, so a test storing arbitrary values
    needs a task that takes them all.
    """


@manager.task(name="support.record", max_attempts=5, backoff=0.1)
def record(n: int) -> int:
    """Append ``start n`` and ``done n`` to $TASKWARD_TEST_LOG (opened O_APPEND)."""
    log = Path(os.environ["TASKWARD_TEST_LOG"])
    with log.open("a") as f:
        f.write(f"start {n}\n")
    time.sleep(float(os.environ.get("TASKWARD_TEST_SLEEP", "0")))
    with log.open("a") as f:
        f.write(f"done {n}\n")
    return n


@manager.task(name="support.fail", max_attempts=1)
def fail() -> None:
    """Always fail."""
    raise RuntimeError("support.fail always fails")


async def loop_module() -> str:
    """The top-level module of the event loop this job runs on ("asyncio" or "uvloop")."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
