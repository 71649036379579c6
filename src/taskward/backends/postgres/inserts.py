"""Inserts: one job per round trip, unique keys, the caller's transaction, blocking callers.

- A job without a unique key: one autocommit ``INSERT … RETURNING`` (or the dispatch
  statement, see :mod:`~taskward.backends.postgres.dispatch`); several: one COPY
  (:mod:`~taskward.backends.postgres.bulk`).
- Unique inserts run in a transaction: advisory lock on the key, check, insert.
- With the caller's connection (async or sync) the same *plan* of statements runs inside a
  savepoint of the caller's transaction: the jobs exist if, and only if, the caller commits.
- Blocking inserts (sync producers) go through the sync pool from the calling thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import PoolClosed, PoolTimeout

from taskward.backends.postgres import rows
from taskward.backends.postgres.bulk import insert_stream
from taskward.backends.postgres.connections import (
    AConn,
    Connections,
    PooledConnection,
    drive_async,
    drive_sync,
    unavailable,
)
from taskward.backends.postgres.dispatch import NO_DISPATCH, Offers, plain_insert
from taskward.backends.sql.rows import evolve_job, job_from_new
from taskward.errors import InvalidJob, InvalidOptions
from taskward.jobs import UNIQUE_BLOCKING_STATES, Inserted, Job, JobState, NewJob

__all__ = ["Inserter"]

InsertPlan = Generator[tuple[str, Mapping[str, Any]], list[Any], list[Inserted]]


class Inserter:
    """Writes new jobs, on the pools or on a caller's connection."""

    def __init__(self, connections: Connections, offers: Offers) -> None:
        self._connections = connections
        self._offers = offers

    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs in one transaction; a unique clash returns the existing job as duplicate.

        With ``connection`` (a psycopg ``AsyncConnection`` or ``Connection`` in an open
        transaction) the jobs are written inside the caller's transaction, as a savepoint.
        """
        if not jobs:
            return []
        if connection is None:
            if all(new.unique_key is None for new in jobs):
                return await self._insert_plain(jobs, now)
            return await self._connections.run(lambda conn: self._insert_async(conn, jobs, now))
        if isinstance(connection, psycopg.AsyncConnection):
            return await self._insert_async(connection, jobs, now)
        if isinstance(connection, psycopg.Connection):
            # The caller's thread is blocked on this call, so its connection is ours meanwhile.
            return await asyncio.to_thread(self._insert_sync, connection, jobs, now)
        raise InvalidOptions(
            f"connection must be a psycopg Connection or AsyncConnection, got {type(connection)}"
        )

    async def _insert_plain(self, jobs: Sequence[NewJob], now: datetime) -> list[Inserted]:
        """Insert jobs without unique keys, each statement committing on its own.

        One job: one INSERT, one round trip (a transaction block would add a BEGIN and a
        COMMIT round trip for nothing). More: one COPY.
        """
        if len(jobs) > 1:
            stored = await insert_stream(
                self._connections, rows.batches(jobs), count=len(jobs), now=now
            )
            return [Inserted(job=job) for job in stored]
        name, params = self._offers.single_insert(jobs, now)
        try:
            try:
                found = await self._connections.fetchall(name, params)
            except NO_DISPATCH as exc:
                name, params = self._offers.without_dispatch(name, exc, jobs, now)
                found = await self._connections.fetchall(name, params)
            self._offers.note(name, jobs, found)
            return _inserted(jobs, found, now)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc

    def _insert_plan(self, jobs: Sequence[NewJob], now: datetime) -> InsertPlan:
        """The statements of an insert: yields (sql, params), is sent the rows each returned.

        One plan serves the pool's async connections and a caller's sync connection alike.
        """
        q = self._connections.q
        if all(new.unique_key is None for new in jobs):
            # No dispatch in a caller's transaction: the offer would stay locked until their
            # commit, and the worker taking it back would wait for it.
            name, params = plain_insert(jobs, now, dispatch=None)
            return _inserted(jobs, (yield q[name], params), now)
        out: list[Inserted] = []
        for new in jobs:
            if new.unique_key is not None:
                key = {"key": new.unique_key}
                yield q["lock_unique_key"], key
                found = yield q["find_unique"], key
                existing = _unique_match(found, new, now)
                if existing is not None:
                    out.append(Inserted(job=existing, duplicate=True))
                    continue
            name, params = rows.insert_statement(new, now)
            found = yield q[name], params
            job_id, key = found[0][0], found[0][-1]
            if new.unique_key is not None:
                yield q["remember_unique"], {"key": new.unique_key, "job_id": job_id}
            out.append(Inserted(job=job_from_new(new, job_id, now, partition_key=key)))
        return out

    async def _insert_async(
        self, conn: AConn, jobs: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        plan = self._insert_plan(jobs, now)
        try:
            if _outside_transaction(conn.autocommit, conn.info.transaction_status):
                await conn.execute(self._connections.q["join_transaction"])
            async with conn.transaction():
                inserted = await drive_async(conn, plan)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc
        return inserted

    def _insert_sync(
        self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        plan = self._insert_plan(jobs, now)
        try:
            if _outside_transaction(conn.autocommit, conn.info.transaction_status):
                conn.execute(self._connections.q["join_transaction"])
            with conn.transaction():  # a savepoint inside the caller's transaction
                inserted = drive_sync(conn, plan)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc
        return inserted

    def insert_blocking(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs from the calling thread; as :meth:`insert`, for sync producers.

        Without ``connection`` the jobs go through the sync pool, not through the event loop:
        a sync caller then costs one round trip and no thread hop. With a psycopg
        ``Connection`` in an open transaction, the jobs join that transaction.
        """
        if not jobs:
            return []
        if connection is not None:
            if not isinstance(connection, psycopg.Connection):
                raise InvalidOptions(
                    "a blocking enqueue needs a psycopg Connection (sync), got "
                    f"{type(connection)}; await enqueue_task for an AsyncConnection"
                )
            try:
                return self._insert_sync(connection, jobs, now)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise unavailable(exc) from exc
        try:
            pool = self._connections.open_sync_pool()
            try:
                conn = pool.getconn()
            except PoolClosed:  # close() ran since we took the pool: nothing was sent yet
                pool = self._connections.open_sync_pool()
                conn = pool.getconn()
        except (PoolTimeout, PoolClosed, psycopg.OperationalError) as exc:
            raise unavailable(exc) from exc
        try:
            if len(jobs) == 1 and jobs[0].unique_key is None:
                # Autocommit: the INSERT commits on its own, one round trip.
                return self._insert_one_sync(conn, jobs, now)
            return self._insert_sync(conn, jobs, now)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(exc) from exc
        finally:
            pool.putconn(conn)  # closed instead, if the pool closed meanwhile

    def _insert_one_sync(
        self, conn: PooledConnection, jobs: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        q = self._connections.q
        name, params = self._offers.single_insert(jobs, now)
        try:
            try:
                found = conn.run(q[name], params).fetchall()
            except NO_DISPATCH as exc:
                name, params = self._offers.without_dispatch(name, exc, jobs, now)
                found = conn.run(q[name], params).fetchall()
            self._offers.note(name, jobs, found)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc
        return _inserted(jobs, found, now)


def _inserted(jobs: Sequence[NewJob], found: list[Any], now: datetime) -> list[Inserted]:
    """Pair jobs with the ids their insert returned (identity order = row order).

    Each row's last column is the partition key the store gave the job. A row of
    ``insert_job_dispatch`` naming a worker: that job is already running there.
    """
    if len(found) == 1 and len(found[0]) >= 5 and found[0][1] is not None:
        job_id, worker_id, lease_until = found[0][:3]
        job = evolve_job(
            job_from_new(jobs[0], job_id, now, partition_key=found[0][-1]),
            state=JobState.RUNNING,
            attempt=1,
            attempted_at=now,
            attempted_by=worker_id,
            lease_until=lease_until,
        )
        return [Inserted(job=job)]
    stored = sorted(found, key=lambda row: row[0])
    return [
        Inserted(job=job_from_new(new, row[0], now, partition_key=row[-1]))
        for new, row in zip(jobs, stored, strict=True)
    ]


def _outside_transaction(autocommit: bool, status: psycopg.pq.TransactionStatus) -> bool:
    """True for a caller's connection whose (implicit) transaction has not begun yet.

    psycopg begins it with the first statement; ``transaction()`` on such an idle connection
    would instead open *and commit* a transaction of its own. Beginning it first makes our
    block a savepoint inside the caller's transaction. (In autocommit mode there is no
    caller's transaction: the jobs commit at once, in a transaction of their own.)
    """
    return not autocommit and status == psycopg.pq.TransactionStatus.IDLE


def _unique_match(found: list[Any], new: NewJob, now: datetime) -> Job | None:
    """The job that makes ``new`` a duplicate (memory.py's ``_find_unique``), or None."""
    if not found:
        return None
    job = rows.job_from_row(found[0])
    if new.unique_window is None:
        return job
    age = (now - job.inserted_at).total_seconds()
    return job if age <= new.unique_window and job.state in UNIQUE_BLOCKING_STATES else None
