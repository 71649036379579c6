"""Wiring a worker process: its configuration, its maintenance services, signals and start-up.

The manager builds a :class:`~taskward.runtime.worker.Worker` from its settings and runs it;
what that takes besides the worker itself lives here: validating the queues, the services
every worker runs beside its queues (staging, rescue, pruning and cron, the last three on the
elected leader only), stopping on SIGINT/SIGTERM, and opening a store that may still be
starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from taskward.backoff import RetryPolicy
from taskward.errors import BackendUnavailable, InvalidOptions
from taskward.jobs import NewJob, Schedule, validate_queue_name
from taskward.observe.events import EventBus
from taskward.runtime.maintenance import Leadership, Pruner, Releaser, Rescuer, Stager
from taskward.runtime.scheduler import CancelJob, CronScheduler
from taskward.runtime.service import PeriodicService
from taskward.runtime.settings import WorkerConfig
from taskward.runtime.worker import Worker
from taskward.settings import Settings
from taskward.tasks import Task

__all__ = ["maintenance_services", "open_for", "stop_on_signals", "worker_config"]

logger = logging.getLogger("taskward")


def worker_config(
    settings: Settings, queues: Mapping[str, int] | None, **config: Any
) -> WorkerConfig:
    """The configuration of a worker of ``queues`` ({name: concurrency}; default 10 slots)."""
    queues = dict(queues or {settings.default_queue: 10})
    for name, concurrency in queues.items():
        validate_queue_name(name)
        if concurrency < 1:
            raise InvalidOptions(f"concurrency of queue {name!r} must be >= 1")
    return WorkerConfig(
        queues=queues,
        lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval,
        shutdown_timeout=settings.shutdown_timeout,
        default_timeout=settings.default_timeout,
        **config,
    )


def maintenance_services(
    worker: Worker,
    settings: Settings,
    *,
    resolve: Callable[[str], Task[Any, Any] | None],
    make_job: Callable[[Schedule, datetime], NewJob],
    default_policy: RetryPolicy,
    events: EventBus,
    cancel_job: CancelJob | None = None,
) -> list[PeriodicService]:
    """The services a worker runs beside its queues; all but staging on the leader only."""
    backend, clock = worker.backend, worker.clock
    leadership = Leadership(backend, clock, worker.id, ttl=settings.lease_seconds)
    return [
        Stager(backend, clock, settings.poll_interval),
        Rescuer(
            backend,
            clock,
            settings.lease_seconds / 2,
            leadership=leadership,
            resolve=resolve,
            default_policy=default_policy,
            events=events,
        ),
        Pruner(
            backend,
            clock,
            3600,
            leadership=leadership,
            completed_days=settings.retention_completed_days,
            failed_days=settings.retention_failed_days,
        ),
        CronScheduler(
            backend,
            clock,
            make_job=make_job,
            leadership=leadership,
            events=events,
            cancel_job=cancel_job,
        ),
        Releaser(backend, clock, 60, leadership=leadership),
    ]


@contextlib.contextmanager
def stop_on_signals(worker: Worker, install: bool = True) -> Iterator[None]:
    """Stop ``worker`` gracefully on SIGINT and SIGTERM while inside (when ``install``)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if install:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, worker.stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                # not the main thread (asyncio: RuntimeError, uvloop: ValueError), or not
                # supported on this platform
                pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def open_for(
    open_store: Callable[[], Awaitable[Any]], worker: Worker, patience: float
) -> bool:
    """Open the store for ``worker``, retrying while unreachable; False if it was stopped."""
    loop = asyncio.get_running_loop()  # real time: an injected clock may stand still
    deadline = loop.time() + patience
    delay = 0.5
    while True:
        try:
            await open_store()
            return True
        except BackendUnavailable as exc:
            left = deadline - loop.time()
            if left <= 0:
                raise
            logger.warning(
                "the store is unreachable (%s); worker %s retries in %.1fs",
                exc,
                worker.id,
                min(delay, left),
            )
            if await worker.wait_stopped(min(delay, left)):
                return False
            delay = min(delay * 2, 5.0)
