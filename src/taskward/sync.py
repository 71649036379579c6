"""Blocking twins of the TaskManager's coroutines, driven through one loop thread (the portal).

``manager.sync.enqueue_task(...)`` runs ``manager.enqueue_task(...)`` on a private event loop
in a daemon thread and waits for it. One portal per manager: the backend's connections live on
that loop, so sync callers from many threads share them safely. Never a second implementation:
each twin is a one-line delegation, generated from the async method.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import CancelledError
from datetime import datetime
from typing import Any, Protocol, TypeVar

from taskward.errors import PortalClosed
from taskward.jobs import Job
from taskward.settings import Settings

T = TypeVar("T")
logger = logging.getLogger(__name__)

TWINS = (
    "open",
    "close",
    "enqueue_many",
    "schedule_recurring_task",
    "cancel_recurring_task",
    "pause_schedule",
    "resume_schedule",
    "list_recurring_tasks",
    "cron_history",
    "get_task_status",
    "explain",
    "list_tasks",
    "get_statistics",
    "health",
    "cancel_task",
    "retry_task",
    "retry_dead_letters",
    "delete_task",
    "cleanup_old_tasks",
    "rotate_encryption_keys",
    "pause_queue",
    "resume_queue",
    "configure_queue",
    "queue_limits",
    "hold_queue",
    "queue_flow",
    "partition_flow",
    "enqueue_workflow",
    "get_workflow",
    "cancel_workflow",
    "drain",
    "run_worker",
    "wait_for",
)


CANCEL_GRACE_SECONDS = 10.0
"""How long :meth:`Portal.stop` waits by default for cancelled calls to unwind."""


class Portal:
    """An event loop in a daemon thread that runs coroutines for sync callers."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._calls: set[asyncio.Task[Any]] = set()  # touched on the loop thread only
        self._pid = os.getpid()  # the process whose thread runs the loop

    def _ensure(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise PortalClosed(
                "manager.sync was shut down; no blocking call can run on it any more "
                "(make a new TaskManager)"
            )
        if self._loop is not None and self._pid != os.getpid():
            # A fork copies the loop but not its thread: a call would wait forever.
            raise PortalClosed(
                "this process was forked after the TaskManager's blocking calls started; "
                "make (or first use) the TaskManager in each process after forking"
            )
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="taskward-portal", daemon=True)
            thread.start()
            self._loop, self._thread, self._pid = loop, thread, os.getpid()
        return self._loop

    def call(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the portal loop and return its result (re-raising errors).

        Raises:
            PortalClosed: the portal was stopped before or while the call ran.
        """
        try:
            with self._lock:
                # Under the lock: stop() cannot close the loop between these two steps.
                loop = self._ensure()
                if _running_loop() is loop:
                    raise RuntimeError(
                        "a sync twin was called from the portal's own loop; await instead"
                    )
                future = asyncio.run_coroutine_threadsafe(self._run(awaitable), loop)
        except BaseException:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never started: close it so it does not warn
            raise
        try:
            return future.result()
        except CancelledError:
            if self._closed:
                raise PortalClosed("manager.sync was shut down while this call ran") from None
            raise

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` on the portal loop, without waiting for it (fire and forget).

        Raises:
            PortalClosed: the portal was stopped.
        """
        with self._lock:
            loop = self._ensure()
            loop.call_soon_threadsafe(fn, *args)

    async def _run(self, awaitable: Awaitable[T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await awaitable
        finally:
            self._calls.discard(task)

    def stop(
        self,
        last: Callable[[], Awaitable[None]] | None = None,
        *,
        grace: float = CANCEL_GRACE_SECONDS,
    ) -> None:
        """Cancel the calls in flight, run ``last`` (if given), stop the loop (idempotent).

        Callers blocked in :meth:`call` on other threads get :class:`PortalClosed` once their
        coroutine has unwound (a worker shuts down gracefully, a drain writes its outcomes),
        waiting up to ``grace`` seconds for them, so none blocks forever on a loop that stopped
        under it. Later calls are refused.
        """
        with self._lock:
            if self._loop is not None and _running_loop() is self._loop:
                raise RuntimeError("the portal cannot be stopped from its own loop")
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            if last is not None:
                # The loop never ran (a sync producer that only enqueued from its threads):
                # `last` still closes what they opened, on a loop of its own.
                closing = threading.Thread(
                    target=asyncio.run, args=(last(),), name="taskward-close"
                )
                closing.start()
                closing.join(grace + 5)
            return
        try:
            wind_down = asyncio.run_coroutine_threadsafe(self._cancel_calls(last, grace), loop)
            wind_down.result(grace + 5)  # `last` (closing the manager) gets 5 s of its own
        except TimeoutError:
            logger.warning("sync calls still running %ss after shutdown; stopping anyway", grace)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()

    async def _cancel_calls(self, last: Callable[[], Awaitable[None]] | None, grace: float) -> None:
        calls = set(self._calls)
        for task in calls:
            task.cancel()
        if calls:
            await asyncio.wait(calls, timeout=grace)
        if last is not None:
            await last()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Facade(Protocol):
    """What the twins need of the manager (a Protocol: this module never imports it).

    Besides these, each name in :data:`TWINS` is looked up on it as a coroutine function.
    """

    @property
    def settings(self) -> Settings:
        """The manager's configuration (its ``shutdown_timeout``)."""
        ...

    def enqueue_task_blocking(
        self,
        task: Any,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """Enqueue one job from this thread."""
        ...

    async def close(self) -> None:
        """Release the backend."""
        ...


class SyncTaskManager:
    """``manager.sync``: every coroutine of the manager as a blocking call."""

    def __init__(self, manager: Facade) -> None:
        self.manager = manager
        self.portal = Portal()
        for name in TWINS:
            setattr(self, name, self._twin(getattr(manager, name)))

    def _twin(self, method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
        @functools.wraps(method)
        def blocking(*args: Any, **kwargs: Any) -> T:
            return self.portal.call(method(*args, **kwargs))

        blocking.__doc__ = f"Blocking twin of ``TaskManager.{method.__name__}``."
        return blocking

    def enqueue_task(
        self,
        task: Any,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """Blocking twin of ``TaskManager.enqueue_task``, inserting from this thread.

        SQLite and PostgreSQL write from the calling thread (see
        :meth:`TaskManager.enqueue_task_blocking`); other backends go through the portal.
        """
        return self.manager.enqueue_task_blocking(
            task, args=args, kwargs=kwargs, connection=connection, **options
        )

    def schedule_task(
        self,
        task: Any,
        *,
        at: datetime | float,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Blocking twin of ``TaskManager.schedule_task``: a job to run at ``at``."""
        return self.enqueue_task(task, args=args, kwargs=kwargs, at=at, **options)

    def shutdown(self) -> None:
        """Cancel calls other threads have in flight, close the manager, stop the portal.

        Afterwards every blocking call raises :class:`~taskward.errors.PortalClosed`.
        """
        # A worker in flight gets its own shutdown_timeout to finish or release its jobs.
        grace = self.manager.settings.shutdown_timeout + CANCEL_GRACE_SECONDS
        self.portal.stop(last=self.manager.close, grace=grace)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"TaskManager has no coroutine {name!r} with a sync twin")
