"""The operator's queues: pause, resume, limits, holds, and where each queue stands.

:class:`QueueOperations` is mixed into :class:`~taskward.manager.TaskManager`; every method
here is one of its public methods. It needs from the manager only what is declared at the top
of the class.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from taskward.backends.base import Backend
from taskward.clock import Clock
from taskward.errors import InvalidOptions
from taskward.jobs import validate_queue_name, validate_seconds
from taskward.limits import (
    UNSET,
    PartitionBy,
    QueueFlow,
    QueueLimits,
    Rate,
    Unset,
    parse_rate,
    validate_global_limit,
)
from taskward.observe.events import Event, EventBus

__all__ = ["QueueOperations"]

logger = logging.getLogger("taskward")


class QueueOperations:
    """Queue controls (mixed into the TaskManager; sync twins on ``manager.sync``)."""

    events: EventBus
    clock: Clock

    async def _backend(self) -> Backend:
        raise NotImplementedError

    async def pause_queue(self, queue: str) -> None:
        """Stop every worker from fetching jobs of ``queue``."""
        await (await self._backend()).pause_queue(validate_queue_name(queue))
        logger.info("queue %r paused", queue)
        self.events.emit(Event(name="queue.paused", at=self.clock.now(), queue=queue))

    async def resume_queue(self, queue: str) -> None:
        """Let workers fetch from ``queue`` again."""
        await (await self._backend()).resume_queue(validate_queue_name(queue))
        logger.info("queue %r resumed", queue)
        self.events.emit(Event(name="queue.resumed", at=self.clock.now(), queue=queue))

    async def configure_queue(
        self,
        queue: str,
        *,
        global_limit: int | Unset | None = UNSET,
        rate_limit: str | tuple[int, float] | Rate | Unset | None = UNSET,
        partition_by: str | int | PartitionBy | Unset | None = UNSET,
    ) -> QueueLimits:
        """Set ``queue``'s limits on every node, at run time; return them as stored.

        ``global_limit=N``: at most N jobs of the queue run at once across every worker and
        host (each worker's own concurrency still applies). ``rate_limit="100/s"`` (or
        ``"5000/m"``, ``"2/h"``, ``"10/5s"``, ``(count, seconds)``): at most that many jobs of
        the queue start per fixed window aligned to the epoch, across every node.
        ``partition_by="tenant_id"`` (a kwarg name) or ``0`` (an args position): each job's key
        is read from that argument; both limits then apply to each key on its own, and keys
        take turns at every claim (a task may compute keys itself: ``@task(partition_key=fn)``).
        ``None`` removes a limit; a limit not passed keeps its stored value. Workers see the
        change at their next claim, without a restart.
        """
        name = validate_queue_name(queue)
        # Validate before reading the store: bad input changes nothing.
        new_global = (
            global_limit if isinstance(global_limit, Unset) else validate_global_limit(global_limit)
        )
        new_rate = rate_limit if isinstance(rate_limit, Unset) else parse_rate(rate_limit)
        new_rule = (
            partition_by if isinstance(partition_by, Unset) else PartitionBy.parse(partition_by)
        )
        backend = await self._backend()
        current = (await backend.queue_limits()).get(name, QueueLimits())
        limits = QueueLimits(
            global_limit=current.global_limit if isinstance(new_global, Unset) else new_global,
            rate_limit=current.rate_limit if isinstance(new_rate, Unset) else new_rate,
            partition_by=current.partition_by if isinstance(new_rule, Unset) else new_rule,
        )
        await backend.set_queue_limits(name, limits)
        logger.info(
            "queue %r configured: global_limit=%s rate_limit=%s partition_by=%s",
            name,
            limits.global_limit,
            limits.rate_limit,
            limits.partition_by,
        )
        self.events.emit(Event(name="queue.configured", at=self.clock.now(), queue=name))
        return limits

    async def hold_queue(
        self, queue: str, *, seconds: float | None, key: str | None = None
    ) -> None:
        """Hold back ``queue`` on every node for ``seconds`` (what ``RateLimited`` does).

        A hold only grows: a shorter one than the hold in place changes nothing.
        ``seconds=None`` releases the hold at once. ``key``: hold only that key of a
        partitioned queue.
        """
        if key is not None and not isinstance(key, str):
            raise InvalidOptions(f"key must be a str, got {key!r}")
        name = validate_queue_name(queue)
        if seconds is None:
            until = None
        else:
            delay = validate_seconds("seconds", seconds)
            until = self.clock.now() + timedelta(seconds=delay or 0.0)
        await (await self._backend()).hold_queue(name, until=until, key=key)
        what = repr(name) if key is None else f"{name!r} key {key!r}"
        logger.info("queue %s %s", what, "released" if until is None else f"held until {until}")

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """Where each queue with limits or a hold stands (limits, hold, rate window)."""
        return await (await self._backend()).queue_flow()

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """Where one key of a partitioned queue stands (hold, rate window, running jobs)."""
        return await (await self._backend()).partition_flow(validate_queue_name(queue), key)

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """The limits of every queue that has one, by queue name."""
        return await (await self._backend()).queue_limits()
