"""Translation between taskward's jobs and Django's ``TaskResult``: states, priorities, errors.

Pure functions of a stored :class:`~taskward.Job`: the backend, the worker's runner and the
tests use the same mapping, so ``get_result`` and the ``TaskContext`` a running task receives
always agree.
"""

from __future__ import annotations

import builtins
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from taskward import errors
from taskward.contrib.django.compat import (
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    AnyTask,
    InvalidTask,
    TaskError,
    TaskResult,
    TaskResultStatus,
    set_field,
)
from taskward.jobs import MAX_PRIORITY, MIN_PRIORITY, ErrorRecord, Job, JobState

__all__ = [
    "PRIORITY_META_KEY",
    "RUN_AFTER_META_KEY",
    "TaskExit",
    "error_class_path",
    "job_priority",
    "replace_unchecked",
    "status_of",
    "task_as_enqueued",
    "task_result",
]

PRIORITY_META_KEY = "django.priority"
"""Where a job keeps the priority Django gave it (taskward's 0-9 scale cannot hold 201
values, and ``get_result`` hands the original back)."""

RUN_AFTER_META_KEY = "django.run_after"
"""The ``run_after`` a job was enqueued with: an ISO time, or the seconds of a ``timedelta``."""

_STATUS = {
    JobState.BLOCKED: TaskResultStatus.READY,
    JobState.SCHEDULED: TaskResultStatus.READY,
    JobState.PENDING: TaskResultStatus.READY,
    JobState.RETRYABLE: TaskResultStatus.READY,
    JobState.RUNNING: TaskResultStatus.RUNNING,
    JobState.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobState.FAILED: TaskResultStatus.FAILED,
    JobState.DISCARDED: TaskResultStatus.FAILED,
    JobState.CANCELLED: TaskResultStatus.FAILED,
}


def status_of(state: JobState) -> Any:
    """Django's status for a job state: waiting ones are READY, every dead end is FAILED."""
    return _STATUS[state]


def job_priority(priority: int) -> int:
    """Map Django's priority (-100…100, higher first, default 0) onto taskward's (0…9, 0 first).

    Bands of 20: 100 → 0, 80…99 → 1, …, 0…19 → 5 (taskward's default, as 0 is Django's),
    -1…-20 → 6, …, below -60 → 9. Order is kept between bands; within a band jobs run in
    the order they became due.
    """
    step = (TASK_MAX_PRIORITY - TASK_MIN_PRIORITY) // 10  # 20
    mapped = (MIN_PRIORITY + MAX_PRIORITY + 1) // 2 - int(priority) // step
    return max(MIN_PRIORITY, min(MAX_PRIORITY, mapped))


def finished_at(job: Job) -> datetime | None:
    """When the job reached the end Django reports, if it did."""
    match job.state:
        case JobState.COMPLETED:
            return job.completed_at
        case JobState.CANCELLED:
            return job.cancelled_at
        case JobState.FAILED | JobState.DISCARDED:
            ended = job.discarded_at or (job.errors[-1].at if job.errors else None)
            return ended or job.attempted_at
    return None


class TaskExit(Exception):
    """A task raised ``SystemExit``: its job fails with this error; the worker runs on."""


_TASK_EXIT = f"{TaskExit.__module__}.{TaskExit.__qualname__}"
# Ends taskward records without a traceback, by the exception that chose them: a dotted path
# Django's TaskError.exception_class can import.
_KINDS = {
    "Discarded": "taskward.errors.Discard",
    "Cancelled": "taskward.errors.Cancel",
    "Timeout": "taskward.runtime.executor.JobTimeout",
    "DependencyFailed": "taskward.errors.Cancel",
}


def error_class_path(record: ErrorRecord) -> str:
    """The dotted path of the exception an attempt raised, as Django's ``TaskError`` wants.

    taskward stores the class name; the traceback's last line names the class with its module
    (``format_exception`` leaves out ``builtins`` and ``__main__``).
    """
    if record.traceback:
        last = record.traceback.rstrip().rsplit("\n", 1)[-1]
        name = last.split(":", 1)[0].strip()
        if name == _TASK_EXIT:
            return "builtins.SystemExit"  # what the task raised (see TaskExit)
        if name and " " not in name:
            if "." in name:
                return name
            if isinstance(getattr(builtins, name, None), type):
                return f"builtins.{name}"
            return name
    if isinstance(getattr(errors, record.kind, None), type):
        return f"taskward.errors.{record.kind}"
    return _KINDS.get(record.kind, "builtins.Exception")


def task_as_enqueued(task: AnyTask, job: Job, alias: str) -> AnyTask:
    """``task`` (as decorated) with the options ``job`` was enqueued with.

    Its queue, the priority Django gave, its ``run_after`` and the alias: what
    ``task.using(...)`` made at enqueue. As decorated when the job's options no longer
    validate (a queue that left ``QUEUES`` since).
    """
    stored = job.meta.get(PRIORITY_META_KEY, task.priority)
    try:
        return _with_run_after(
            task.using(queue_name=job.queue, priority=stored, backend=alias),
            job.meta.get(RUN_AFTER_META_KEY),
        )
    except (InvalidTask, TypeError, ValueError, LookupError, ImproperlyConfigured):
        return task


def _with_run_after(task: AnyTask, stored: Any) -> AnyTask:
    """``task`` with the ``run_after`` it was enqueued with (a time, or seconds of a delay)."""
    if isinstance(stored, str):
        return task.using(run_after=datetime.fromisoformat(stored))
    if isinstance(stored, int | float) and not isinstance(stored, bool):
        return replace_unchecked(task, run_after=timedelta(seconds=stored))
    return task


def replace_unchecked(task: AnyTask, **changes: Any) -> AnyTask:
    """A copy of ``task`` with ``changes``, built without Django's validation (no recursion)."""
    values = {f.name: getattr(task, f.name) for f in fields(task) if f.init}
    values.update(changes)
    copy = object.__new__(type(task))
    for name, value in values.items():
        object.__setattr__(copy, name, value)
    return copy


def task_result(task: AnyTask, job: Job, *, backend: str) -> Any:
    """The ``TaskResult`` Django's API hands out for ``job``, a run of ``task``."""
    attempted = job.attempted_at if job.attempt else None
    result: Any = TaskResult(
        task=task,
        id=str(job.id),
        status=status_of(job.state),
        enqueued_at=job.inserted_at,
        started_at=attempted,
        finished_at=finished_at(job),
        last_attempted_at=attempted,
        args=list(job.args),
        kwargs=dict(job.kwargs),
        backend=backend,
        errors=[
            TaskError(exception_class_path=error_class_path(e), traceback=e.traceback or "")
            for e in job.errors
        ],
        # taskward keeps the latest attempt's worker only; Django counts attempts by this
        # list, so each attempt is represented (by that worker).
        worker_ids=[job.attempted_by or ""] * job.attempt,
    )
    if job.state is JobState.COMPLETED:
        set_field(result, "_return_value", job.result)
    return result
