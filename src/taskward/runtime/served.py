"""The queues a worker serves against the queues of the app's tasks: its start-up log lines.

A task's jobs go to the task's queue (``@task(queue=…)``, else the default queue). A worker
started without ``-q`` serves the default queue only, so the jobs of a task on ``emails``
wait forever without a word: the worker says at start which tasks it knows on which queues,
and warns about the queues of registered tasks that it does not serve.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from taskward.tasks import Task

__all__ = ["log_served_queues", "tasks_by_queue"]

logger = logging.getLogger("taskward.worker")
SHOWN_PER_QUEUE = 10  # task names listed per queue; the rest are counted


def tasks_by_queue(tasks: Iterable[Task[Any, Any]], default_queue: str) -> dict[str, list[str]]:
    """Task names by the queue their jobs go to unless an enqueue says otherwise, sorted."""
    found: dict[str, list[str]] = {}
    for task in tasks:
        found.setdefault(task.options.queue or default_queue, []).append(task.name)
    return {queue: sorted(names) for queue, names in sorted(found.items())}


def log_served_queues(
    worker_id: str, served: Mapping[str, int], by_queue: Mapping[str, Sequence[str]]
) -> None:
    """Log the registered tasks by queue (INFO), and WARN of each queue not served."""
    if not by_queue:
        return
    logger.info(
        "worker %s knows %d registered task(s): %s",
        worker_id,
        sum(len(names) for names in by_queue.values()),
        "; ".join(f"{queue}: {_names(names)}" for queue, names in by_queue.items()),
    )
    for queue, names in by_queue.items():
        if queue not in served:
            logger.warning(
                "worker %s does not serve queue %r, where the jobs of %s go: they wait for a "
                "worker of that queue (taskward worker -q %s); this one serves %s",
                worker_id,
                queue,
                _names(names),
                queue,
                ", ".join(served),
            )


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN_PER_QUEUE])
    more = len(names) - SHOWN_PER_QUEUE
    return f"{shown} and {more} more" if more > 0 else shown
