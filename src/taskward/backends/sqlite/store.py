"""SqliteStore: the statements of every backend call, synchronous, on one connection.

:class:`~taskward.backends.sqlite.SqliteBackend` owns one store per connection and runs each
backend call as *one* method call here on the store's thread: all the SQL of a call happens in
one thread hop, and the connection never leaves its thread. The connection itself, its
``BEGIN IMMEDIATE`` write transactions and its read snapshots are
:class:`~taskward.backends.sqlite.connection.SqliteConnection`'s, this class's base.

The semantics are those of ``memory.py`` (the reference); comments point to its helpers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any, Final

from taskward.backends.sqlite import rows
from taskward.backends.sqlite.controls import QueueControls
from taskward.backends.sqlite.edits import retry_edited
from taskward.backends.sqlite.flows import StoreWorkflows
from taskward.backends.sqlite.partitions import keys_at_insert
from taskward.errors import JobNotFound
from taskward.jobs import (
    FINISHED_STATES,
    UNIQUE_BLOCKING_STATES,
    Inserted,
    Job,
    JobEdit,
    JobFilter,
    JobState,
    JobUpdate,
    LeaseReport,
    NewJob,
    Page,
    Reseal,
    Schedule,
    Stats,
    WorkerInfo,
)

__all__ = ["INSERT_CHUNK_ROWS", "SqliteStore"]

INSERT_CHUNK_ROWS: Final = 256  # x 16 parameters: far below SQLite's 32,766 variable limit


class SqliteStore(QueueControls, StoreWorkflows):
    """The statements of every backend call on one SQLite connection (single thread only).

    Pauses, limits and holds, and the claim of a rate-limited, held or partitioned queue, are
    its base's (:class:`~taskward.backends.sqlite.controls.QueueControls`); workflows and their
    release rules are its other base's (:class:`~taskward.backends.sqlite.flows.StoreWorkflows`).
    """

    def __init__(self, path: str, *, synchronous: str, any_thread: bool = False) -> None:
        super().__init__(path, synchronous=synchronous, any_thread=any_thread)
        row = self.q["insert_job_row"]
        self._chunk = INSERT_CHUNK_ROWS
        self._insert_one_sql = self.q["insert_jobs"].format(rows=row)
        self._insert_chunk_sql = self.q["insert_jobs"].format(rows=", ".join([row] * self._chunk))
        self.last_version: int | None = None
        """``PRAGMA data_version`` after the latest fetch (any queue)."""
        self.versions: dict[str, int] = {}
        """``PRAGMA data_version`` after the latest fetch of each queue."""

    # -- produce ---------------------------------------------------------------------------
    def insert(self, jobs: Sequence[NewJob], now: datetime) -> list[Inserted]:
        """Insert ``jobs`` in one transaction; unique clashes answer the existing job.

        A job without a key of its own gets the one its queue's partition rule reads from its
        arguments, the rule being read in the insert's own write transaction
        (:func:`~taskward.backends.sqlite.partitions.keys_at_insert`).
        """
        now_ts = rows.epoch(now)
        if len(jobs) == 1 and jobs[0].unique_key is None:
            one = self._insert_one(jobs[0], now, now_ts)
            if one is not None:
                return [one]
            # Its queue has a partition rule: keyed in a transaction below.
        with self._write() as db:
            keys = keys_at_insert(db, self.q, jobs)
            first_id = db.execute(self.q["last_job_id"]).fetchone()[0] + 1
            if any(new.unique_key is not None for new in jobs):
                return self._insert_each(db, jobs, keys, first_id, now)
            params = [
                rows.insert_params(new, first_id + n, now_ts, key)
                for n, (new, key) in enumerate(zip(jobs, keys, strict=True))
            ]
            self._insert_rows(db, params)
        # Built after the commit: the write lock is not held while making the Job values.
        return [
            Inserted(job=rows.job_from_new(new, first_id + n, now, key))
            for n, (new, key) in enumerate(zip(jobs, keys, strict=True))
        ]

    def _insert_one(self, new: NewJob, now: datetime, now_ts: float) -> Inserted | None:
        """Insert one plain job by one autocommitting statement; None if it needs a key.

        A writing statement takes the write lock before it reads (as BEGIN IMMEDIATE does),
        so its id expression cannot race another inserter; three statements fewer than the
        transaction, and the same single fsync. The statement stores nothing when the job has
        no key of its own and its queue has a partition rule (the rule is read under that same
        lock): the caller then inserts it keyed.
        """
        params = rows.insert_params(new, 0, now_ts, new.partition_key)[1:]
        cursor = self._db().execute(self.q["insert_job_next_id"], params)
        if cursor.rowcount != 1:
            return None
        job_id = cursor.lastrowid
        assert job_id is not None
        return Inserted(job=rows.job_from_new(new, job_id, now))

    def _insert_each(
        self,
        db: sqlite3.Connection,
        jobs: Sequence[NewJob],
        keys: Sequence[str | None],
        next_id: int,
        now: datetime,
    ) -> list[Inserted]:
        """Insert one job at a time, so that a unique job sees those before it in the batch."""
        now_ts = rows.epoch(now)
        out: list[Inserted] = []
        for new, key in zip(jobs, keys, strict=True):
            if new.unique_key is not None:
                existing = self._find_unique(db, new, now)
                if existing is not None:
                    out.append(Inserted(job=existing, duplicate=True))
                    continue
                db.execute(self.q["remember_unique"], (new.unique_key, next_id))
            self._insert_rows(db, [rows.insert_params(new, next_id, now_ts, key)])
            out.append(Inserted(job=rows.job_from_new(new, next_id, now, key)))
            next_id += 1
        return out

    def _insert_rows(self, db: sqlite3.Connection, params: list[tuple[Any, ...]]) -> None:
        """Insert rows of ``insert_job_row`` parameters, many rows per statement."""
        chunk = self._chunk
        whole = len(params) - len(params) % chunk
        for start in range(0, whole, chunk):
            flat = list(chain.from_iterable(params[start : start + chunk]))
            db.execute(self._insert_chunk_sql, flat)
        if whole < len(params):
            db.executemany(self._insert_one_sql, params[whole:])

    def _find_unique(self, db: sqlite3.Connection, new: NewJob, now: datetime) -> Job | None:
        # memory.py _find_unique: only the latest job of the key counts.
        row = db.execute(self.q["find_unique"], (new.unique_key,)).fetchone()
        if row is None:
            return None
        job = rows.job_from_row(row)
        if new.unique_window is None:
            return job
        fresh = job.inserted_at >= now - timedelta(seconds=new.unique_window)
        return job if fresh and job.state in UNIQUE_BLOCKING_STATES else None

    # -- work ------------------------------------------------------------------------------
    def fetch(
        self, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> tuple[list[Job], datetime | None]:
        """Claim up to ``limit`` pending jobs of ``queue`` (nothing if it is paused).

        A queue with no limits, or only a global limit, is claimed by one statement under the
        write lock (``fetch_jobs``: it counts the running jobs and claims). One with a rate
        limit, a hold in force or a partition rule gets nothing from it; an empty claim looks
        for such a queue's row (``claim_flow``), and the store claims it in the same
        transaction (:meth:`_claim_limited`). Also returns when a hold or a full rate window
        that held the claim back ends (else None): the caller wakes the queue's waiters then.

        A claim that a limit capped below what it asked counts a wait in the queue's row if a
        pending job is left (``count_wait``; ``fetch_jobs`` says a global limit capped it by
        calling ``taskward_capped``). A claim that no limit capped runs nothing more.
        """
        now_ts = rows.epoch(now)
        params = (now_ts, worker_id, rows.epoch(lease_until), queue, limit)
        retry_at = None
        in_order = False
        self.take_capped()  # forget an earlier statement's
        with self._write(durable=False) as db:
            claimed = db.execute(self.q["fetch_jobs"], params).fetchall()
            capped = self.take_capped()
            if capped is not None:  # a global limit (alone) capped it: claim_flow has no row
                if len(claimed) == capped:  # fewer: the queue ran out (or it is paused)
                    db.execute(self.q["count_wait"], (queue, "global_limit"))
            elif not claimed:  # maybe a queue that fetch_jobs leaves to the store
                found = db.execute(self.q["claim_flow"], (queue, now_ts)).fetchone()
                if found is not None:
                    claimed, retry_at = self._claim_limited(db, params, found, now)
                    in_order = True
        version = db.execute(self.q["data_version"]).fetchone()[0]
        self.versions[queue] = self.last_version = version
        if not in_order:  # RETURNING's order is unspecified
            claimed.sort(key=rows.claim_order)
        return [rows.job_from_row(row) for row in claimed], retry_at

    def extend_leases(
        self, job_ids: Collection[int], worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Extend the leases ``worker_id`` still holds; report the lost and cancelled ones."""
        params = (rows.epoch(lease_until), json.dumps(list(job_ids)), worker_id)
        with self._write() as db:
            held = db.execute(self.q["extend_leases"], params).fetchall()
        cancel = frozenset(job_id for job_id, requested in held if requested)
        lost = frozenset(job_ids) - {job_id for job_id, _ in held}
        return LeaseReport(lost=lost, cancel_requested=cancel)

    def finish(self, updates: Sequence[JobUpdate], worker_id: str) -> tuple[list[bool], list[str]]:
        """Write each outcome behind its fence; False where the fence refused it.

        Also returns the queues with a global limit that a written job left: a slot came free
        there, so their waiters are worth waking (a finish gives no start back to a rate), and
        those where a workflow step became pending. A written update with ``dependents`` that
        ends its job releases or cancels the steps waiting for it, in the same transaction
        (only those updates look up edges).
        """
        sql = self.q["finish_job"]
        with self._write() as db:
            written = [
                db.execute(sql, rows.update_params(update, worker_id)).rowcount == 1
                for update in updates
            ]
            ids = [update.job_id for update, ok in zip(updates, written, strict=True) if ok]
            freed = self._limited_queues(db, ids) if ids else []
            if any(update.dependents for update in updates):
                freed.extend(self._dependents_of(db, updates, written, freed))
        return written, freed

    def _dependents_of(
        self,
        db: sqlite3.Connection,
        updates: Sequence[JobUpdate],
        written: list[bool],
        freed: list[str],
    ) -> list[str]:
        """Release or cancel the steps waiting for each written update that ended a step.

        Only updates with ``dependents`` look up edges. Returns the queues (not in ``freed``)
        where a step became pending.
        """
        ready: set[str] = set()
        for update, ok in zip(updates, written, strict=True):
            if ok and update.dependents and update.state in FINISHED_STATES:
                ready |= self._step_ended(db, update.job_id, update.state, update.at)
        return sorted(ready.difference(freed))

    def _limited_queues(self, db: sqlite3.Connection, job_ids: list[int]) -> list[str]:
        """The queues of ``job_ids`` that have a global limit (one probe when none has)."""
        if not db.execute(self.q["any_global_limits"]).fetchone()[0]:
            return []
        found = db.execute(self.q["limited_queues_of_jobs"], (json.dumps(job_ids),))
        return [queue for (queue,) in found]

    def set_progress(self, job_id: int, progress: Any, worker_id: str) -> bool:
        """Store a running job's progress if ``worker_id`` owns it."""
        with self._write() as db:
            params = (rows.dumps(progress), job_id, worker_id)
            return db.execute(self.q["set_progress"], params).rowcount == 1

    def jobs_may_be_pending(self, queues: Sequence[str], seen: set[int | None]) -> bool:
        """True if another connection committed since ``seen`` and jobs may now be pending.

        Pending means: a job of ``queues`` (of any queue if empty) in a queue that is not
        paused. ``seen`` holds the data versions last looked at; it is updated to the current
        version, so each commit is looked at once.
        """
        db = self._db()
        version = db.execute(self.q["data_version"]).fetchone()[0]
        if seen == {version}:
            return False
        seen.clear()
        seen.add(version)
        if queues:
            found = db.execute(self.q["any_pending_in"], (json.dumps(list(queues)),))
        else:
            found = db.execute(self.q["any_pending"])
        return bool(found.fetchone()[0])

    # -- maintain --------------------------------------------------------------------------
    def promote_due(self, now: datetime) -> int:
        """Move due scheduled and retryable jobs to pending; return how many."""
        with self._write() as db:
            return db.execute(self.q["promote_due"], (rows.epoch(now),)).rowcount

    def expired_leases(self, now: datetime, limit: int) -> list[Job]:
        """Running jobs whose lease ended before ``now``, by id."""
        cursor = self._db().execute(self.q["expired_leases"], (rows.epoch(now), limit))
        return [rows.job_from_row(row) for row in cursor]

    def finished_per_minute(self, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Count jobs finished since ``since`` per minute and state: one range scan per state."""
        sql, cutoff = self.q["finished_per_minute"], rows.epoch(since)
        out: list[tuple[datetime, JobState, int]] = []
        with self._read() as db:
            for state in sorted(FINISHED_STATES, key=lambda s: s.value):
                out.extend(
                    (rows.minute_time(minute), state, n)
                    for minute, n in db.execute(sql, (state.value, cutoff))
                )
        out.sort(key=lambda row: (row[0], row[1].value))
        return out

    def prune(self, before: Mapping[JobState, datetime]) -> int:
        """Delete finished jobs of each given state that finished before its cutoff.

        Unfinished states in ``before`` are ignored: pruning never deletes a job that may
        still run (the contract suite's rule; memory.py's loop alone would delete them).
        """
        sql = self.q["prune_state"]
        with self._write() as db:
            db.execute(self.q["remember_last_job_id"])
            return sum(
                db.execute(sql, (state.value, rows.epoch(cutoff))).rowcount
                for state, cutoff in before.items()
                if state in FINISHED_STATES
            )

    # -- admin -----------------------------------------------------------------------------
    def get(self, job_id: int) -> Job:
        """Return one job or raise ``JobNotFound``."""
        return self._get(self._db(), job_id)

    def _get(self, db: sqlite3.Connection, job_id: int) -> Job:
        row = db.execute(self.q["get_job"], (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return rows.job_from_row(row)

    def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """One page of the jobs matching ``filter``, with the total count."""
        where, params = self._where(filter)
        listing = self.q["list_jobs"].format(where=where, order_by=rows.order_by(filter))
        with self._read() as db:
            total = db.execute(self.q["count_jobs"].format(where=where), params).fetchone()[0]
            found = db.execute(listing, (*params, filter.per_page, filter.offset)).fetchall()
        return Page(
            items=[rows.job_from_row(row) for row in found],
            total_entries=total,
            page_number=filter.page,
            page_size=filter.per_page,
        )

    def _where(self, filter: JobFilter) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if filter.states is not None:
            parts.append(self.q["filter_states"])
            params.append(json.dumps(sorted(state.value for state in filter.states)))
        if filter.queue is not None:
            parts.append(self.q["filter_queue"])
            params.append(filter.queue)
        if filter.task is not None:
            parts.append(self.q["filter_task"])
            params.append(filter.task)
        if filter.workflow is not None:
            parts.append(self.q["filter_workflow"])
            params.append(filter.workflow)
        return " AND ".join(parts) or "1", params

    def cancel(self, job_id: int, reason: str, now: datetime) -> tuple[Job, set[str]]:
        """Cancel a waiting job, flag a running one; return the job as it is now.

        Cancelling a workflow step is an end its dependents see, in the same transaction: also
        returns the queues where one of them became pending.
        """
        with self._write() as db:
            params = (rows.epoch(now), now.isoformat(), reason, job_id)
            row = db.execute(self.q["cancel_waiting"], params).fetchone()
            if row is not None:
                return rows.job_from_row(row), self._step_ended(db, job_id, JobState.CANCELLED, now)
            row = db.execute(self.q["request_cancel"], (job_id,)).fetchone()
            return (rows.job_from_row(row) if row is not None else self._get(db, job_id)), set()

    def retry(self, job_id: int, now: datetime, edit: JobEdit | None = None) -> tuple[Job, bool]:
        """Make a failed, discarded or cancelled job pending; True if it moved.

        A workflow step goes ``blocked`` instead while a dependency holds it back, and the
        dependents its end cancelled wait again (same transaction). ``edit``: its changes and
        record in the same transaction (``backends.sqlite.edits``).
        """
        with self._write() as db:
            if edit is not None:
                row = retry_edited(db, self.q, self._get(db, job_id), edit, now)
            else:
                row = db.execute(self.q["retry_job"], (rows.epoch(now), job_id)).fetchone()
            if row is None:
                return self._get(db, job_id), False
            return self._step_retried(db, rows.job_from_row(row)), True

    def reseal(self, rewrites: Sequence[Reseal]) -> list[bool]:
        """Write re-sealed values of jobs still as they were read (one transaction)."""
        with self._write() as db:
            return [
                db.execute(self.q["reseal_job"], rows.reseal_params(r)).rowcount == 1
                for r in rewrites
            ]

    def delete(
        self, job_id: int, states: frozenset[JobState] | None = None
    ) -> tuple[bool, set[str]]:
        """Delete a job that is not running (and in ``states``, if given); True if one was.

        A workflow step that had not ended is an end for its dependents (same transaction):
        also returns the queues where one of them became pending.
        """
        with self._write() as db:
            if states is not None:  # checked in the delete's own write transaction
                found = db.execute(self.q["job_state"], (job_id,)).fetchone()
                if found is None or JobState(found[0]) not in states:
                    return False, set()
            db.execute(self.q["remember_last_job_id"])
            ready = self._step_deleted(db, job_id, datetime.now(UTC))
            return db.execute(self.q["delete_job"], (job_id,)).rowcount == 1, ready

    def stats(self) -> Stats:
        """Counts by queue and state; paused queues appear even without jobs."""
        with self._read() as db:
            paused = [queue for (queue,) in db.execute(self.q["list_paused"])]
            counted = db.execute(self.q["count_by_queue_and_state"]).fetchall()
        counts: dict[str, dict[JobState, int]] = {queue: {} for queue in paused}
        for queue, state, count in counted:
            counts.setdefault(queue, {})[JobState(state)] = count
        return Stats(counts=counts, paused=frozenset(paused))

    # -- schedules -------------------------------------------------------------------------
    def save_schedule(self, schedule: Schedule) -> None:
        """Create or replace a schedule."""
        with self._write() as db:
            db.execute(self.q["save_schedule"], rows.schedule_params(schedule))

    def delete_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there was none."""
        with self._write() as db:
            return db.execute(self.q["delete_schedule"], (name,)).rowcount == 1

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        cursor = self._db().execute(self.q["list_schedules"])
        return [rows.schedule_from_row(row) for row in cursor]

    def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume a schedule; False if there is none."""
        with self._write() as db:
            return db.execute(self.q["set_schedule_paused"], (int(paused), name)).rowcount == 1

    # -- coordination ----------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take or renew the named lease unless another holder has it past ``now``."""
        params = (name, holder, rows.epoch(until), rows.epoch(now))
        with self._write() as db:
            return db.execute(self.q["acquire_lease"], params).rowcount == 1

    def record_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker record."""
        with self._write() as db:
            db.execute(self.q["record_worker"], rows.worker_params(info))

    def remove_worker(self, worker_id: str) -> None:
        """Delete a worker record."""
        with self._write() as db:
            db.execute(self.q["remove_worker"], (worker_id,))

    def list_workers(self, alive_since: datetime) -> list[WorkerInfo]:
        """Workers that heartbeated at or after ``alive_since``, by id."""
        cursor = self._db().execute(self.q["list_workers"], (rows.epoch(alive_since),))
        return [rows.worker_from_row(row) for row in cursor]
