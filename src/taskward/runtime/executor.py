"""Run one job and turn whatever happened into exactly one Outcome, in named steps.

resolve the task → build the call → apply the timeout → call (async on the loop, sync in a
thread) → classify the return or the exception. Nothing here writes to a backend.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from taskward.errors import (
    Cancel,
    Discard,
    NotSerializable,
    RateLimited,
    Snooze,
    TaskwardError,
)
from taskward.jobs import Job
from taskward.runtime.context import JobContext
from taskward.serialize import encode_result, stored_payload_problem
from taskward.states import Cancelled, Completed, Discarded, Failed, Outcome, Snoozed
from taskward.tasks import Task

P = ParamSpec("P")
T = TypeVar("T")


class JobTimeout(TimeoutError):
    """The job ran past its timeout."""


class JobThread(Executor):
    """The thread pool as one job sees it: remembers the job's thread, which outlives a cancel.

    Cancelling a sync job's task only abandons the await; the function runs on in its thread.
    The worker asks :attr:`running` before handing an interrupted job back to the queue, so
    that the job never runs twice at once.
    """

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.future: Future[Any] | None = None

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn`` on the pool and remember its future."""
        future = self.pool.submit(fn, *args, **kwargs)
        self.future = future
        return future

    @property
    def running(self) -> bool:
        """True while the job's function is still executing in its thread."""
        return self.future is not None and self.future.running()


async def execute(
    job: Job,
    task: Task[Any, Any] | None,
    ctx: JobContext,
    *,
    default_timeout: float | None,
    threads: Executor | None = None,
) -> Outcome:
    """Run ``job`` with ``task`` and return its outcome; never raises (but for cancellation)."""
    if task is None:
        # The name came from the store: nothing is imported for it, and retrying cannot help
        # until the code is deployed, so it is a dead letter now (an operator retries it then).
        return Failed(kind="UnknownTask", message=unknown_task_message(job.task), retry=False)
    problem = stored_payload_problem(job.args, job.kwargs)
    if problem is not None:  # not what taskward wrote: no attempt could ever run it
        return Discarded(reason=problem)
    timeout = job.timeout if job.timeout is not None else task.options.timeout
    timeout = timeout if timeout is not None else default_timeout
    try:
        result = await _call(job, task, ctx, timeout, threads)
    except asyncio.CancelledError:
        if ctx.cancelled:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # the cancellation became this job's outcome
            return Cancelled(reason="cancelled by an operator while running")
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return classify(exc)
    try:
        return Completed(result=encode_result(result))
    except NotSerializable as exc:
        return Failed(kind="NotSerializable", message=f"the job's return value: {exc}")


def unknown_task_message(name: str) -> str:
    """Why a job whose task is not registered in this worker failed, and what to do."""
    return (
        f"task {name!r} is not registered in this worker (nothing was imported for it): "
        "register it with @task or declare its module in task_modules, then retry the job"
    )


async def _call(
    job: Job,
    task: Task[Any, Any],
    ctx: JobContext,
    timeout: float | None,
    threads: Executor | None,
) -> Any:
    args = (ctx, *job.args) if task.takes_context else tuple(job.args)
    if task.is_async:
        awaitable = task.fn(*args, **job.kwargs)
    else:
        loop = asyncio.get_running_loop()
        # A sync job runs in a thread; copy the context so contextvars (e.g. tracing) follow it.
        call: Callable[[], Any] = functools.partial(
            contextvars.copy_context().run, task.fn, *args, **job.kwargs
        )
        awaitable = loop.run_in_executor(threads, call)
    if timeout is None:
        return await awaitable
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError:
        # A sync job's thread cannot be killed: it runs on, but its outcome is the timeout.
        ctx.timed_out = True
        raise JobTimeout(f"job {job.id} timed out after {timeout:g}s") from None


def classify(exc: BaseException) -> Outcome:
    """Turn an exception raised by a job into its outcome."""
    match exc:
        case RateLimited(seconds=seconds, whole_queue=whole_queue):
            return Snoozed(seconds=seconds, hold_queue=True, whole_queue=whole_queue)
        case Snooze(seconds=seconds):
            return Snoozed(seconds=seconds)
        case Cancel(reason=reason):
            return Cancelled(reason=reason)
        case Discard(reason=reason):
            return Discarded(reason=reason)
    kind = "Timeout" if isinstance(exc, JobTimeout) else type(exc).__name__
    message = str(exc) or repr(exc)
    if isinstance(exc, TaskwardError):
        message = f"{type(exc).__name__}: {message}"
    tb = "".join(traceback.format_exception(exc))
    return Failed(kind=kind, message=message, traceback=tb)
