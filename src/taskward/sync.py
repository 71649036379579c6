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
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from taskward.manager import TaskManager

T = TypeVar("T")

TWINS = (
    "open",
    "close",
    "enqueue_task",
    "enqueue_many",
    "schedule_task",
    "schedule_recurring_task",
    "cancel_recurring_task",
    "list_recurring_tasks",
    "get_task_status",
    "list_tasks",
    "get_statistics",
    "cancel_task",
    "retry_task",
    "delete_task",
    "cleanup_old_tasks",
    "pause_queue",
    "resume_queue",
    "drain",
    "run_worker",
)


class Portal:
    """An event loop in a daemon thread that runs coroutines for sync callers."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="taskward-portal", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def call(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the portal loop and return its result (re-raising errors)."""
        loop = self._ensure()
        if _running_loop() is loop:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never started: close it so it does not warn
            raise RuntimeError("a sync twin was called from the portal's own loop; await instead")
        future: Future[T] = asyncio.run_coroutine_threadsafe(_as_coro(awaitable), loop)
        return future.result()

    def stop(self) -> None:
        """Stop the loop thread (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _as_coro(awaitable: Awaitable[T]) -> T:
    return await awaitable


class SyncTaskManager:
    """``manager.sync``: every coroutine of the manager as a blocking call."""

    def __init__(self, manager: TaskManager) -> None:
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

    def shutdown(self) -> None:
        """Close the manager on the portal, then stop the portal thread."""
        self.portal.call(self.manager.close())
        self.portal.stop()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"TaskManager has no coroutine {name!r} with a sync twin")
