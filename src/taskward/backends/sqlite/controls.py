"""Queue controls of the SQLite store: pauses, limits and holds, and the claim they shape.

What every process that opens the file obeys: paused queues (``taskward_paused_queues``), and
one row of ``taskward_queue_limits`` per queue with limits or a hold (migration 0003 says when
a row goes). :class:`QueueControls` is a base of
:class:`~taskward.backends.sqlite.store.SqliteStore`; its :meth:`QueueControls._claim_limited`
is the claim of a queue with a rate limit or a hold in force, which ``fetch_jobs`` leaves to it
in the same ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskward.backends.sqlite import rows
from taskward.backends.sqlite.connection import SqliteConnection
from taskward.limits import QueueFlow, QueueLimits, allowance

__all__ = ["QueueControls"]


class QueueControls(SqliteConnection):
    """Pauses, limits and holds of queues, and the claim of a rate-limited or held queue."""

    def pause_queue(self, queue: str) -> None:
        """Mark ``queue`` paused."""
        with self._write() as db:
            db.execute(self.q["pause_queue"], (queue,))

    def resume_queue(self, queue: str) -> None:
        """Unmark ``queue`` paused."""
        with self._write() as db:
            db.execute(self.q["resume_queue"], (queue,))

    def paused_queues(self) -> set[str]:
        """The paused queues."""
        return {queue for (queue,) in self._db().execute(self.q["list_paused"])}

    def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Store ``queue``'s limits, replacing any; empty limits clear them (the hold stays)."""
        with self._write() as db:
            if limits.is_empty:
                db.execute(self.q["clear_queue_limits"], (queue,))
                db.execute(self.q["drop_empty_queue_row"], (queue,))
                return
            rate = limits.rate_limit
            params = (
                queue,
                limits.global_limit,
                None if rate is None else rate.count,
                None if rate is None else rate.period_ms,
            )
            db.execute(self.q["set_queue_limits"], params)

    def queue_limits(self) -> dict[str, QueueLimits]:
        """The limits of every limited queue, by name (a queue with only a hold is not one)."""
        cursor = self._db().execute(self.q["list_queue_limits"])
        return {row[0]: rows.limits_from_row(row[1:]) for row in cursor}

    def hold_queue(self, queue: str, until: datetime | None) -> None:
        """Hold ``queue`` until ``until`` (the later hold wins); None releases it."""
        with self._write() as db:
            if until is None:
                db.execute(self.q["release_hold"], (queue,))
                db.execute(self.q["drop_empty_queue_row"], (queue,))
            else:
                db.execute(self.q["hold_queue"], (queue, rows.epoch(until)))

    def queue_flow(self) -> dict[str, QueueFlow]:
        """Limits, hold and rate window of every queue with limits or a hold, by name."""
        cursor = self._db().execute(self.q["list_queue_flow"])
        return {row[0]: rows.flow_from_row(row[1:]) for row in cursor}

    def _claim_limited(
        self, db: sqlite3.Connection, params: tuple[Any, ...], found: Sequence[Any], now: datetime
    ) -> tuple[list[Any], datetime | None]:
        """Claim from a queue with a rate limit or a hold in force, in the caller's transaction.

        ``params`` are ``fetch_jobs``' (which claimed nothing of this queue); ``found`` is the
        rest of ``claim_flow``'s row: paused, then the queue's row as :func:`rows.flow_from_row`
        reads it. The count is :func:`~taskward.limits.allowance`'s; the starts are counted in
        the current window before the commit, so racing claims from other processes (which wait
        for the write lock) see them. Returns the claimed rows and the allowance's ``retry_at``.
        """
        paused, *stored = found
        if paused:
            return [], None
        flow = rows.flow_from_row(stored)
        queue, wanted = params[3], params[4]
        running = 0
        held = flow.held_until is not None and now < flow.held_until
        if flow.limits.global_limit is not None and not held:
            running = db.execute(self.q["count_running"], (queue,)).fetchone()[0]
        allowed = allowance(flow, wanted=wanted, running=running, now=now)
        if allowed.count <= 0:
            return [], allowed.retry_at
        claimed = db.execute(self.q["claim_jobs"], (*params[:4], allowed.count)).fetchall()
        rate = flow.limits.rate_limit
        if rate is not None and claimed:
            window = rate.window_of(now)
            used = flow.used_in(window) + len(claimed)
            db.execute(self.q["count_window"], (window, used, queue))
        return claimed, allowed.retry_at
