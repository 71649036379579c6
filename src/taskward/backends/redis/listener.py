"""Wake-ups: one subscription per backend to the store's wake channel, and its waiters.

Every script that makes a job pending (insert, promotion, retry, a snooze) publishes the job's
queue on ``{prefix}:wake``; so do resuming a queue, raising or clearing its limits, releasing
its hold, and a job leaving ``running`` in a queue with a global limit. Nothing is published
when a hold ends or a rate window opens: a fetch held back by one arms a timer of this process
instead. The subscription opens on the first wait, so a producer-only process (a web app)
never opens it; it reconnects with backoff, and polling covers the gaps. Inserts made through
this backend wake this process's waiters directly, without the round trip through the server.

The same subscription takes ``{prefix}:ends``: the ids of watched jobs that ended
(``watches.py``), which wake this process's outcome waiters (:attr:`Listener.ends`). Every
(re)subscription wakes them too: an end published while nobody listened is read then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any, Final

import redis

from taskward.backends.redis.client import Connections
from taskward.backends.waiters import EndWaits, Waiters, WakeTimers

__all__ = ["Listener"]

logger = logging.getLogger(__name__)
RETRY_MAX: Final = 2.0
SUBSCRIBE_TIMEOUT: Final = 5.0


class Listener(Waiters):
    """The wake channel's subscription of one backend, and the waiters it (or a timer) wakes."""

    def __init__(self, connections: Connections) -> None:
        super().__init__()
        self._connections = connections
        self._task: asyncio.Task[None] | None = None
        self.listening = False  # True while the subscription is up
        self._timers = WakeTimers(self.wake)
        # Queues whose last fetch a hold or a full rate window held back: a timer wakes them.
        self._held_back: set[str] = set()
        self.ends = EndWaits()
        """This process's outcome waiters (``Backend.wait_for_ends``) and the ends they heard."""

    def note_fetch(self, queue: str) -> None:
        """As :meth:`Waiters.note_fetch`; the queue is no longer held back until told again."""
        super().note_fetch(queue)
        self._held_back.discard(queue)

    def hold_back(self, queue: str, *, now: datetime, until: datetime) -> None:
        """The fetch of ``queue`` at ``now`` was held back until ``until``: wake its waiters then.

        No event marks that moment (no job becomes pending, none finishes), so a timer of
        this process does.
        """
        self._held_back.add(queue)
        self._timers.wake_at(queue, now=now, at=until)

    def start(self) -> None:
        """Start the subscription, on the first wait (idempotent).

        Started again if it ended, or belongs to another event loop (a second
        ``asyncio.run``): a dead subscription would leave every wait to polling.
        """
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return
        if self._connections.client is not None:
            self._task = asyncio.create_task(self._listen(), name="taskward-redis-listen")

    async def stop(self) -> None:
        """Close the subscription, drop the timers and wake every waiter (idempotent)."""
        self._timers.cancel()
        task, self._task = self._task, None
        try:
            if task is not None and not task.done():
                task.cancel()
                if task.get_loop() is asyncio.get_running_loop():
                    await asyncio.gather(task, return_exceptions=True)
        finally:
            self.wake(None)
            self.ends.close()

    async def wait(self, queues: Collection[str], *, timeout: float) -> None:
        """Start the connection if needed, then wait as :meth:`Waiters.wait` does."""
        self.start()
        await super().wait(queues, timeout=timeout)

    async def _wake_if_pending(self, client: Any) -> None:
        """Wake the current waiters of every queue that has a claimable job.

        A queue held back by time is left to its timer: its pending jobs cannot be claimed
        before then, and a wake-up now would only make its worker fetch nothing again.
        """
        waited = self.waited_queues()
        if waited is None:
            self.wake(None)
            return
        queues = sorted(waited - self._held_back)
        if not queues:
            return
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            # The queue's pending index: a partitioned queue keeps its jobs in sets per key.
            pipe.zcard(f"{self._connections.base}:ix:{queue}:pending")
        for queue, count in zip(queues, await pipe.execute(), strict=True):
            if count:
                self.wake(queue)

    async def _subscribe(self, pubsub: Any, *channels: str) -> None:
        """Subscribe and wait for the confirmation of each channel.

        SUBSCRIBE is only sent by ``subscribe``: the look for pending jobs that follows must
        come after the subscription took effect, or a job published in between is missed.
        """
        await pubsub.subscribe(*channels)
        confirmed = 0
        while confirmed < len(channels):
            reply = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
            if reply is None:
                raise redis.TimeoutError("no confirmation of SUBSCRIBE")
            if reply.get("type") == "subscribe":
                confirmed += 1

    async def _listen(self) -> None:
        """Keep one subscription open; reconnect with backoff; wake waiters on a message."""
        channel = f"{self._connections.base}:wake"
        ends_channel = f"{self._connections.base}:ends"
        delay = 0.05
        reconnecting = False
        while True:
            client = self._connections.client
            pubsub: Any = None
            try:
                if client is None:
                    raise redis.ConnectionError("the backend is closed")
                pubsub = client.pubsub()
                await self._subscribe(pubsub, channel, ends_channel)
                self.listening = True
                self.ends.ended(None)  # ends published while nobody listened: read again
                delay = 0.05
                if reconnecting:
                    # Jobs may have been made pending while nobody listened: wake everyone.
                    self.wake(None)
                else:
                    # A job made pending just before the first subscription took effect
                    # published to nobody: look once.
                    await self._wake_if_pending(client)
                reconnecting = True
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
                    if message is None or message.get("type") != "message":
                        continue
                    if str(message.get("channel")) == ends_channel:
                        data = str(message["data"])
                        self.ends.ended([int(data)] if data.isdigit() else None)
                    else:
                        self.wake(str(message["data"]))
            except Exception as exc:
                # Any error (a lost connection, a cluster reconfiguring): never let the
                # subscription die silently; polling covers the gap until it is back.
                level = logging.WARNING if reconnecting else logging.DEBUG
                logger.log(level, "Redis wake-up subscription lost (%s); reconnecting", exc)
            finally:
                self.listening = False
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
