"""A manager with tasks that fail until their arguments are fixed (replay CLI and web tests)."""

from __future__ import annotations

import os

from taskward import TaskManager

manager = TaskManager(os.environ.get("TASKWARD_TEST_URL", "memory://"), poll_interval=0.05)


@manager.task(name="replay.divide", max_attempts=1)
def divide(a: float, b: float) -> float:
    """a / b: fails (ZeroDivisionError) for b == 0, until an operator fixes b."""
    return a / b


@manager.task(name="replay.send", max_attempts=1, sensitive=("token",))
def send(to: str, token: str, *, relay: str = "primary") -> str:
    """Fails (ConnectionError) on the primary relay, until replayed with another."""
    if relay == "primary":
        raise ConnectionError("primary relay down")
    return f"sent to {to} via {relay}"
