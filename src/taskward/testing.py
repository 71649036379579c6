"""Helpers for testing code that enqueues jobs (in the spirit of Oban.Testing).

Use a ``TaskManager("memory://")`` in tests, run jobs with ``await tw.drain()``, and check what
was enqueued with :func:`assert_enqueued` / :func:`refute_enqueued`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskward.building import TaskRef
from taskward.jobs import Job, JobState
from taskward.manager import TaskManager

__all__ = ["assert_enqueued", "enqueued_jobs", "refute_enqueued"]

_WAITING = [JobState.SCHEDULED, JobState.PENDING, JobState.RETRYABLE]


async def enqueued_jobs(
    manager: TaskManager,
    *,
    task: TaskRef | None = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
) -> list[Job]:
    """Return the waiting jobs (scheduled, pending, retryable) matching every given field."""
    page = await manager.list_tasks(state=_WAITING, task=task, queue=queue, per_page=1000)
    return [
        job
        for job in page.items
        if (args is None or job.args == list(args))
        and (kwargs is None or job.kwargs == dict(kwargs))
    ]


async def assert_enqueued(manager: TaskManager, **match: Any) -> Job:
    """Assert that exactly one waiting job matches; return it. See :func:`enqueued_jobs`."""
    jobs = await enqueued_jobs(manager, **match)
    if len(jobs) != 1:
        waiting = await manager.list_tasks(state=_WAITING, per_page=20)
        seen = [(j.task, j.args, j.kwargs, j.queue) for j in waiting.items]
        raise AssertionError(
            f"expected one job matching {match}, found {len(jobs)}; waiting: {seen}"
        )
    return jobs[0]


async def refute_enqueued(manager: TaskManager, **match: Any) -> None:
    """Assert that no waiting job matches."""
    jobs = await enqueued_jobs(manager, **match)
    if jobs:
        raise AssertionError(f"expected no job matching {match}, found {[j.id for j in jobs]}")
