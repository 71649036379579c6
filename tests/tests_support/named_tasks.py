"""A task module whose task has a custom name: a worker that declares it knows it by that name."""

from __future__ import annotations

from taskward import TaskManager

elsewhere = TaskManager("memory://")


@elsewhere.task(name="reports.nightly")
def nightly(day: str) -> str:
    """Return the report's title."""
    return f"report of {day}"
