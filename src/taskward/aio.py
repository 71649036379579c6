"""In-process background tasks that never fail silently.

This module owns the helpers that replace a bare ``asyncio.create_task``:
:func:`safe_create_task`, :func:`fire_and_forget`, :func:`safe_gather`,
:func:`schedule_with_delay`, the :class:`TaskSupervisor` that keeps tasks alive and drains them
at shutdown, and the process-wide failure counters (exported to Prometheus as
``taskward_background_task_failures_total{task}`` when ``prometheus_client`` is installed).

A bare ``asyncio.create_task`` has two traps: the event loop keeps only a weak reference, so a
running task can be garbage-collected mid-flight, and an exception is only reported as "Task
exception was never retrieved", if ever. Here every failure is logged at ERROR with its
traceback, counted per task name and handed to an optional ``on_error`` callback; the task then
resolves to ``None``. Cancellation is not a failure: it propagates and is not counted.

The failure counters and the default supervisor are process-wide on purpose: background tasks
are spawned from request handlers that have no object to hang a registry on.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from taskward.observe.metrics import register_background_failures

__all__ = [
    "ErrorCallback",
    "TaskSupervisor",
    "background_tasks_report",
    "cancel_background_tasks",
    "drain_background_tasks",
    "fire_and_forget",
    "get_default_supervisor",
    "get_task_failure_counts",
    "get_total_failures",
    "reset_task_failure_counts",
    "safe_create_task",
    "safe_gather",
    "schedule_with_delay",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: Called with the exception of a failed task; may be sync or async (an awaitable is awaited).
ErrorCallback = Callable[[Exception], object]


# --- failure counters ------------------------------------------------------------------------


class _FailureCounts:
    """Failures per task name; locked because a metrics scrape reads them from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, int] = {}
        self._total = 0

    def record(self, name: str) -> tuple[int, int]:
        """Count one failure of ``name``; return (failures of that name, failures in total)."""
        with self._lock:
            count = self._by_name.get(name, 0) + 1
            self._by_name[name] = count
            self._total += 1
            return count, self._total

    def snapshot(self) -> dict[str, int]:
        """Return a copy of the counts, taken atomically."""
        with self._lock:
            return dict(self._by_name)

    def total(self) -> int:
        """Return the number of failures across all names."""
        with self._lock:
            return self._total

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._by_name.clear()
            self._total = 0


_failures = _FailureCounts()


def get_task_failure_counts() -> dict[str, int]:
    """Return a copy of the failure count of each task name (thread-safe)."""
    return _failures.snapshot()


def get_total_failures() -> int:
    """Return the number of background-task failures since start or the last reset."""
    return _failures.total()


def reset_task_failure_counts() -> None:
    """Reset every failure counter to zero (for tests; Prometheus sees a counter reset)."""
    _failures.reset()


# --- running one coroutine safely --------------------------------------------------------------


def _task_name(coro: Coroutine[Any, Any, Any], name: str | None) -> str:
    """Return ``name``, or the coroutine's ``__qualname__`` when no name was given."""
    if name is not None:
        return name
    return getattr(coro, "__qualname__", None) or type(coro).__qualname__


def _require_coroutine(coro: object) -> None:
    """Raise TypeError unless ``coro`` is a coroutine object (not a function, not a future)."""
    if not inspect.iscoroutine(coro):
        raise TypeError(f"expected a coroutine object (call the async function), got {coro!r}")


def _close_if_unstarted(coro: Coroutine[Any, Any, Any]) -> None:
    """Close a coroutine that never ran, so Python does not warn it "was never awaited"."""
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()


async def _report_failure(name: str, exc: Exception, on_error: ErrorCallback | None) -> None:
    """Count, log and hand to ``on_error`` the exception raised by the task ``name``."""
    task_failures, total = _failures.record(name)
    logger.error(
        "background task %r failed: %s: %s",
        name,
        type(exc).__qualname__,
        exc,
        exc_info=exc,
        extra={
            "task_name": name,
            "error_type": type(exc).__qualname__,
            "task_failures": task_failures,
            "total_failures": total,
        },
    )
    if on_error is None:
        return
    try:
        result = on_error(exc)
        if inspect.isawaitable(result):
            await result
    except Exception:
        # The callback is the user's error handler; its own failure must not escape the task.
        logger.exception(
            "on_error callback of background task %r raised", name, extra={"task_name": name}
        )


async def _guarded(
    coro: Coroutine[Any, Any, T], name: str, on_error: ErrorCallback | None, delay: float
) -> T | None:
    """Await ``coro`` after ``delay`` seconds; report an exception and return None instead."""
    try:
        if delay > 0:
            await asyncio.sleep(delay)
        return await coro
    except Exception as exc:
        await _report_failure(name, exc, on_error)
        return None


# --- supervisor ------------------------------------------------------------------------------


class TaskSupervisor:
    """Owner of a set of safe background tasks: keeps them alive, drains or cancels them.

    The event loop holds only weak references to tasks, so the supervisor keeps a strong one
    until each task is done. ``async with TaskSupervisor() as sup:`` drains on a clean exit
    (waiting at most ``drain_timeout``); if the block raises or is cancelled, the tasks are
    cancelled instead, as :class:`asyncio.TaskGroup` does, so shutdown never hangs on them.
    Failure counters are process-wide, not per supervisor.
    """

    def __init__(self, *, drain_timeout: float | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._drain_timeout = drain_timeout

    async def __aenter__(self) -> TaskSupervisor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.drain(self._drain_timeout)
        else:
            await self.cancel_all()

    def create_task(
        self,
        coro: Coroutine[Any, Any, T],
        name: str | None = None,
        on_error: ErrorCallback | None = None,
    ) -> asyncio.Task[T | None]:
        """Start ``coro`` as a safe task held by this supervisor (see :func:`safe_create_task`)."""
        return self._spawn(coro, name, on_error, delay=0.0)

    def schedule_with_delay(
        self,
        coro: Coroutine[Any, Any, T],
        delay_seconds: float,
        name: str | None = None,
        on_error: ErrorCallback | None = None,
    ) -> asyncio.Task[T | None]:
        """Start ``coro`` after a delay as a safe task (see :func:`schedule_with_delay`)."""
        if not delay_seconds >= 0:  # also rejects NaN
            _close_if_unstarted(coro)
            raise ValueError(f"delay_seconds must be >= 0, got {delay_seconds}")
        return self._spawn(coro, name, on_error, delay=delay_seconds)

    def _spawn(
        self,
        coro: Coroutine[Any, Any, T],
        name: str | None,
        on_error: ErrorCallback | None,
        delay: float,
    ) -> asyncio.Task[T | None]:
        _require_coroutine(coro)
        task_name = _task_name(coro, name)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()  # it can never run; closing avoids a second, confusing warning
            raise RuntimeError(
                f"cannot start background task {task_name!r}: no running loop"
            ) from None
        task = loop.create_task(_guarded(coro, task_name, on_error, delay), name=task_name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never starts `coro`; close it quietly.
        task.add_done_callback(lambda _: _close_if_unstarted(coro))
        return task

    @property
    def in_flight(self) -> int:
        """Number of tasks started by this supervisor that are not done yet."""
        return len(self.tasks)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """Snapshot of the tasks that are not done yet."""
        return frozenset(t for t in list(self._tasks) if not t.done())

    def _waitable(self) -> set[asyncio.Task[Any]]:
        """Pending tasks of the running loop, minus the caller (waiting on itself would hang)."""
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        return {t for t in self.tasks if t is not current and t.get_loop() is loop}

    # ASYNC109 is silenced: on timeout drain cancels the stragglers and returns False, which
    # a caller's asyncio.timeout() (it raises, and cancels drain itself) cannot express.
    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for every task, including ones spawned meanwhile; True if all finished.

        After ``timeout`` seconds the remaining tasks are cancelled and awaited, and the result
        is False. ``None`` waits for ever. A task that swallows cancellation keeps it waiting.
        """
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while pending := self._waitable():
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            _, not_done = await asyncio.wait(pending, timeout=remaining)
            if not_done:  # asyncio.wait returned early: the deadline passed
                await self.cancel_all()
                return False
        return True

    async def cancel_all(self) -> None:
        """Cancel every task (including ones spawned meanwhile) and wait until they are done."""
        while pending := self._waitable():
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)


_default_supervisor = TaskSupervisor()


def get_default_supervisor() -> TaskSupervisor:
    """Return the process-wide supervisor behind the module-level functions."""
    return _default_supervisor


def background_tasks_report(supervisor: TaskSupervisor | None = None) -> dict[str, Any]:
    """Return the ``/health/tasks`` payload: failures by task name and in-flight tasks.

    ``total_failures`` is summed from the same snapshot as ``failures_by_task``, so the two
    always agree even while other threads record failures.
    """
    counts = get_task_failure_counts()
    tasks = supervisor if supervisor is not None else _default_supervisor
    return {
        "total_failures": sum(counts.values()),
        "failures_by_task": counts,
        "tasks_with_failures": len(counts),
        "in_flight": tasks.in_flight,
    }


# --- module-level API ------------------------------------------------------------------------


def safe_create_task(
    coro: Coroutine[Any, Any, T],
    name: str | None = None,
    on_error: ErrorCallback | None = None,
) -> asyncio.Task[T | None]:
    """Start ``coro`` as a background task that logs, counts and survives its failures.

    On an exception the task logs it at ERROR with the traceback (``extra``: ``task_name``,
    ``error_type``, ``task_failures``, ``total_failures``), counts it under ``name``, calls
    ``on_error(exc)`` (sync or async; its own errors are logged, never raised) and resolves to
    ``None``. Cancellation propagates and is not counted. ``name`` defaults to the coroutine's
    ``__qualname__`` and is also the task's name. The default supervisor holds a strong
    reference until the task is done, so it cannot be garbage-collected mid-flight.
    """
    return _default_supervisor.create_task(coro, name, on_error)


def schedule_with_delay(
    coro: Coroutine[Any, Any, T],
    delay_seconds: float,
    name: str | None = None,
    on_error: ErrorCallback | None = None,
) -> asyncio.Task[T | None]:
    """Start ``coro`` after ``delay_seconds`` as a safe task (see :func:`safe_create_task`).

    Cancelling the returned task before the delay ends closes ``coro`` without running it.
    A negative delay raises ValueError (and closes ``coro``).
    """
    return _default_supervisor.schedule_with_delay(coro, delay_seconds, name, on_error)


async def drain_background_tasks(timeout: float | None = None) -> bool:
    """Wait for the default supervisor's tasks (e.g. in a FastAPI lifespan); True if all ended.

    See :meth:`TaskSupervisor.drain`: after ``timeout`` the stragglers are cancelled.
    """
    return await _default_supervisor.drain(timeout)


async def cancel_background_tasks() -> None:
    """Cancel the default supervisor's tasks and wait until they are done."""
    await _default_supervisor.cancel_all()


# --- decorator -------------------------------------------------------------------------------


def _starter(
    func: Callable[P, Coroutine[Any, Any, T]], name: str | None, on_error: ErrorCallback | None
) -> Callable[P, asyncio.Task[T | None]]:
    """Wrap an async function so that calling it starts a safe task and returns it."""
    if not inspect.iscoroutinefunction(func):
        raise TypeError(f"fire_and_forget needs an async def function, got {func!r}")
    task_name = name or getattr(func, "__qualname__", None) or repr(func)

    @functools.wraps(func)
    def start(*args: P.args, **kwargs: P.kwargs) -> asyncio.Task[T | None]:
        return safe_create_task(func(*args, **kwargs), name=task_name, on_error=on_error)

    return start


@overload
def fire_and_forget(
    name: Callable[P, Coroutine[Any, Any, T]], /
) -> Callable[P, asyncio.Task[T | None]]: ...


@overload
def fire_and_forget(
    name: str | None = None, *, on_error: ErrorCallback | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, asyncio.Task[T | None]]]: ...


def fire_and_forget(
    name: str | Callable[..., Coroutine[Any, Any, Any]] | None = None,
    *,
    on_error: ErrorCallback | None = None,
) -> Any:
    """Make calling an async function start it as a safe background task (a decorator).

    Use bare (``@fire_and_forget``) or with options (``@fire_and_forget(name="emails.send")``).
    The decorated function returns the :class:`asyncio.Task`; its failures are handled as in
    :func:`safe_create_task`. ``name`` defaults to the function's ``__qualname__``. Decorating
    a function that is not ``async def`` raises TypeError.
    """
    if callable(name):
        return _starter(name, None, on_error)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"fire_and_forget name must be a str, got {name!r}")

    def decorator(
        func: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, asyncio.Task[T | None]]:
        return _starter(func, name, on_error)

    return decorator


# --- gather ----------------------------------------------------------------------------------


async def _capture(coro: Coroutine[Any, Any, T], name: str) -> tuple[T | None, Exception | None]:
    """Await ``coro``; return (result, None), or (None, exc) after reporting the failure."""
    try:
        return await coro, None
    except Exception as exc:
        await _report_failure(name, exc, None)
        return None, exc


def _require_coroutines(coros: tuple[Coroutine[Any, Any, Any], ...]) -> None:
    """Raise TypeError if any item is not a coroutine, closing the others (they will not run)."""
    if all(inspect.iscoroutine(c) for c in coros):
        return
    for coro in coros:
        if inspect.iscoroutine(coro):
            coro.close()
    for coro in coros:
        _require_coroutine(coro)


async def safe_gather(
    *coros: Coroutine[Any, Any, T], return_exceptions: bool = True
) -> list[T | None]:
    """Await coroutines concurrently; a failure is logged and counted and stops no other.

    Results keep the order of ``coros``; a failed position holds ``None``. Unlike
    :func:`asyncio.gather`, exceptions are never returned as values: ``return_exceptions``
    only decides what happens after *all* coroutines have finished. With True (default) the
    list is returned; with False the first failure in argument order is re-raised (every failure
    has been logged and counted already). Each failure is counted under its coroutine's
    ``__qualname__``. Cancelling ``safe_gather`` cancels every coroutine.
    """
    _require_coroutines(coros)
    loop = asyncio.get_running_loop()
    try:
        names = [_task_name(c, None) for c in coros]
        tasks = [
            loop.create_task(_capture(c, n), name=n) for c, n in zip(coros, names, strict=True)
        ]
        outcomes = await asyncio.gather(*tasks)
    finally:
        # If we were cancelled before a child took its first step, its coroutine never ran.
        for coro in coros:
            _close_if_unstarted(coro)
    if not return_exceptions:
        first = next((exc for _, exc in outcomes if exc is not None), None)
        if first is not None:
            raise first
    return [result for result, _ in outcomes]


# Export the counters when prometheus_client is installed; a no-op (False) otherwise.
register_background_failures(get_task_failure_counts)
