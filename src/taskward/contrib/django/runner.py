"""What a taskward worker runs for a Django task: Django's signals, context and connections.

Each Django ``Task`` is registered with taskward as a small function built here. It builds the
``TaskResult`` of the running attempt from the job (the same mapping as ``get_result``), sends
``task_started``, hands a ``TaskContext`` to a task declared with ``takes_context=True``, and
sends ``task_finished`` with the status ``get_result`` will report next: SUCCESSFUL, FAILED
when no attempt is left, or READY when taskward will retry. A sync task closes the thread's
stale database connections before and after it runs, as Django's request cycle does around a
request; an async task does the same in the thread where Django's async ORM runs its queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from taskward.contrib.django.compat import (
    AnyTask,
    TaskContext,
    TaskError,
    TaskResultStatus,
    normalize_json,
    set_field,
    task_finished,
    task_started,
)
from taskward.contrib.django.results import TaskExit, task_as_enqueued, task_result
from taskward.errors import Discard, JobSignal, Snooze
from taskward.runtime.context import JobContext

__all__ = ["TaskExit", "make_runner"]


async def _close_old_connections_async() -> None:
    """Close stale connections of the thread where Django's async ORM runs its queries.

    As Django's ASGI handler does around a request. Skipped when the worker itself runs in
    that thread (``sync_to_async(call_command)(…)``), where asgiref cannot hop to it.
    """
    from asgiref.sync import sync_to_async
    from django.db import close_old_connections

    with contextlib.suppress(RuntimeError):
        await sync_to_async(close_old_connections)()


def make_runner(task: AnyTask, *, backend: str, sender: type) -> Callable[..., Any]:
    """The function a taskward worker calls for jobs of ``task`` (async if ``task`` is)."""
    run = _Run(task, backend=backend, sender=sender)
    if inspect.iscoroutinefunction(task.func):

        async def run_async(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
            await _close_old_connections_async()
            try:
                call_args, result = run.start(ctx, args)
                try:
                    value = await task.func(*call_args, **kwargs)
                except BaseException as exc:
                    raising = run.failed(ctx, result, exc)
                    if raising is exc:
                        raise
                    raise raising from exc
                return run.returned(ctx, result, value)
            finally:
                await _close_old_connections_async()

        runner: Callable[..., Any] = run_async
    else:

        def run_sync(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
            from django.db import close_old_connections

            close_old_connections()
            try:
                call_args, result = run.start(ctx, args)
                try:
                    value = task.func(*call_args, **kwargs)
                except BaseException as exc:
                    raising = run.failed(ctx, result, exc)
                    if raising is exc:
                        raise
                    raise raising from exc
                return run.returned(ctx, result, value)
            finally:
                close_old_connections()

        runner = run_sync
    runner.__name__ = getattr(task.func, "__name__", "task")
    runner.__qualname__ = getattr(task.func, "__qualname__", runner.__name__)
    runner.__module__ = getattr(task.func, "__module__", __name__)
    runner.__doc__ = task.func.__doc__
    return runner


class _Run:
    """The signal-sending half of a runner, shared by its sync and async forms."""

    def __init__(self, task: AnyTask, *, backend: str, sender: type) -> None:
        self.task = task
        self.backend = backend
        self.sender = sender

    def start(self, ctx: JobContext, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
        """The arguments to call the function with, and the attempt's result (signalled).

        The result is ``get_result``'s for the job: the task with the options it was enqueued
        with (queue, priority, ``run_after``, alias).
        """
        task = task_as_enqueued(self.task, ctx.job, self.backend)
        result = task_result(task, ctx.job, backend=self.backend)
        set_field(result, "status", TaskResultStatus.RUNNING)
        task_started.send(sender=self.sender, task_result=result)
        if self.task.takes_context:
            return (TaskContext(task_result=result), *args), result
        return args, result

    def returned(self, ctx: JobContext, result: Any, value: Any) -> Any:
        """The return value as stored (JSON, as Django normalises it); ``task_finished``.

        A value that JSON cannot hold discards the job: the task did its work, and running it
        again would do it twice.
        """
        try:
            value = normalize_json(value)
        except (TypeError, ValueError) as exc:
            problem = Discard(f"the task's return value cannot be stored as JSON: {exc}")
            raise self.failed(ctx, result, problem) from exc
        if not ctx.timed_out:
            self.succeeded(result, value)
        return value

    def succeeded(self, result: Any, value: Any) -> None:
        """Record the return value and send ``task_finished``."""
        set_field(result, "_return_value", value)
        set_field(result, "finished_at", datetime.now(UTC))
        set_field(result, "status", TaskResultStatus.SUCCESSFUL)
        task_finished.send(sender=self.sender, task_result=result)

    def failed(self, ctx: JobContext, result: Any, exc: BaseException) -> BaseException:
        """Record the error, send ``task_finished``; return what the job should raise.

        ``task_finished`` says READY when taskward will retry. The job raises ``exc``, or for
        a ``SystemExit`` a ``TaskExit`` carrying it: a task's exit fails the task, as in
        Django's own backends, and never stops the worker.
        """
        if isinstance(exc, Snooze):  # rescheduled, not failed (RateLimited is one too)
            return exc
        if ctx.timed_out:  # the worker already recorded the timeout as this attempt's end
            return exc
        if isinstance(exc, asyncio.CancelledError) and not ctx.cancelled:
            return exc  # the worker is stopping: the job goes back, nothing finished
        error_type = type(exc)
        result.errors.append(
            TaskError(
                exception_class_path=f"{error_type.__module__}.{error_type.__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        # Cancel and Discard end the job at once, as an operator's cancel; other errors when
        # no attempt is left.
        final = (
            isinstance(exc, JobSignal | asyncio.CancelledError)
            or ctx.job.attempt >= ctx.job.max_attempts
        )
        set_field(result, "status", TaskResultStatus.FAILED if final else TaskResultStatus.READY)
        set_field(result, "finished_at", datetime.now(UTC) if final else None)
        task_finished.send(sender=self.sender, task_result=result)
        if isinstance(exc, SystemExit):
            return TaskExit(f"the task raised SystemExit({exc.code!r})")
        return exc
