"""A FastAPI/Starlette lifespan: the manager opened, a worker beside the app, an orderly end.

    app = FastAPI(lifespan=taskward_lifespan(tw, worker={"default": 5}))

At start-up the manager is opened (and migrated, as configured), then the in-process worker
starts when asked for, then the application's own lifespan runs. At shutdown, in reverse: the
application's lifespan ends, the worker stops fetching and lets its running jobs finish (for
the manager's ``shutdown_timeout``; the rest are handed back), the ``taskward.aio`` background
tasks are drained (requests and jobs may have started some), and the manager is closed.

A worker inside the web process suits small deployments: one process to run, jobs that share
the app's code and configuration. It shares the event loop with the requests, so sync jobs
(run in threads) or short async ones suit it best; separate ``taskward worker`` processes
scale further. Starlette is only named for typing: this module imports no framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar, overload

from taskward.aio import drain_background_tasks
from taskward.manager import TaskManager
from taskward.runtime.worker import Worker

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["taskward_lifespan"]

logger = logging.getLogger("taskward")

App = TypeVar("App", bound="Starlette")
Lifespan = Callable[[App], AbstractAsyncContextManager[Any]]


@overload
def taskward_lifespan(
    manager: TaskManager,
    *,
    worker: bool | Mapping[str, int] = False,
    drain_timeout: float = 10.0,
    lifespan: None = None,
) -> Lifespan[Starlette]: ...


@overload
def taskward_lifespan(
    manager: TaskManager,
    *,
    worker: bool | Mapping[str, int] = False,
    drain_timeout: float = 10.0,
    lifespan: Lifespan[App],
) -> Lifespan[App]: ...


def taskward_lifespan(
    manager: TaskManager,
    *,
    worker: bool | Mapping[str, int] = False,
    drain_timeout: float = 10.0,
    lifespan: Lifespan[Any] | None = None,
) -> Lifespan[Any]:
    """A lifespan for ``FastAPI(lifespan=...)`` or ``Starlette(lifespan=...)`` (module doc).

    ``worker``: False runs no worker (producers only; workers run elsewhere), True one on the
    manager's default queue, or ``{queue: concurrency}``. ``drain_timeout``: seconds to wait
    for the ``taskward.aio`` background tasks at shutdown before cancelling the stragglers.
    ``lifespan``: the application's own, run inside (its yielded state is passed on); or
    enter this one from the application's own, ``async with taskward_lifespan(tw)(app):``.
    """
    queues = _queues(worker)

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        await manager.open()
        try:
            # The worker runs inside the app's own lifespan: it starts once the app's
            # resources are up, and stops (its running jobs finished) before they go.
            if lifespan is None:
                async with _worker_beside(manager, queues):
                    yield None
            else:
                async with lifespan(app) as state, _worker_beside(manager, queues):
                    yield state
        finally:
            try:
                # After the worker: its jobs may have started background tasks too.
                if not await drain_background_tasks(timeout=drain_timeout):
                    logger.warning(
                        "background tasks still running after %ss were cancelled", drain_timeout
                    )
            finally:
                await manager.close()

    return run


def _queues(worker: bool | Mapping[str, int]) -> Mapping[str, int] | None:
    """The worker's queues: None for none, ``{}`` for the manager's default one."""
    if worker is True:
        return {}
    if worker is False:
        return None
    if not isinstance(worker, Mapping):
        raise TypeError(f"worker= takes True, False or {{queue: concurrency}}, got {worker!r}")
    return worker


@contextlib.asynccontextmanager
async def _worker_beside(
    manager: TaskManager, queues: Mapping[str, int] | None
) -> AsyncIterator[Worker | None]:
    """Run a worker of ``queues`` on this loop while inside; stop it gracefully on the way out."""
    if queues is None:
        yield None
        return
    worker = manager.make_worker(queues or None)  # bad queues: the app does not start
    # The server owns SIGINT/SIGTERM and runs the lifespan's shutdown on them.
    running = asyncio.create_task(
        manager.run_worker(worker=worker, install_signal_handlers=False),
        name="taskward-app-worker",
    )
    running.add_done_callback(_report_end)
    try:
        yield worker
    finally:
        worker.stop()
        # Its graceful shutdown: running jobs finish (shutdown_timeout), then it deregisters.
        await asyncio.gather(running, return_exceptions=True)


def _report_end(running: asyncio.Task[None]) -> None:
    """Log a worker that ended with an error: the app goes on serving, its jobs do not run."""
    if not running.cancelled() and running.exception() is not None:
        logger.error(
            "the in-process worker stopped with an error; this app runs no more jobs",
            exc_info=running.exception(),
        )
