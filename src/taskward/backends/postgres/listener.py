"""Wake-ups: one LISTEN connection per backend, and the waiters of this process it wakes.

Every insert statement notifies (``pg_notify``) the queues of the pending jobs it inserted,
so a job enqueued inside the application's own transaction wakes workers when, and only if,
it commits; promotions, retries and resumes notify too. A NOTIFY is either a queue name (wake
that queue's waiters) or a job dispatched to a worker (``run:<len>:<worker id><row JSON>``),
handed to that worker's receiver if it lives in this process. The connection opens on the
first wait, reconnects with backoff, and polling covers the gaps. A claim held back by time (a
hold, a full rate window) has no NOTIFY to wait for: a timer wakes the queue's waiters when it
ends (:meth:`Listener.wake_at`).

The same connection LISTENs on the schema's ``_ends`` channel: the ids of watched jobs that
ended (``watches.py``), which wake this process's outcome waiters (:attr:`Listener.ends`).
Every (re)connection wakes them too: an end notified while nobody listened is read then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Final

import psycopg

from taskward.backends.postgres import rows
from taskward.backends.postgres.connections import AConn, Connections, connect
from taskward.backends.waiters import EndWaits, Waiters, WakeTimers
from taskward.jobs import Job

__all__ = ["DISPATCH_PREFIX", "Listener"]

logger = logging.getLogger(__name__)
LISTEN_RETRY_MAX: Final = 2.0
DISPATCH_PREFIX: Final = "run:"


class Listener(Waiters):
    """The LISTEN connection of one backend, its waiters, and the receivers of dispatched jobs.

    ``receivers``: the workers of this process that offered slots (their dispatched jobs go
    to these), by worker id.
    """

    def __init__(self, connections: Connections) -> None:
        super().__init__()
        self._connections = connections
        self._task: asyncio.Task[None] | None = None
        self.listening = False  # True while the LISTEN connection is up
        self.receivers: dict[str, Callable[[Job], None]] = {}
        self._timers = WakeTimers(self.wake)
        # Queue -> loop time before which its claims are held back (a timer wakes them then).
        self._held_back: dict[str, float] = {}
        self.ends = EndWaits()
        """This process's outcome waiters (``Backend.wait_for_ends``) and the ends they heard."""

    def start(self) -> None:
        """Start the LISTEN connection, on the first wait (idempotent).

        A producer-only process (a web app) then never opens it: one connection fewer per
        process, and no NOTIFY traffic of its own inserts to decode (it halved enqueue speed).
        """
        if self._task is None and self._connections.pool is not None:
            self._task = asyncio.create_task(self._listen(), name="taskward-pg-listen")

    async def stop(self) -> None:
        """Close the LISTEN connection and wake every waiter (idempotent).

        The connection starts again on the next wait.
        """
        task, self._task = self._task, None
        self._timers.cancel()  # every waiter wakes below; the next claim arms them again
        self._held_back.clear()
        try:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            self.wake(None)
            self.ends.close()

    async def wait(self, queues: Collection[str], *, timeout: float) -> None:
        """Start the connection if needed, then wait as :meth:`Waiters.wait` does."""
        self.start()
        await super().wait(queues, timeout=timeout)

    def wake_at(self, queue: str, now: datetime, at: datetime) -> None:
        """A claim of ``queue`` at ``now`` was held back until ``at``: wake its waiters then.

        Until then the first LISTEN's look for pending jobs (:meth:`_wake_if_pending`) skips
        the queue: its jobs are there, and a waiter woken for them would claim nothing.
        """
        self._timers.wake_at(queue, now=now, at=at)
        loop_time = asyncio.get_running_loop().time()
        self._held_back[queue] = loop_time + (at - now).total_seconds()

    def deliver(self, payload: str) -> None:
        """Hand a job dispatched to a worker of this process to it (others' are skipped unread).

        ``payload``: the worker id's length, ":", the worker id, the job's row as JSON.
        """
        try:
            size, _, rest = payload.partition(":")
            worker_id, row = rest[: int(size)], rest[int(size) :]
            receive = self.receivers.get(worker_id)
            if receive is None:
                return  # another process's worker
            receive(rows.job_from_json(row))
        except Exception:
            # The worker finds the job itself after its wait (Worker._settle adopts it).
            logger.exception("a job dispatched to this process could not be handed over")

    async def _listen(self) -> None:
        """Keep one LISTEN connection open; reconnect with backoff; wake waiters on NOTIFY."""
        connections = self._connections
        delay = 0.05
        reconnecting = False
        while True:
            try:
                conn = await connect(connections.config.conninfo, **connections.connect_kwargs())
            except psycopg.OperationalError as exc:
                logger.debug("LISTEN connection failed (%s); polling meanwhile", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX)
                continue
            try:
                async with conn:
                    await conn.execute(connections.q["listen"])
                    await conn.execute(connections.q["listen_ends"])
                    self.listening = True
                    # Ends notified while nobody listened: the outcome waiters read again.
                    self.ends.ended(None)
                    delay = 0.05
                    pool = connections.pool
                    if reconnecting and pool is not None:
                        # After a server restart every pooled connection is dead but looks
                        # idle: drop them now rather than fail the next statement on each.
                        await pool.check()
                    if reconnecting or self.receivers:
                        # Jobs may have arrived while nobody listened, and idle workers could
                        # not offer slots without a listener: wake everyone once.
                        self.wake(None)
                    else:
                        # The first LISTEN starts with the first wait: a job inserted just
                        # before it took effect sent its NOTIFY to nobody. Look once.
                        await self._wake_if_pending(conn)
                    reconnecting = True
                    ends_channel = f"{connections.config.channel}_ends"
                    async for notice in conn.notifies():
                        if notice.channel == ends_channel:
                            self._ended(notice.payload)
                        elif notice.payload.startswith(DISPATCH_PREFIX):
                            self.deliver(notice.payload[len(DISPATCH_PREFIX) :])
                        else:
                            self.wake(notice.payload)
            except psycopg.Error as exc:
                # Any database error (lost connection, schema not migrated yet): never let the
                # listener die silently; polling covers the gap until it is back.
                logger.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_MAX)

    def _ended(self, payload: str) -> None:
        """A watched job ended (the payload is its id): wake the outcome waiters watching it."""
        self.ends.ended([int(payload)] if payload.isdigit() else None)

    async def _wake_if_pending(self, conn: AConn) -> None:
        """Wake the current waiters of every queue that has a claimable job.

        Not those of a queue that a claim here found held back by time, until that time
        (:meth:`wake_at`): their timer wakes them then.
        """
        waited = self.waited_queues()
        if waited is None:
            cursor = await conn.execute(self._connections.q["pending_queues"])
        else:
            cursor = await conn.execute(
                self._connections.q["pending_queues_in"], {"queues": sorted(waited)}
            )
        now = asyncio.get_running_loop().time()
        for queue, until in list(self._held_back.items()):
            if until <= now:
                del self._held_back[queue]
        for (queue,) in await cursor.fetchall():
            if queue not in self._held_back:
                self.wake(queue)
