"""Queue controls of the SQLite store: pauses, limits and holds, and the claim they shape.

What every process that opens the file obeys: paused queues (``taskward_paused_queues``), one
row of ``taskward_queue_limits`` per queue with limits (a partition rule among them) or a hold
(migration 0003 says when a row goes), and one row of ``taskward_partition_keys`` per key of a
partitioned queue with its own hold or rate window (migration 0004). :class:`QueueControls` is
a base of :class:`~taskward.backends.sqlite.store.SqliteStore`; its
:meth:`QueueControls._claim_limited` is the claim of a queue with a rate limit, a hold in force
or a partition rule (:func:`~taskward.backends.sqlite.partitions.claim_by_key`), which
``fetch_jobs`` leaves to it in the same ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from taskward.backends.sqlite import rows
from taskward.backends.sqlite.connection import SqliteConnection
from taskward.backends.sqlite.partitions import claim_by_key
from taskward.limits import RUNNING_SHOWN, PartitionBy, QueueFlow, QueueLimits, allowance

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
        """Store ``queue``'s limits, replacing any; empty limits clear them (the hold stays).

        A new or changed partition rule keys the queue's waiting jobs by it first, in the same
        transaction: an insert (which reads the rule under the same write lock) either comes
        before and is keyed here, or comes after and reads the new rule.
        """
        rule = limits.partition_by
        with self._write() as db:
            if rule is not None:
                stored = db.execute(self.q["queue_rule"], (queue,)).fetchone()
                if stored is None or PartitionBy.parse(stored[0]) != rule:
                    self._key_waiting_jobs(db, queue, rule)
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
                None if rule is None else str(rule),
            )
            db.execute(self.q["set_queue_limits"], params)

    def _key_waiting_jobs(self, db: sqlite3.Connection, queue: str, rule: PartitionBy) -> None:
        """Set the key of every job of ``queue`` (a finished one may be retried into pending).

        Computed in Python from the stored arguments (the same :meth:`PartitionBy.key_of` as
        every insert), one pass over the queue's waiting jobs.
        """
        found = db.execute(self.q["waiting_arguments"], (queue,)).fetchall()
        keyed = [(rows.key_of_stored(rule, args, kwargs), job_id) for job_id, args, kwargs in found]
        db.executemany(self.q["set_partition_key"], keyed)

    def queue_limits(self) -> dict[str, QueueLimits]:
        """The limits of every limited queue, by name (a queue with only a hold is not one)."""
        cursor = self._db().execute(self.q["list_queue_limits"])
        return {row[0]: rows.limits_from_row(row[1:]) for row in cursor}

    def hold_queue(self, queue: str, until: datetime | None, key: str | None = None) -> None:
        """Hold ``queue`` (or only its ``key``) until ``until``, the later hold winning.

        ``until=None`` releases it.
        """
        with self._write() as db:
            if key is not None:
                if until is None:
                    db.execute(self.q["release_key_hold"], (queue, key))
                    db.execute(self.q["drop_empty_key_row"], (queue, key))
                else:
                    db.execute(self.q["hold_key"], (queue, key, rows.epoch(until)))
            elif until is None:
                db.execute(self.q["release_hold"], (queue,))
                db.execute(self.q["drop_empty_queue_row"], (queue,))
            else:
                db.execute(self.q["hold_queue"], (queue, rows.epoch(until)))

    def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """The queue's limits, and ``key``'s hold, rate window and running jobs (by id)."""
        with self._read() as db:
            row = db.execute(self.q["partition_flow"], (queue, key)).fetchone()
            found = db.execute(self.q["key_running_ids"], (queue, key, RUNNING_SHOWN))
            running = tuple(job_id for (job_id,) in found)
        return rows.key_flow(rows.limits_from_row(row[:4]), row[4:], running=running)

    def queue_flow(self) -> dict[str, QueueFlow]:
        """Limits, hold, rate window and waits of every queue with limits or a hold, by name."""
        cursor = self._db().execute(self.q["list_queue_flow"])
        return {
            row[0]: replace(rows.flow_from_row(row[1:8]), waits=rows.waits_from_row(row[8:11]))
            for row in cursor
        }

    def _claim_limited(
        self, db: sqlite3.Connection, params: tuple[Any, ...], found: Sequence[Any], now: datetime
    ) -> tuple[list[Any], datetime | None]:
        """Claim from a queue with a rate limit, a hold in force or a partition rule.

        In the caller's transaction. ``params`` are ``fetch_jobs``' (which claimed nothing of
        this queue); ``found`` is ``claim_flow``'s row: paused, then the queue's row as
        :func:`rows.flow_from_row` reads it, then the partition cursor. The count is
        :func:`~taskward.limits.allowance`'s; the starts are counted in the current window
        before the commit, so racing claims from other processes (which wait for the write
        lock) see them. A claim that the allowance capped counts a wait by its reason
        (``count_wait``, which looks for a pending job left); no other claim writes one.
        Returns the claimed rows in claim order (a partitioned queue's in take-turns order) and
        the allowance's ``retry_at``.
        """
        paused, *stored = found
        if paused:
            return [], None
        flow = rows.flow_from_row(stored)
        if flow.limits.partition_by is not None:
            return claim_by_key(db, self.q, params, flow, stored[-1], now)
        queue, wanted = params[3], params[4]
        running = 0
        held = flow.held_until is not None and now < flow.held_until
        if flow.limits.global_limit is not None and not held:
            running = db.execute(self.q["count_running"], (queue,)).fetchone()[0]
        allowed = allowance(flow, wanted=wanted, running=running, now=now)
        if allowed.count <= 0:
            if allowed.reason is not None:
                db.execute(self.q["count_wait"], (queue, allowed.reason))
            return [], allowed.retry_at
        claimed = db.execute(self.q["claim_jobs"], (*params[:4], allowed.count)).fetchall()
        rate = flow.limits.rate_limit
        if rate is not None and claimed:
            window = rate.window_of(now)
            used = flow.used_in(window) + len(claimed)
            db.execute(self.q["count_window"], (window, used, queue))
        if allowed.reason is not None and len(claimed) == allowed.count:
            # Capped below what it asked; fewer than allowed means the queue ran out.
            db.execute(self.q["count_wait"], (queue, allowed.reason))
        claimed.sort(key=rows.claim_order)
        return claimed, allowed.retry_at
