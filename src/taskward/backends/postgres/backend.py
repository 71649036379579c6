"""PostgresBackend: many worker processes on many hosts against one PostgreSQL database.

Built on psycopg 3 with its async connection pool (one driver for the async worker *and* sync
callers such as Django views, the CLI and transactional enqueue from a plain ``psycopg``
connection; pipeline, COPY and ``notifies()`` included). Every statement lives in
``queries.sql`` beside this module.

- **Claims** use ``FOR UPDATE SKIP LOCKED`` in batches, so workers never block each other;
  outcomes of a batch are written by *one* fenced ``UPDATE … FROM unnest(…)``.
- **Wake-ups**: every insert statement notifies (``pg_notify``) the queues of the pending jobs it
  inserted (so a job enqueued inside the application's own transaction wakes workers when, and
  only if, it commits); promotions, retries and resumes notify too. One dedicated listening
  connection per backend wakes local waiters; polling stays as the fallback when it is down.
- **Uniqueness** is race-free across processes: inserts of one unique key serialise on a
  transaction-scoped advisory lock before the check.
- **Migrations** run under an advisory lock, so several processes may start at once.

URL: ``postgresql://user:pass@host:port/db?schema=myapp&pool_max_size=10``. taskward's own
query parameters (``schema``, ``pool_min_size``, ``pool_max_size``, ``prepare``) are removed
before connecting; all others go to libpq. ``schema`` lets several applications share one
database; ``prepare=false`` is for a transaction pooler (PgBouncer in transaction mode): no
server-side prepared statements and no startup options, so the database's time zone must be
UTC (``ALTER DATABASE … SET timezone TO 'UTC'``; checked at connect).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import (
    Callable,
    Collection,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from taskward.backends.base import Capability
from taskward.backends.postgres import rows
from taskward.backends.sql import load_queries
from taskward.backends.sql.migrate import load_migrations
from taskward.backends.sql.rows import evolve_job, job_from_new, jobs_from_batch, with_ids
from taskward.errors import (
    BackendUnavailable,
    InvalidJob,
    InvalidOptions,
    JobNotFound,
    NotSupported,
)
from taskward.jobs import (
    FINISHED_STATES,
    UNIQUE_BLOCKING_STATES,
    Inserted,
    Job,
    JobFilter,
    JobState,
    JobUpdate,
    LeaseReport,
    NewJob,
    NewJobBatch,
    Page,
    Schedule,
    Stats,
    WorkerInfo,
)

POSTGRES_SQL = "taskward.backends.postgres"  # the package holding queries.sql, migrations/

try:
    import psycopg
    from psycopg.abc import Buffer
    from psycopg.adapt import AdaptersMap, Loader
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise NotSupported(
        "the postgres backend needs psycopg 3: pip install 'taskward[postgres]'"
    ) from exc

__all__ = ["PostgresBackend", "parse_postgres_url"]


class _JsonLoader(Loader):
    """Loads json/jsonb columns: ``[]`` and ``{}`` (most payload columns) without a parse.

    Anything else is decoded to str first: ``json.loads`` on bytes sniffs the encoding.
    """

    def load(self, data: Buffer) -> Any:
        """Decode one JSON value (a fresh list or dict each time: a Job's are its own)."""
        if len(data) == 2:
            if data == b"[]":
                return []
            if data == b"{}":
                return {}
        return json.loads(bytes(data).decode())


def _row_adapters() -> AdaptersMap:
    """The psycopg adapters with a faster loader for the JSON columns every job row carries.

    JSON dominated decoding a job row: a claim (query included) went from about 34 to 21 us
    of CPU per job. (Array loaders stay psycopg's: its compiled row loader calls them
    directly, so a Python override would never run.)
    """
    adapters = AdaptersMap(psycopg.adapters)
    for name in ("json", "jsonb"):
        adapters.register_loader(name, _JsonLoader)
    return adapters


ROW_ADAPTERS: Final = _row_adapters()


class _PooledConnection(psycopg.Connection[Any]):
    """A connection of the sync pool, keeping one cursor for taskward's statements.

    ``Connection.execute`` makes a new cursor for every statement: about 20 µs of client CPU,
    a third of a one-job insert's. A statement run by :meth:`run` has its rows read before
    the next one runs on the connection, so one cursor serves them all.
    """

    _kept: psycopg.Cursor[Any] | None = None

    def run(self, query: str, params: Mapping[str, Any] | None = None) -> psycopg.Cursor[Any]:
        """Execute ``query`` on the kept cursor (made on first use) and return it."""
        cursor = self._kept
        if cursor is None or cursor.closed:
            cursor = self._kept = self.cursor()
        return cursor.execute(query, params)


class _AsyncPooledConnection(psycopg.AsyncConnection[Any]):
    """A connection of the async pool, keeping one cursor (see :class:`_PooledConnection`)."""

    _kept: psycopg.AsyncCursor[Any] | None = None

    async def run(
        self, query: str, params: Mapping[str, Any] | None = None
    ) -> psycopg.AsyncCursor[Any]:
        """Execute ``query`` on the kept cursor (made on first use) and return it."""
        cursor = self._kept
        if cursor is None or cursor.closed:
            cursor = self._kept = self.cursor()
        return await cursor.execute(query, params)


logger = logging.getLogger(__name__)
T = TypeVar("T")
# Sync pools a forked child found open: kept referenced, so that no finaliser closes them.
_INHERITED_POOLS: list[Any] = []
AConn = psycopg.AsyncConnection[Any]
SCHEMA_RE: Final = re.compile(r"[a-z_][a-z0-9_]{0,47}")
OWN_PARAMS: Final = frozenset({"schema", "pool_min_size", "pool_max_size", "prepare"})
PRUNE_BATCH: Final = 10_000
# Listings count matches exactly up to this many, then take the planner's estimate.
EXACT_COUNT_CAP: Final = 10_000
# Statistics count each queue's jobs of one finished state exactly up to this many, then take
# the planner's estimate (waiting and running jobs are always exact). Counting the cap's rows
# in the (queue, state, id) index costs ~2.5 ms per pair that reaches it.
STATS_EXACT_CAP: Final = 10_000
LISTEN_RETRY_MAX: Final = 2.0
# Names PostgreSQL may report for a UTC session time zone.
UTC_ZONES: Final = frozenset(
    {"UTC", "ETC/UTC", "UCT", "ETC/UCT", "GMT", "ETC/GMT", "ZULU", "UNIVERSAL", "ETC/UNIVERSAL"}
)
# Bound on a lease-keeping statement (and on opening its connection), in seconds.
CONTROL_TIMEOUT: Final = 10.0
# Characters per COPY write, at least (smaller batches are joined first; a bulk enqueue's
# batch of 100 plain jobs is about 12,000): the server stores one write's rows while the
# client builds the next batch.
COPY_WRITE_CHARS: Final = 8192
DISPATCH_PREFIX: Final = "run:"
# A NOTIFY payload holds at most 8,000 bytes; the dispatched row carries task, args and kwargs
# (at most 4 bytes a character) besides about 600 bytes of other columns.
DISPATCH_MAX_CHARS: Final = 1_500
DISPATCH_STATEMENTS: Final = frozenset({"insert_job_dispatch", "insert_job_probe"})
# The store refuses insert_job_dispatch: migration 0005 not applied (migrate_on_start=false)
# or a producer role without DELETE on taskward_offers. Dispatch is then switched off.
_NO_DISPATCH: Final = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.InsufficientPrivilege,
)
InsertPlan = Generator[tuple[str, Mapping[str, Any]], list[Any], list[Inserted]]


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidOptions(f"invalid postgres URL parameter {name}={value!r}: use true or false")


def _int(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise InvalidOptions(
            f"invalid postgres URL parameter {name}={value!r}: an int >= {minimum}"
        )
    return number


def parse_postgres_url(url: str) -> tuple[str, dict[str, str]]:
    """Split ``url`` into the libpq connection URL and taskward's own parameters."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"postgres", "postgresql"}:
        raise InvalidOptions(f"invalid PostgreSQL URL {url!r}: use postgresql://user@host/db")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_PARAMS}
    rest = [(k, v) for k, v in query if k not in OWN_PARAMS]
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    return conninfo, own


def _unavailable(exc: BaseException) -> BackendUnavailable:
    return BackendUnavailable(f"PostgreSQL is unavailable: {exc}".strip())


class PostgresBackend:
    """Jobs in PostgreSQL tables, shared by every process and host that connects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conninfo, own = parse_postgres_url(url)
        schema = own.get("schema", "public")
        if not SCHEMA_RE.fullmatch(schema):
            raise InvalidOptions(
                f"invalid schema {schema!r}: use 1-48 characters from [a-z0-9_], "
                "not starting with a digit"
            )
        self.schema = schema
        self.min_size = _int("pool_min_size", own.get("pool_min_size", "1"), 0)
        self.max_size = _int("pool_max_size", own.get("pool_max_size", "10"), 1)
        if self.max_size < max(self.min_size, 1):
            raise InvalidOptions("pool_max_size must be >= pool_min_size and >= 1")
        self.prepare = _bool("prepare", own.get("prepare", "true"))
        self.channel = f"taskward_{schema}"
        self.q = {name: self._fill(sql) for name, sql in load_queries(POSTGRES_SQL).items()}
        self._pool: AsyncConnectionPool[_AsyncPooledConnection] | None = None
        self._open_lock = asyncio.Lock()
        self._sync_pool: ConnectionPool[_PooledConnection] | None = None
        self._sync_pid = 0  # the process that opened the sync pool (a forked child needs its own)
        self._sync_lock = threading.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._control_conn: AConn | None = None
        self._control_lock = asyncio.Lock()
        self._control_epoch = 0  # close() moves it on: a call waiting then opens nothing
        self._listening = False
        self._waiters: dict[asyncio.Future[None], frozenset[str]] = {}
        self._notified: dict[str, int] = {}
        self._notified_all = 0
        self._seen_at_fetch: dict[str, tuple[int, int]] = {}
        # Workers of this process that offered slots: their dispatched jobs go to these.
        self._receivers: dict[str, Callable[[Job], None]] = {}
        self._dispatch_ok = True  # False once the store refused insert_job_dispatch
        self._offers_seen: dict[str, bool] = {}  # by queue: did the last insert see an offer?

    def _fill(self, sql: str) -> str:
        return (
            sql.replace("{schema}", f'"{self.schema}"')
            .replace("{channel}", self.channel)
            .replace("{job_columns}", rows.JOB_COLUMNS)
        )

    def __repr__(self) -> str:
        return f"<PostgresBackend schema={self.schema} pool={self.min_size}..{self.max_size}>"

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Persistent, multi-process, transactional enqueue and LISTEN/NOTIFY wake-ups."""
        return frozenset(
            {
                Capability.PERSISTENT,
                Capability.MULTI_PROCESS,
                Capability.STORES_JOBS,
                Capability.TRANSACTIONAL_ENQUEUE,
                Capability.NOTIFY,
                Capability.BLOCKING_INSERT,
                Capability.STREAMED_INSERT,
                Capability.DISPATCH,
            }
        )

    # -- connections -----------------------------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "context": ROW_ADAPTERS}
        if self.prepare:
            kwargs["options"] = "-c TimeZone=UTC"
        else:
            # Behind a transaction pooler: no server-side prepared statements, and no startup
            # options either (PgBouncer refuses them); the database's own time zone must be
            # UTC, which the probe connection checks.
            kwargs["prepare_threshold"] = None
        return kwargs

    def _check_time_zone(self, zone: str | None) -> None:
        """Refuse a session whose time zone is not UTC (only ``prepare=false`` can get one).

        Every timestamp is read back in the session's zone, and a job's times must be UTC.
        """
        if (zone or "").upper() not in UTC_ZONES:
            raise InvalidOptions(
                f"the PostgreSQL session time zone is {zone!r}, not UTC: with prepare=false "
                "taskward sends no startup options (PgBouncer refuses them), so set it on the "
                "server side: ALTER DATABASE <db> SET timezone TO 'UTC' (or ALTER ROLE ... "
                "SET timezone TO 'UTC')"
            )

    async def open(self) -> None:
        """Open the connection pool (idempotent); the listener opens on the first wait."""
        await self._get_pool()

    async def _get_pool(self) -> AsyncConnectionPool[_AsyncPooledConnection]:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._pool is None:
                # One direct connection first: a wrong host or password fails at once with
                # libpq's own message, where the pool would retry until its timeout.
                try:
                    probe = await psycopg.AsyncConnection.connect(
                        self.conninfo, **self._connect_kwargs()
                    )
                except psycopg.OperationalError as exc:
                    raise _unavailable(exc) from exc
                zone = probe.info.parameter_status("TimeZone")
                await probe.close()
                self._check_time_zone(zone)
                pool = AsyncConnectionPool(
                    self.conninfo,
                    connection_class=_AsyncPooledConnection,
                    min_size=self.min_size,
                    max_size=self.max_size,
                    kwargs=self._connect_kwargs(),
                    open=False,
                    timeout=10.0,
                    name="taskward",
                )
                try:
                    await pool.open(wait=self.min_size > 0, timeout=10.0)
                except (PoolTimeout, psycopg.OperationalError) as exc:
                    await pool.close()
                    raise _unavailable(exc) from exc
                self._pool = pool
        return self._pool

    def _ensure_listener(self) -> None:
        """Start the LISTEN connection, on the first wait.

        A producer-only process (a web app) then never opens it: one connection fewer per
        process, and no NOTIFY traffic of its own inserts to decode (it halved enqueue speed).
        """
        if self._listener is None and self._pool is not None:
            self._listener = asyncio.create_task(self._listen(), name="taskward-pg-listen")

    async def close(self) -> None:
        """Close the listener and the pool (idempotent); wakes any waiter."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        pool, self._pool = self._pool, None
        self._control_epoch += 1
        control, self._control_conn = self._control_conn, None
        if control is not None:
            await control.close()
        self._wake(None)
        if pool is not None:
            await pool.close()
        # Not under _sync_lock: a thread opening the pool may hold it for a connect timeout.
        sync_pool, self._sync_pool = self._sync_pool, None
        if sync_pool is not None and self._sync_pid == os.getpid():
            await asyncio.to_thread(sync_pool.close)

    @asynccontextmanager
    async def _conn(self) -> Any:
        """A pooled connection; connection failures become :class:`BackendUnavailable`."""
        pool = await self._get_pool()
        try:
            async with pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise _unavailable(exc) from exc

    async def _control_fetchall(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        """Run one lease-keeping statement on the connection kept for them.

        Heartbeats, lease extensions, worker records and leader election use a connection of
        their own, outside the pool: with the pool busy (job bodies enqueueing or reporting
        progress, a slow claim), a heartbeat queued behind them could miss its lease, and
        the rescue would run live jobs a second time. Each statement is bounded by
        ``CONTROL_TIMEOUT`` (a silent network must not hang the heartbeat), and one that
        failed on an old connection (a server restart) is retried once on a new one: all of
        them can safely run twice.
        """
        epoch = self._control_epoch
        async with self._control_lock:
            kept = self._control_conn is not None and not self._control_conn.closed
            try:
                return await self._control_once(epoch, name, params)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not kept:
                    raise _unavailable(exc) from exc
            try:  # the kept connection had died (a server restart): once more, on a new one
                return await self._control_once(epoch, name, params)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise _unavailable(exc) from exc

    async def _control_once(self, epoch: int, name: str, params: Mapping[str, Any]) -> list[Any]:
        """One try of :meth:`_control_fetchall`; a failed connection is dropped."""
        if epoch != self._control_epoch:
            raise BackendUnavailable("the PostgreSQL backend was closed")
        try:
            async with asyncio.timeout(CONTROL_TIMEOUT):
                conn = await self._control_connection()
                cursor = await conn.execute(self.q[name], params)
                found: list[Any] = await cursor.fetchall() if cursor.description else []
                return found
        except TimeoutError as exc:
            await self._drop_control()
            raise BackendUnavailable(
                f"PostgreSQL did not answer within {CONTROL_TIMEOUT:g} s"
            ) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError):
            await self._drop_control()
            raise

    async def _control_connection(self) -> AConn:
        conn = self._control_conn
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self.conninfo, connect_timeout=int(CONTROL_TIMEOUT), **self._connect_kwargs()
            )
            self._control_conn = conn
        return conn

    async def _drop_control(self) -> None:
        conn, self._control_conn = self._control_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(self, fn: Callable[[AConn], Coroutine[Any, Any, T]]) -> T:
        async with self._conn() as conn:
            return await fn(conn)

    async def _fetchall(self, name: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        async with self._conn() as conn:
            cursor = await conn.run(self.q[name], params)
            found: list[Any] = await cursor.fetchall()
            return found

    async def _execute(self, name: str, params: Mapping[str, Any] | None = None) -> int:
        async with self._conn() as conn:
            cursor = await conn.run(self.q[name], params)
            count: int = cursor.rowcount
            return count

    # -- schema ----------------------------------------------------------------------------
    async def migrate(self) -> None:
        """Apply pending migrations in one transaction, under an advisory lock."""

        async def apply(conn: AConn) -> None:
            async with conn.transaction():
                await _drive_async(conn, self._migration_plan())

        await self._run(apply)

    def migrate_blocking(self) -> None:
        """:meth:`migrate` from the calling thread, on the sync pool (sync producers)."""
        try:
            with self._get_sync_pool().connection() as conn, conn.transaction():
                _drive_sync(conn, self._migration_plan())
        except (PoolTimeout, PoolClosed, psycopg.OperationalError) as exc:
            raise _unavailable(exc) from exc

    def _migration_plan(self) -> Generator[tuple[Any, Any], list[Any], None]:
        """The statements of :meth:`migrate`: yields (sql, params), is sent each one's rows."""
        yield self.q["migration_lock"], {"schema": self.schema}
        yield self.q["create_schema"], None
        yield self.q["create_migrations_table"], None
        applied = {row[0] for row in (yield self.q["applied_migrations"], None)}
        for migration in load_migrations(POSTGRES_SQL):
            if migration.version in applied:
                continue
            yield self._fill(migration.sql).encode(), None
            yield self.q["record_migration"], {"version": migration.version, "name": migration.name}

    # -- produce ---------------------------------------------------------------------------
    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs in one transaction; a unique clash returns the existing job as duplicate.

        With ``connection`` (a psycopg ``AsyncConnection`` or ``Connection`` in an open
        transaction) the jobs are written inside the caller's transaction, as a savepoint: they
        exist if, and only if, the caller commits.
        """
        if not jobs:
            return []
        if connection is None:
            if all(new.unique_key is None for new in jobs):
                return await self._insert_plain(jobs, now)
            return await self._run(lambda conn: self._insert_async(conn, jobs, now))
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
        COMMIT round trip for nothing). More: one COPY (see :meth:`insert_stream`).
        """
        if len(jobs) > 1:
            stored = await self.insert_stream(rows.batches(jobs), count=len(jobs), now=now)
            return [Inserted(job=job) for job in stored]
        name, params = self._single_insert(jobs, now)
        try:
            try:
                found = await self._fetchall(name, params)
            except _NO_DISPATCH as exc:
                name, params = self._without_dispatch(name, exc, jobs, now)
                found = await self._fetchall(name, params)
            self._note_offers(name, jobs, found)
            return _inserted(jobs, found, now)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc

    async def insert_stream(
        self, batches: Iterable[NewJobBatch], *, count: int, now: datetime
    ) -> list[Job]:
        """Insert ``count`` jobs without unique keys by one COPY, written batch by batch.

        One transaction: the rows take their ids from the identity as the server reads them
        (COPY has no RETURNING; ``bulk_ids`` finds them after). Each batch is sent as soon
        as it is built, so the server stores rows while the caller builds the next one. An
        exception from ``batches`` cancels the COPY: no job is stored. The queues given
        pending jobs are notified after the commit.
        """
        try:
            return await self._run(lambda conn: self._copy_in(conn, batches, count, now))
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store these jobs: {exc}") from exc

    async def _copy_in(
        self, conn: AConn, batches: Iterable[NewJobBatch], count: int, now: datetime
    ) -> list[Job]:
        failed: list[BaseException] = []
        try:
            async with conn.transaction():
                cursor = await conn.execute(self.q["bulk_floor"])
                (floor,) = cast(tuple[int], await cursor.fetchone())
                async with conn.cursor() as cur, cur.copy(self.q["copy_jobs"]) as copy:
                    jobs, queues = await _copy_batches(copy, batches, failed, floor, count, now)
                cursor = await conn.execute(self.q["bulk_ids"], {"floor": floor, "n": count})
                _last, ids = cast(tuple[int, list[int] | None], await cursor.fetchone())
                if ids is not None:
                    # Another session drew ids during the COPY: the span is not all ours.
                    if len(ids) != count:  # raised inside the transaction: nothing is stored
                        raise BackendUnavailable(
                            f"the ids of the {count} jobs could not be read back (the id "
                            "sequence of taskward_jobs was set back during the insert); "
                            "nothing was stored: retry"
                        )
                    jobs = with_ids(jobs, ids)
        except _ChunkFailed:
            raise failed[0] from None  # the caller's own error, after the COPY was cancelled
        except psycopg.errors.QueryCanceled as exc:
            raise BackendUnavailable(
                f"PostgreSQL cancelled the bulk insert of {count} jobs ({exc}): it is one COPY; "
                "split it into smaller enqueue_many calls, or allow it more time "
                "(statement_timeout)"
            ) from exc
        # After the commit, by a statement of its own: a notifying commit holds a cluster-wide
        # lock until it is flushed, and the bulk's commit flushes megabytes of WAL.
        if queues:
            try:
                await conn.execute(self.q["notify_queues"], {"queues": sorted(queues)})
            except psycopg.Error as exc:
                # The jobs are stored: failing the call now would invite a duplicate retry.
                logger.warning("jobs stored; their wake-up failed (%s): polling finds them", exc)
        return jobs

    def _insert_plan(self, jobs: Sequence[NewJob], now: datetime) -> InsertPlan:
        """The statements of an insert: yields (sql, params), is sent the rows each returned.

        One plan serves the pool's async connections and a caller's sync connection alike.
        """
        if all(new.unique_key is None for new in jobs):
            # No dispatch in a caller's transaction: the offer would stay locked until their
            # commit, and the worker taking it back would wait for it.
            name, params = _plain_insert(jobs, now, dispatch=None)
            return _inserted(jobs, (yield self.q[name], params), now)
        out: list[Inserted] = []
        for new in jobs:
            if new.unique_key is not None:
                key = {"key": new.unique_key}
                yield self.q["lock_unique_key"], key
                found = yield self.q["find_unique"], key
                existing = _unique_match(found, new, now)
                if existing is not None:
                    out.append(Inserted(job=existing, duplicate=True))
                    continue
            name, params = rows.insert_statement(new, now)
            found = yield self.q[name], params
            job_id = found[0][0]
            if new.unique_key is not None:
                yield self.q["remember_unique"], {"key": new.unique_key, "job_id": job_id}
            out.append(Inserted(job=job_from_new(new, job_id, now)))
        return out

    async def _insert_async(
        self, conn: AConn, jobs: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        plan = self._insert_plan(jobs, now)
        try:
            if _outside_transaction(conn.autocommit, conn.info.transaction_status):
                await conn.execute(self.q["join_transaction"])
            async with conn.transaction():
                inserted = await _drive_async(conn, plan)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise _unavailable(exc) from exc
        return inserted

    def _insert_sync(
        self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        plan = self._insert_plan(jobs, now)
        try:
            if _outside_transaction(conn.autocommit, conn.info.transaction_status):
                conn.execute(self.q["join_transaction"])
            with conn.transaction():  # a savepoint inside the caller's transaction
                inserted = _drive_sync(conn, plan)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc
        return inserted

    def insert_blocking(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs from the calling thread; as :meth:`insert`, for sync producers.

        Without ``connection`` the jobs go through a second, thread-safe pool of sync
        connections (opened on first use, up to ``pool_max_size``), not through the event
        loop: a sync caller then costs one round trip and no thread hop. With a psycopg
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
                raise _unavailable(exc) from exc
        try:
            pool = self._get_sync_pool()
            try:
                conn = pool.getconn()
            except PoolClosed:  # close() ran since we took the pool: nothing was sent yet
                pool = self._get_sync_pool()
                conn = pool.getconn()
        except (PoolTimeout, PoolClosed, psycopg.OperationalError) as exc:
            raise _unavailable(exc) from exc
        try:
            if len(jobs) == 1 and jobs[0].unique_key is None:
                # Autocommit: the INSERT commits on its own, one round trip.
                return self._insert_one_sync(conn, jobs, now)
            return self._insert_sync(conn, jobs, now)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise _unavailable(exc) from exc
        finally:
            pool.putconn(conn)  # closed instead, if the pool closed meanwhile

    def _insert_one_sync(
        self, conn: _PooledConnection, jobs: Sequence[NewJob], now: datetime
    ) -> list[Inserted]:
        name, params = self._single_insert(jobs, now)
        try:
            try:
                found = conn.run(self.q[name], params).fetchall()
            except _NO_DISPATCH as exc:
                name, params = self._without_dispatch(name, exc, jobs, now)
                found = conn.run(self.q[name], params).fetchall()
            self._note_offers(name, jobs, found)
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            raise InvalidJob(f"PostgreSQL cannot store this job: {exc}") from exc
        return _inserted(jobs, found, now)

    def _get_sync_pool(self) -> ConnectionPool[_PooledConnection]:
        pool = self._sync_pool
        if pool is not None and self._sync_pid == os.getpid():
            return pool
        with self._sync_lock:  # like the async pool, it reopens on use after close()
            pool = self._sync_pool
            if pool is not None and self._sync_pid != os.getpid():
                # A forked child: the parent's sockets are not ours to use, nor to close (a
                # close, even by the garbage collector, would end the parent's sessions).
                _INHERITED_POOLS.append(pool)
                self._sync_pool = pool = None
            if pool is None:
                # One direct connection first: a wrong host or a server down fails at once
                # with libpq's message, where the pool would retry until its timeout.
                try:
                    probe = psycopg.connect(
                        self.conninfo,
                        connect_timeout=int(CONTROL_TIMEOUT),
                        **self._connect_kwargs(),
                    )
                except psycopg.OperationalError as exc:
                    raise _unavailable(exc) from exc
                zone = probe.info.parameter_status("TimeZone")
                probe.close()
                self._check_time_zone(zone)
                pool = ConnectionPool(
                    self.conninfo,
                    connection_class=_PooledConnection,
                    min_size=min(1, self.max_size),
                    max_size=self.max_size,
                    kwargs=self._connect_kwargs(),
                    open=False,
                    timeout=10.0,
                    name="taskward-sync",
                )
                pool.open(wait=False)
                self._sync_pool, self._sync_pid = pool, os.getpid()
            return pool

    # -- work ------------------------------------------------------------------------------
    async def fetch(
        self, *, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Claim up to ``limit`` pending jobs of ``queue`` in priority, then schedule order."""
        self._seen_at_fetch[queue] = (self._notified.get(queue, 0), self._notified_all)
        if limit <= 0:
            return []
        params = {
            "queue": queue,
            "limit": limit,
            "worker_id": worker_id,
            "now": now,
            "lease_until": lease_until,
        }
        claimed = await self._fetchall("fetch_jobs", params)
        claimed.sort(key=rows.claim_order)
        return [rows.job_from_row(row) for row in claimed]

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Extend this worker's leases; report jobs lost or with a cancel request."""
        if not job_ids:
            return LeaseReport()
        ids = list(job_ids)
        params = {"ids": ids, "worker_id": worker_id, "lease_until": lease_until}
        held = await self._control_fetchall("extend_leases", params)
        cancel = frozenset(job_id for job_id, requested in held if requested)
        lost = frozenset(ids) - {job_id for job_id, _ in held}
        return LeaseReport(lost=lost, cancel_requested=cancel)

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        """Write each outcome only if the job is still running at that attempt, owned by us.

        One statement for the batch. A batch naming a job twice is written one update at a
        time (the second must see the first). A row the database refuses (a result it cannot
        store) is retried alone, then written without its result, so that one bad outcome
        never blocks the others or leaves its job running forever.
        """
        if not updates:
            return []
        if len({u.job_id for u in updates}) < len(updates):
            return [(await self.finish([u], worker_id=worker_id))[0] for u in updates]
        try:
            written = await self._finish_batch(updates, worker_id, drop_results=False)
        except psycopg.DataError:
            if len(updates) > 1:
                return [(await self.finish([u], worker_id=worker_id))[0] for u in updates]
            logger.error(
                "job %s: the database refused its result; storing it without one",
                updates[0].job_id,
                exc_info=True,
            )
            written = await self._finish_batch(updates, worker_id, drop_results=True)
        return [u.job_id in written for u in updates]

    async def _finish_batch(
        self, updates: Sequence[JobUpdate], worker_id: str, *, drop_results: bool
    ) -> set[int]:
        params = rows.update_arrays(updates, worker_id, drop_results=drop_results)
        return {row[0] for row in await self._fetchall("finish_jobs", params)}

    async def set_progress(self, job_id: int, progress: Any, *, worker_id: str) -> bool:
        """Store progress of a running job this worker owns."""
        params = {"id": job_id, "worker_id": worker_id, "progress": rows.dumps(progress)}
        return await self._execute("set_progress", params) == 1

    # -- wake-ups --------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Keep one LISTEN connection open; reconnect with backoff; wake waiters on NOTIFY."""
        delay = 0.05
        reconnecting = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, **self._connect_kwargs()
                )
            except psycopg.OperationalError as exc:
                logger.debug("LISTEN connection failed (%s); polling meanwhile", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_MAX)
                continue
            try:
                async with conn:
                    await conn.execute(self.q["listen"])
                    self._listening = True
                    delay = 0.05
                    pool = self._pool
                    if reconnecting and pool is not None:
                        # After a server restart every pooled connection is dead but looks
                        # idle: drop them now rather than fail the next statement on each.
                        await pool.check()
                    if reconnecting or self._receivers:
                        # Jobs may have arrived while nobody listened, and idle workers could
                        # not offer slots without a listener: wake everyone once.
                        self._wake(None)
                    else:
                        # The first LISTEN starts with the first wait: a job inserted just
                        # before it took effect sent its NOTIFY to nobody. Look once.
                        await self._wake_if_pending(conn)
                    reconnecting = True
                    async for notice in conn.notifies():
                        if notice.payload.startswith(DISPATCH_PREFIX):
                            self._deliver(notice.payload[len(DISPATCH_PREFIX) :])
                        else:
                            self._wake(notice.payload)
            except psycopg.Error as exc:
                # Any database error (lost connection, schema not migrated yet): never let the
                # listener die silently; polling covers the gap until it is back.
                logger.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self._listening = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_MAX)

    async def _wake_if_pending(self, conn: AConn) -> None:
        """Wake the current waiters of every queue that has a claimable job."""
        queues = sorted({q for names in self._waiters.values() for q in names})
        if any(not names for names in self._waiters.values()):
            cursor = await conn.execute(self.q["pending_queues"])
        else:
            cursor = await conn.execute(self.q["pending_queues_in"], {"queues": queues})
        for (queue,) in await cursor.fetchall():
            self._wake(queue)

    def _single_insert(self, jobs: Sequence[NewJob], now: datetime) -> tuple[str, dict[str, Any]]:
        """The insert of jobs without unique keys from the pool: may dispatch a lone job."""
        if not self._dispatch_ok or len(jobs) != 1:
            return _plain_insert(jobs, now, dispatch=None)
        return _plain_insert(jobs, now, dispatch=self._offers_seen.get(jobs[0].queue, False))

    def _note_offers(self, name: str, jobs: Sequence[NewJob], found: list[Any]) -> None:
        """Remember whether the queue had a standing offer (the next insert dispatches then)."""
        if name in DISPATCH_STATEMENTS and found:
            self._offers_seen[jobs[0].queue] = bool(found[0][3])

    def _without_dispatch(
        self, name: str, exc: psycopg.Error, jobs: Sequence[NewJob], now: datetime
    ) -> tuple[str, dict[str, Any]]:
        """The insert to run again when ``exc`` refused a dispatch statement (else re-raise)."""
        if name not in DISPATCH_STATEMENTS:
            raise exc
        self._no_dispatch(exc)
        return _plain_insert(jobs, now, dispatch=None)

    def _no_dispatch(self, exc: psycopg.Error) -> None:
        """Insert without dispatch from now on: the store lacks migration 0005, or our rights."""
        was, self._dispatch_ok = self._dispatch_ok, False
        if not was:
            return
        logger.warning(
            "direct dispatch is off for this process (%s): run `taskward migrate`, or grant "
            "this role DELETE on taskward_offers; jobs are claimed as usual meanwhile",
            exc,
        )

    def _deliver(self, payload: str) -> None:
        """Hand a job dispatched to a worker of this process to it (others' are skipped unread).

        ``payload``: the worker id's length, ":", the worker id, the job's row as JSON.
        """
        try:
            size, _, rest = payload.partition(":")
            worker_id, row = rest[: int(size)], rest[int(size) :]
            receive = self._receivers.get(worker_id)
            if receive is None:
                return  # another process's worker
            receive(rows.job_from_json(row))
        except Exception:
            # The worker finds the job itself after its wait (Worker._settle adopts it).
            logger.exception("a job dispatched to this process could not be handed over")

    async def offer(
        self,
        *,
        worker_id: str,
        queue: str,
        lease_seconds: float,
        now: datetime,
        receive: Callable[[Job], None],
    ) -> bool:
        """Offer one slot of ``queue`` to producers while the LISTEN connection is up.

        Without it the dispatched job's NOTIFY would reach nobody (PgBouncer in transaction
        mode, a reconnect in progress): no offer then, and jobs are claimed as usual.
        """
        if not self.prepare or not self._dispatch_ok:
            # prepare=false means PgBouncer in transaction mode: a LISTEN through it may well
            # "succeed" on a server connection that other clients then get.
            return False
        # Known before the listener is up: its first LISTEN then wakes this worker to offer.
        self._receivers[worker_id] = receive
        if not self._listening:
            self._ensure_listener()
            return False
        params = {
            "worker_id": worker_id, "queue": queue, "lease_seconds": lease_seconds, "now": now
        }  # fmt: skip
        try:
            await self._execute("offer_slot", params)
        except _NO_DISPATCH as exc:
            self._no_dispatch(exc)
            return False
        return True

    async def withdraw(self, *, worker_id: str, queue: str) -> bool:
        """Take the offer back; False if a producer took it (its job is on its way)."""
        try:
            found = await self._fetchall("withdraw_slot", {"worker_id": worker_id, "queue": queue})
        except _NO_DISPATCH as exc:  # no DELETE right: it may have been taken, look for it
            self._no_dispatch(exc)
            return False
        return bool(found)

    async def dispatched_to(
        self, *, worker_id: str, queue: str, known: Collection[int]
    ) -> list[Job]:
        """The running jobs of ``queue`` leased to ``worker_id`` but not in ``known``."""
        params = {"worker_id": worker_id, "queue": queue, "known": list(known)}
        return [rows.job_from_row(row) for row in await self._fetchall("dispatched_to", params)]

    def _wake(self, queue: str | None) -> None:
        """Wake waiters of ``queue`` (of every queue when None)."""
        if queue is None:
            self._notified_all += 1
        else:
            self._notified[queue] = self._notified.get(queue, 0) + 1
        for future, queues in self._waiters.items():
            if not future.done() and (queue is None or not queues or queue in queues):
                future.set_result(None)

    async def wait_for_jobs(self, queues: Collection[str], *, timeout: float) -> None:
        """Return on a NOTIFY for one of ``queues``, or after ``timeout`` seconds (polling).

        Returns at once if a notification for one of ``queues`` arrived since this
        instance's last fetch of it, so a wake-up between that fetch and this wait is not lost.
        """
        self._ensure_listener()
        names = frozenset(queues)
        for queue in names:
            seen = self._seen_at_fetch.get(queue)
            if seen is not None and seen != (self._notified.get(queue, 0), self._notified_all):
                return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[future] = names
        try:
            await asyncio.wait({future}, timeout=timeout)
        finally:
            del self._waiters[future]

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (otherwise waits fall back to polling)."""
        return self._listening

    # -- maintain --------------------------------------------------------------------------
    async def promote_due(self, *, now: datetime) -> int:
        """Move due scheduled/retryable jobs to pending (notifying their queues); how many."""
        promoted = await self._fetchall("promote_due", {"now": now})
        return sum(count for _, count, _ in promoted)

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        """Return running jobs whose lease expired before ``now``, by id."""
        found = await self._fetchall("expired_leases", {"now": now, "limit": limit})
        return [rows.job_from_row(row) for row in found]

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Count jobs finished since ``since`` per UTC minute and state (one index scan)."""
        found = await self._fetchall("finished_per_minute", {"since": since})
        return [(minute, JobState(state), n) for minute, state, n in found]

    async def prune(self, *, before: Mapping[JobState, datetime]) -> int:
        """Delete finished jobs of each given state that finished before its cutoff.

        Deletes in batches of 10,000 so that no transaction holds many row locks for long.
        """
        total = 0
        for state, cutoff in before.items():
            if state not in FINISHED_STATES:
                continue
            params = {"state": state.value, "before": cutoff, "limit": PRUNE_BATCH}
            while True:
                deleted = await self._execute("prune_state", params)
                total += deleted
                if deleted < PRUNE_BATCH:
                    break
        return total

    # -- admin -----------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job:
        """Return one job; raise ``JobNotFound``."""
        found = await self._fetchall("get_job", {"id": job_id})
        if not found:
            raise JobNotFound(job_id)
        return rows.job_from_row(found[0])

    async def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """Return one page of jobs matching ``filter``, with the total count."""
        parts: list[str] = []
        params: dict[str, Any] = {"limit": filter.per_page, "offset": filter.offset}
        if filter.states is not None:
            parts.append(self.q["filter_states"])
            params["states"] = sorted(state.value for state in filter.states)
        if filter.queue is not None:
            parts.append(self.q["filter_queue"])
            params["queue"] = filter.queue
        if filter.task is not None:
            parts.append(self.q["filter_task"])
            params["task"] = filter.task
        where = " AND ".join(parts) or "true"
        listing = self.q["list_jobs"].format(where=where, order_by=rows.order_by(filter))
        counting = self.q["count_jobs"].format(where=where)
        planning = self.q["count_jobs_plan"].format(where=where)
        params["count_cap"] = EXACT_COUNT_CAP + 1

        async def read(conn: AConn) -> tuple[int, bool, list[Any]]:
            # One snapshot for the count and the page.
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                await conn.execute(self.q["jit_off"])
                total = await (await conn.execute(counting, params)).fetchone()
                found = await (await conn.execute(listing, params)).fetchall()
                exact = total[0] if total else 0
                if exact <= EXACT_COUNT_CAP:
                    return exact, False, found
                plan = await (await conn.execute(planning, params, prepare=False)).fetchone()
            estimate = max(int(plan[0][0]["Plan"]["Plan Rows"]) if plan else 0, exact)
            if 0 < len(found) < filter.per_page:  # the last page: the total is known
                return filter.offset + len(found), False, found
            if not found:  # beyond the end: there are fewer than `offset` rows
                return min(estimate, filter.offset), True, found
            # A full page: at least one more row may follow, so offer the next page.
            return max(estimate, filter.offset + len(found) + 1), True, found

        total, estimated, found = await self._run(read)
        return Page(
            items=[rows.job_from_row(row) for row in found],
            total_entries=total,
            page_number=filter.page,
            page_size=filter.per_page,
            total_is_estimate=estimated,
        )

    async def cancel(self, job_id: int, *, reason: str, now: datetime) -> Job:
        """Cancel a waiting job, or ask the worker of a running one to stop."""
        params = {"id": job_id, "now": now, "at": now.isoformat(), "reason": reason}

        async def cancel(conn: AConn) -> list[Any]:
            async with conn.transaction():
                found = await (await conn.execute(self.q["cancel_waiting"], params)).fetchall()
                if not found:
                    cursor = await conn.execute(self.q["request_cancel"], params)
                    found = await cursor.fetchall()
                return found

        found = await self._run(cancel)
        return rows.job_from_row(found[0]) if found else await self.get(job_id)

    async def retry(self, job_id: int, *, now: datetime) -> Job:
        """Make a failed, discarded or cancelled job pending again."""
        found = await self._fetchall("retry_job", {"id": job_id, "now": now})
        if not found:
            return await self.get(job_id)
        job = rows.job_from_row(found[0])
        await self._execute("notify", {"queue": job.queue})
        return job

    async def delete(self, job_id: int) -> bool:
        """Delete a job unless it is running; False if there was none."""
        return await self._execute("delete_job", {"id": job_id}) == 1

    async def stats(self) -> Stats:
        """Count jobs by queue and state; paused queues are listed even when empty.

        Exact, except for the jobs of one queue in one finished state past
        ``STATS_EXACT_CAP`` of them: such a count is the planner's estimate (never below the
        cap, which was counted) and its pair is in ``Stats.estimated``. An exact count of a
        million finished jobs is a scan of most of the table (~200 ms), on every refresh of
        the dashboard; see ``count_by_queue_and_state`` in queries.sql.
        """
        cap = STATS_EXACT_CAP

        async def read(conn: AConn) -> tuple[list[Any], list[Any], dict[tuple[str, str], int]]:
            async with conn.transaction():
                # The planner prices the counting query as if it read every row (~400,000
                # with 1M jobs: past jit_above_cost), and JIT compiling it costs more than it
                # saves: 38 ms instead of 23 (the former full scan: ~370 instead of ~240).
                # SET LOCAL, since PgBouncer refuses jit in the startup options.
                await conn.execute(self.q["jit_off"])
                paused = await (await conn.execute(self.q["list_paused"])).fetchall()
                cursor = await conn.execute(
                    self.q["count_by_queue_and_state"], {"count_cap": cap + 1}
                )
                counted = await cursor.fetchall()
                planned: dict[tuple[str, str], int] = {}
                for queue, state, n in counted:
                    if n > cap and JobState(state) in FINISHED_STATES:  # capped: estimate
                        # Not prepared: a generic plan would not look at the values.
                        params = {"queue": queue, "state": state}
                        cursor = await conn.execute(
                            self.q["count_pair_plan"], params, prepare=False
                        )
                        plan = await cursor.fetchone()
                        planned[queue, state] = int(plan[0][0]["Plan"]["Plan Rows"]) if plan else 0
            return paused, counted, planned

        paused_rows, counted, planned = await self._run(read)
        paused = [queue for (queue,) in paused_rows]
        counts: dict[str, dict[JobState, int]] = {queue: {} for queue in paused}
        estimated: set[tuple[str, JobState]] = set()
        for queue, state, n in counted:
            count = n
            if (queue, state) in planned:
                # The planner may lag (statistics from before the last ANALYZE); the capped
                # count proved more than the cap.
                count = max(planned[queue, state], cap + 1)
                estimated.add((queue, JobState(state)))
            counts.setdefault(queue, {})[JobState(state)] = count
        return Stats(counts=counts, paused=frozenset(paused), estimated=frozenset(estimated))

    async def pause_queue(self, queue: str) -> None:
        """Stop ``fetch`` from handing out jobs of ``queue``, on every node."""
        await self._execute("pause_queue", {"queue": queue})

    async def resume_queue(self, queue: str) -> None:
        """Undo :meth:`pause_queue` (and wake that queue's workers everywhere)."""
        await self._execute("resume_queue", {"queue": queue})

    async def paused_queues(self) -> set[str]:
        """Return the names of paused queues."""
        return {queue for (queue,) in await self._fetchall("list_paused")}

    # -- schedules -------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> None:
        """Create or replace a recurring schedule by name."""
        await self._execute("save_schedule", rows.schedule_params(schedule))

    async def delete_schedule(self, name: str) -> bool:
        """Delete a recurring schedule; False if there was none."""
        return await self._execute("delete_schedule", {"name": name}) == 1

    async def list_schedules(self) -> list[Schedule]:
        """Return every recurring schedule, by name."""
        return [rows.schedule_from_row(row) for row in await self._fetchall("list_schedules")]

    # -- coordination ----------------------------------------------------------------------
    async def acquire_lease(
        self, name: str, *, holder: str, now: datetime, until: datetime
    ) -> bool:
        """Take or renew the named lease unless another holder has it past ``now``."""
        params = {"name": name, "holder": holder, "now": now, "until": until}
        return bool(await self._control_fetchall("acquire_lease", params))

    async def record_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker's liveness record."""
        await self._control_fetchall("record_worker", rows.worker_params(info))

    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's liveness record, and any slot it still offers."""
        await self._execute("remove_worker", {"id": worker_id})
        if self._receivers.pop(worker_id, None) is not None and self._dispatch_ok:
            try:
                await self._execute("remove_offers", {"id": worker_id})
            except _NO_DISPATCH as exc:
                self._no_dispatch(exc)

    async def list_workers(self, *, alive_since: datetime) -> list[WorkerInfo]:
        """Return workers that heartbeated at or after ``alive_since``, by id."""
        found = await self._fetchall("list_workers", {"alive_since": alive_since})
        return [rows.worker_from_row(row) for row in found]


async def _drive_async(conn: AConn, plan: Generator[tuple[Any, Any], list[Any], T]) -> T:
    """Run a plan's statements on ``conn`` in order, sending each one's rows back."""
    try:
        step = next(plan)
        while True:
            cursor = await conn.execute(*step)
            step = plan.send(await cursor.fetchall() if cursor.description else [])
    except StopIteration as done:
        result: T = done.value
        return result


def _drive_sync(conn: psycopg.Connection[Any], plan: Generator[tuple[Any, Any], list[Any], T]) -> T:
    """:func:`_drive_async` on a sync connection."""
    try:
        step = next(plan)
        while True:
            cursor = conn.execute(*step)
            step = plan.send(cursor.fetchall() if cursor.description else [])
    except StopIteration as done:
        result: T = done.value
        return result


def _plain_insert(
    jobs: Sequence[NewJob], now: datetime, *, dispatch: bool | None
) -> tuple[str, dict[str, Any]]:
    """The one statement (name, parameters) inserting jobs that have no unique key.

    ``dispatch`` (None: never) for a lone plain job that is due, with a payload small enough
    for a NOTIFY: True, it may go straight to an idle worker (``insert_job_dispatch``);
    False, it looks whether one offers a slot (``insert_job_probe``).
    """
    if len(jobs) == 1:
        name, params = rows.insert_statement(jobs[0], now)
        if (
            dispatch is not None
            and name == "insert_job_basic"
            and jobs[0].state is JobState.PENDING
            and len(params["task"]) + len(params["args"]) + len(params["kwargs"])
            <= DISPATCH_MAX_CHARS
        ):
            return ("insert_job_dispatch" if dispatch else "insert_job_probe"), params
        return name, params
    return "insert_jobs", {"now": now, "rows": rows.insert_rows(jobs)}


def _inserted(jobs: Sequence[NewJob], found: list[Any], now: datetime) -> list[Inserted]:
    """Pair jobs with the ids their insert returned (identity order = row order).

    A row of ``insert_job_dispatch`` naming a worker: that job is already running there.
    """
    if len(found) == 1 and len(found[0]) >= 4 and found[0][1] is not None:
        job_id, worker_id, lease_until = found[0][:3]
        job = evolve_job(
            job_from_new(jobs[0], job_id, now),
            state=JobState.RUNNING,
            attempt=1,
            attempted_at=now,
            attempted_by=worker_id,
            lease_until=lease_until,
        )
        return [Inserted(job=job)]
    ids = sorted(row[0] for row in found)
    return [Inserted(job=job_from_new(new, i, now)) for new, i in zip(jobs, ids, strict=True)]


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


async def _copy_batches(
    copy: psycopg.AsyncCopy,
    batches: Iterable[NewJobBatch],
    failed: list[BaseException],
    floor: int,
    count: int,
    now: datetime,
) -> tuple[list[Job], set[str]]:
    """Write ``batches`` into ``copy``; return their jobs and the queues given pending jobs.

    The jobs are built with the ids the rows take when no other session draws one from the
    identity during the COPY, ``floor + 1`` on: the caller checks that after.
    """
    jobs: list[Job] = []
    queues: set[str] = set()
    lines: list[str] = []  # formatted, not written yet
    for batch in _noting_failure(batches, failed):
        if len(jobs) + len(batch) > count:
            raise ValueError(f"insert_stream was given more than count={count} jobs")
        lines.append(rows.copy_rows(batch, now))
        first = floor + 1 + len(jobs)
        jobs.extend(jobs_from_batch(batch, range(first, first + len(batch)), now))
        if batch.template.state is JobState.PENDING:
            queues.add(batch.template.queue)
        if sum(map(len, lines)) >= COPY_WRITE_CHARS:
            await copy.write("".join(lines))
            lines.clear()
    if len(jobs) != count:
        raise ValueError(f"insert_stream was given {len(jobs)} jobs, not count={count}")
    await copy.write("".join(lines))
    return jobs, queues


class _ChunkFailed(Exception):
    """Building a chunk of a streamed insert failed; the original error is kept aside.

    psycopg sends the text of the exception that cancels a COPY to the server, which logs
    it; the caller's error may quote job arguments (sensitive ones included), so the COPY is
    cancelled with this fixed text instead.
    """

    def __init__(self) -> None:
        super().__init__("the caller failed to build the jobs; nothing was stored")


def _noting_failure(
    batches: Iterable[NewJobBatch], failed: list[BaseException]
) -> Iterator[NewJobBatch]:
    """Yield ``batches``; an error raised producing one is put in ``failed`` as _ChunkFailed."""
    iterator = iter(batches)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            failed.append(exc)
            raise _ChunkFailed from None
        yield chunk
