"""RedisBackend: many worker processes on many hosts against one Redis (or Valkey) server.

Built on redis-py's asyncio client (hiredis parses the replies), with a sync client for
blocking producers (a Django view, a script). Every state change of a job is one Lua script
(``lua/``), so it is atomic on the server and fenced there: a finish, a heartbeat or a progress
write is refused unless the job is still running at that attempt and leased to that worker,
and a rescue only when the lease has expired. The key layout is in docs/DESIGN.md ("Redis data
layout"): one hash per job, sorted sets per queue and state as indexes, counters read as set
sizes (statistics are O(queues)).

URL: ``redis://[:password@]host:port/db?prefix=myapp&pool_size=20`` (``rediss://`` for TLS,
``unix:///path/redis.sock?db=0`` for a socket, ``cluster=true`` for Redis Cluster). taskward's
own parameters are removed before connecting (``config``).

Not offered: enqueue inside the caller's SQL transaction (Redis has none to join), and
direct dispatch to idle workers (a claim is already one script call). Workflows are in
``flows`` (the Lua rules in ``lua/flows.lua``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from taskward.backends.base import Capability, MigrationReport
from taskward.backends.redis import admin, codec, cron_history
from taskward.backends.redis.client import FIXED_KEYS, Connections
from taskward.backends.redis.config import RedisConfig
from taskward.backends.redis.edits import retry_edited
from taskward.backends.redis.errors import StoreError, translated
from taskward.backends.redis.flows import RedisWorkflows, now_args
from taskward.backends.redis.health import health_figures as redis_health
from taskward.backends.redis.listener import Listener
from taskward.backends.redis.watches import Watches
from taskward.errors import JobNotFound, NotSupported
from taskward.health.figures import HealthFigures, HealthQuery
from taskward.jobs import (
    CRON_HISTORY_KEEP,
    CronFire,
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
from taskward.limits import CLOCK_LAG_TOLERATED, MAX_KEYS_PER_CLAIM_EXTRA, QueueFlow, QueueLimits

__all__ = ["RedisBackend"]

SCHEMA_VERSION: Final = "1"
INSERT_CHUNK: Final = 500  # jobs per insert script: bounds the time one script holds the server
BATCH: Final = 1000  # jobs per promotion or prune script, for the same reason
# An order other than by id reads every candidate job inside one script, which holds the
# server: beyond this many, the listing is refused rather than stall every worker.
SCAN_LIMIT: Final = 100_000
_STATES: Final = {state.value: state for state in JobState}
_LAG_MS: Final = str(CLOCK_LAG_TOLERATED // timedelta(milliseconds=1))
NO_TRANSACTION: Final = (
    "the redis backend cannot join a SQL transaction: enqueue after your commit, "
    "or keep jobs in PostgreSQL to enqueue transactionally"
)


class RedisBackend(RedisWorkflows):
    """Jobs in Redis hashes and sorted sets, shared by every process that connects."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.config = RedisConfig.from_url(url)
        self._connections = Connections(self.config)
        self._listener = Listener(self._connections)
        self._watches = Watches(self._connections, self._listener)  # wait_for_ends
        self.base = self.config.base

    def __repr__(self) -> str:
        return f"<RedisBackend {self.config.safe_url} prefix={self.config.prefix}>"

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Persistent (with the server's persistence), multi-process, pub/sub wake-ups."""
        return frozenset(
            {
                Capability.PERSISTENT,
                Capability.MULTI_PROCESS,
                Capability.STORES_JOBS,
                Capability.NOTIFY,
                Capability.BLOCKING_INSERT,
                Capability.WORKFLOWS,
                Capability.END_NOTICES,
            }
        )

    @property
    def _sync_pool(self) -> Any:
        """The sync client, None until a blocking insert opened it (tests check shutdown)."""
        return self._connections.sync_client

    @property
    def listening(self) -> bool:
        """True while the wake-up subscription is up (otherwise waits fall back to polling)."""
        return self._listener.listening

    # -- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and check the server: version, eviction policy (idempotent)."""
        await self._connections.open()

    async def close(self) -> None:
        """Stop the subscription and close the clients (idempotent); wakes every waiter."""
        cancelled: asyncio.CancelledError | None = None
        for step in (self._listener.stop, self._connections.close):
            try:
                await step()
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            raise cancelled

    async def migrate(self) -> MigrationReport:
        """Check that the store's fixed keys are ours, and record the layout version.

        Redis has no schema; what can go wrong is a key under our prefix written by
        something else (refused here with the key's name) or a store of a newer layout.
        Recording the layout version on a new store counts as applying that version.
        """
        client = await self._client()
        with translated(self.config):
            pipe = client.pipeline(transaction=False)
            for name in FIXED_KEYS:
                pipe.type(f"{self.base}:{name}")
            types = await pipe.execute()
            for (name, expected), found in zip(FIXED_KEYS.items(), types, strict=True):
                if found not in ("none", expected):
                    raise StoreError(
                        f"the key {self.base}:{name} is a {found}, not a {expected}: something "
                        "other than taskward wrote under this prefix. Choose another prefix= "
                        "or remove that key"
                    )
            version = await client.get(f"{self.base}:version")
            if version is not None and version != SCHEMA_VERSION:
                raise NotSupported(
                    f"the store under {self.base} has layout version {version}; this taskward "
                    f"knows version {SCHEMA_VERSION}: upgrade taskward"
                )
            recorded = version is None and bool(
                await client.set(f"{self.base}:version", SCHEMA_VERSION, nx=True)
            )
        layout = int(SCHEMA_VERSION)
        return MigrationReport(applied=(layout,) if recorded else (), version=layout)

    def migrate_blocking(self) -> None:
        """Nothing to create: a sync producer's first insert checks the server."""

    async def _client(self) -> Any:
        return await self._connections.ready()

    # -- produce ---------------------------------------------------------------------------
    async def insert(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs, one script per chunk; a unique clash returns the existing job."""
        if connection is not None:
            raise NotSupported(NO_TRANSACTION)
        out: list[Inserted] = []
        for start in range(0, len(jobs), INSERT_CHUNK):
            chunk = jobs[start : start + INSERT_CHUNK]
            replies = await self._connections.run("insert", _insert_args(chunk, now))
            out.extend(_inserted(chunk, replies, now))
        self._wake_local(out)
        return out

    def insert_blocking(
        self, jobs: Sequence[NewJob], *, now: datetime, connection: Any = None
    ) -> list[Inserted]:
        """Insert jobs from the calling thread, on the sync client; as :meth:`insert`."""
        if connection is not None:
            raise NotSupported(NO_TRANSACTION)
        out: list[Inserted] = []
        for start in range(0, len(jobs), INSERT_CHUNK):
            chunk = jobs[start : start + INSERT_CHUNK]
            replies = self._connections.run_blocking("insert", _insert_args(chunk, now))
            out.extend(_inserted(chunk, replies, now))
        return out

    def _wake_local(self, inserted: Sequence[Inserted]) -> None:
        for item in inserted:
            if not item.duplicate and item.job.state is JobState.PENDING:
                self._listener.wake(item.job.queue)

    # -- work ------------------------------------------------------------------------------
    async def fetch(
        self, *, queue: str, limit: int, worker_id: str, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Claim up to ``limit`` pending jobs of ``queue`` in priority, then schedule order.

        Its limits and hold are applied in the claim script (``fetch.lua``), which also claims
        a partitioned queue key by key; when a hold or a full rate window held it back, this
        process's waiters of the queue wake when it ends.
        """
        self._listener.note_fetch(queue)
        retry_at, *rows = await self._connections.run(
            "fetch",
            (
                queue,
                limit,
                worker_id,
                codec.us(now),
                codec.us(lease_until),
                MAX_KEYS_PER_CLAIM_EXTRA,
                _LAG_MS,
            ),
        )
        if retry_at:  # a hold or a full rate window held the claim back until then
            self._listener.hold_back(queue, now=now, until=codec.time_of(retry_at))
        return [codec.job_from_flat(row) for row in rows]

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: datetime
    ) -> LeaseReport:
        """Extend this worker's leases; report jobs lost or with a cancel request."""
        if not job_ids:
            return LeaseReport()
        lost, cancel = await self._connections.run(
            "extend", (worker_id, codec.us(lease_until), *job_ids)
        )
        return LeaseReport(
            lost=frozenset(int(i) for i in lost), cancel_requested=frozenset(int(i) for i in cancel)
        )

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        """Write each outcome only if the job is still running at that attempt, owned by us."""
        if not updates:
            return []
        args: list[str] = [worker_id, str(len(updates))]
        for update in updates:
            args.extend(codec.finish_args(update))
        flags = await self._connections.run("finish", args)
        return [flag == 1 for flag in flags]

    async def reseal(self, rewrites: Sequence[Reseal]) -> list[bool]:
        """Write re-sealed values of jobs still as they were read (key rotation).

        One script call per 500 jobs, as an insert (each call holds the server briefly).
        """
        flags: list[bool] = []
        for start in range(0, len(rewrites), 500):
            args: list[Any] = []
            for r in rewrites[start : start + 500]:
                args += [r.job_id, r.state.value, r.attempt, r.errors_count, r.envelope or ""]
                args.append("" if r.kwargs is None else codec.dumps(r.kwargs))
                args.append("" if r.result is None else codec.dumps(r.result))
                errors = r.errors
                args.append("" if errors is None else codec.dumps([e.to_dict() for e in errors]))
            flags += [flag == 1 for flag in await self._connections.run("reseal", args)]
        return flags

    async def set_progress(self, job_id: int, progress: Any, *, worker_id: str) -> bool:
        """Store progress of a running job this worker owns."""
        written = await self._connections.run(
            "progress", (job_id, worker_id, codec.dumps(progress))
        )
        return bool(written == 1)

    async def wait_for_jobs(self, queues: Collection[str], *, timeout: float) -> None:
        """Return on a wake-up for one of ``queues``, or after ``timeout`` seconds (polling)."""
        await self._client()
        await self._listener.wait(queues, timeout=timeout)

    async def wait_for_ends(self, job_ids: Collection[int], *, timeout: float) -> None:
        """Return on a message that a watched job ended, or after ``timeout`` seconds.

        Each watched id has a set ``{prefix}:watch:<id>`` (``watches.py``): only the ends of
        those jobs are published.
        """
        await self._client()
        await self._watches.wait(job_ids, timeout=timeout)

    # -- maintain --------------------------------------------------------------------------
    async def promote_due(self, *, now: datetime) -> int:
        """Move due scheduled/retryable jobs to pending (waking their queues); how many."""
        total = 0
        while True:
            moved = int(await self._connections.run("promote", (codec.us(now), BATCH)))
            total += moved
            if moved < BATCH:
                return total

    async def expired_leases(self, *, now: datetime, limit: int) -> list[Job]:
        """Return running jobs whose lease expired before ``now``, by id."""
        rows = await self._connections.run("expired", (codec.us(now), limit))
        return [codec.job_from_flat(row) for row in rows]

    async def finished_per_minute(self, *, since: datetime) -> list[tuple[datetime, JobState, int]]:
        """Count jobs finished since ``since`` per UTC minute and state."""
        flat = await self._connections.run("per_minute", (codec.us(since),))
        rows = [
            (codec.time_of(str(int(flat[i]) * 60_000_000)), _STATES[flat[i + 1]], int(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]
        return sorted(rows, key=lambda row: (row[0], row[1].value))

    async def health_figures(self, query: HealthQuery) -> HealthFigures:
        """The health check's figures: one script, then the ended jobs (``redis/health.py``)."""
        return await redis_health(self._connections, query)

    async def prune(self, *, before: Mapping[JobState, datetime]) -> int:
        """Delete finished jobs of each given state that finished before its cutoff."""
        args: list[Any] = [BATCH]
        for state, cutoff in before.items():
            args.extend((state.value, codec.us(cutoff)))
        if len(args) == 1:
            return 0
        total = 0
        while True:
            deleted, full = await self._connections.run("prune", args)
            total += int(deleted)
            if not full:
                return total

    # -- admin -----------------------------------------------------------------------------
    async def get(self, job_id: int) -> Job:
        """Return one job; raise ``JobNotFound``."""
        client = await self._client()
        with translated(self.config):
            flat = await client.hgetall(f"{self.base}:job:{int(job_id)}")
        if not flat:
            raise JobNotFound(job_id)
        return codec.job_from_fields(flat)

    async def list_jobs(self, filter: JobFilter) -> Page[Job]:
        """Return one page of jobs matching ``filter``, with the exact total."""
        queues = [] if filter.queue is None else [filter.queue]
        states = sorted(s.value for s in filter.states) if filter.states is not None else []
        if filter.states is not None and not states:
            return Page(
                items=[], total_entries=0, page_number=filter.page, page_size=filter.per_page
            )
        args: list[Any] = [
            filter.sort_field,
            "1" if filter.descending else "0",
            filter.offset,
            filter.per_page,
            "" if filter.task is None else "=" + filter.task,
            len(queues),
            *queues,
            len(states),
            *states,
            SCAN_LIMIT,
            "" if filter.workflow is None else str(int(filter.workflow)),
        ]
        total, rows = await self._connections.run("list", args)
        if int(total) < 0:
            raise NotSupported(
                f"listing {rows:,} jobs in order of {filter.sort_field} on Redis reads each of "
                f"them (more than {SCAN_LIMIT:,}); sort by id, or filter by queue and state"
            )
        return Page(
            items=[codec.job_from_flat(row) for row in rows],
            total_entries=int(total),
            page_number=filter.page,
            page_size=filter.per_page,
        )

    async def cancel(self, job_id: int, *, reason: str, now: datetime) -> Job:
        """Cancel a waiting job, or ask the worker of a running one to stop."""
        flat = await self._connections.run(
            "cancel", (int(job_id), codec.us(now), json.dumps(now.isoformat()), codec.dumps(reason))
        )
        if not flat:
            raise JobNotFound(job_id)
        return codec.job_from_flat(flat)

    async def retry(self, job_id: int, *, now: datetime, edit: JobEdit | None = None) -> Job:
        """Make a failed, discarded or cancelled job pending again (with ``edit``'s changes)."""
        if edit is not None:
            return await retry_edited(self._connections, self.base, job_id, now, edit)
        flat = await self._connections.run("retry", (int(job_id), codec.us(now)))
        if not flat:
            raise JobNotFound(job_id)
        return codec.job_from_flat(flat)

    async def delete(self, job_id: int, *, states: Collection[JobState] | None = None) -> bool:
        """Delete a job unless it is running (or, given ``states``, in none of them).

        False if there was none (or it runs). The states are checked in the delete's script.
        """
        listed = "" if states is None else "," + ",".join(sorted(s.value for s in states)) + ","
        return bool(await self._connections.run("delete", (int(job_id), *now_args(), listed)) == 1)

    async def stats(self) -> Stats:
        """Count jobs by queue and state from the index sizes; paused queues included."""
        flat = await self._connections.run("stats", ())
        paused = await self.paused_queues()
        counts: dict[str, dict[JobState, int]] = {queue: {} for queue in paused}
        for i in range(0, len(flat), 3):
            counts.setdefault(flat[i], {})[_STATES[flat[i + 1]]] = int(flat[i + 2])
        return Stats(counts=counts, paused=frozenset(paused))

    async def pause_queue(self, queue: str) -> None:
        """Stop ``fetch`` from handing out jobs of ``queue``, on every node."""
        await admin.pause_queue(self._connections, queue)

    async def resume_queue(self, queue: str) -> None:
        """Undo :meth:`pause_queue` (and wake that queue's workers everywhere)."""
        await admin.resume_queue(self._connections, queue)
        self._listener.wake(queue)

    async def paused_queues(self) -> set[str]:
        """Return the names of paused queues."""
        return await admin.paused_queues(self._connections)

    async def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Store ``queue``'s limits, or clear them; shared by every node.

        A new or changed ``partition_by`` re-keys the queue's waiting jobs in the same script.
        Raising or clearing a limit, or changing the rule, wakes the queue's workers (here and
        everywhere): one held back by the old limit may claim now. Lowering one wakes nobody.
        """
        if await admin.set_queue_limits(self._connections, queue, limits):
            self._listener.wake(queue)

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """Return the limits of every queue that has one."""
        return await admin.queue_limits(self._connections)

    async def hold_queue(
        self, queue: str, *, until: datetime | None, key: str | None = None
    ) -> None:
        """Hold back ``queue`` (or only its ``key``) on every node until ``until``.

        The later hold wins. ``until=None`` releases it and wakes the queue's workers (here and
        everywhere).
        """
        await admin.hold_queue(self._connections, queue, until=until, key=key)
        if until is None:
            self._listener.wake(queue)

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """Limits, hold and current rate window of every queue with limits or a hold."""
        return await admin.queue_flow(self._connections)

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """The queue's limits with ``key``'s own hold, rate window and running jobs."""
        return await admin.partition_flow(self._connections, queue, key)

    # -- schedules -------------------------------------------------------------------------
    async def save_schedule(self, schedule: Schedule) -> None:
        """Create or replace a recurring schedule by name."""
        await admin.save_schedule(self._connections, schedule)

    async def delete_schedule(self, name: str) -> bool:
        """Delete a recurring schedule; False if there was none."""
        return await admin.delete_schedule(self._connections, name)

    async def list_schedules(self) -> list[Schedule]:
        """Return every recurring schedule, by name."""
        return await admin.list_schedules(self._connections)

    async def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume a recurring schedule (one script); False if there is none."""
        return await cron_history.set_paused(self._connections, name, paused)

    async def record_cron_fires(
        self, name: str, fires: Sequence[CronFire], *, now: datetime, keep: int = CRON_HISTORY_KEEP
    ) -> None:
        """Append fire records and advance the schedule's state, in one script."""
        await cron_history.record(self._connections, name, fires, now=now, keep=keep)

    async def cron_history(self, name: str, *, limit: int = CRON_HISTORY_KEEP) -> list[CronFire]:
        """Return the newest ``limit`` fire records of ``name``, newest first."""
        return await cron_history.history(self._connections, name, limit=limit)

    # -- coordination ----------------------------------------------------------------------
    async def acquire_lease(
        self, name: str, *, holder: str, now: datetime, until: datetime
    ) -> bool:
        """Take or renew the named lease unless another holder has it past ``now``."""
        taken = await self._connections.run("lease", (name, holder, codec.us(now), codec.us(until)))
        return bool(taken == 1)

    async def record_worker(self, info: WorkerInfo) -> None:
        """Upsert a worker's liveness record."""
        await admin.record_worker(self._connections, info)

    async def remove_worker(self, worker_id: str) -> None:
        """Delete a worker's liveness record."""
        await admin.remove_worker(self._connections, worker_id)

    async def list_workers(self, *, alive_since: datetime) -> list[WorkerInfo]:
        """Return workers that heartbeated at or after ``alive_since``, by id."""
        return await admin.list_workers(self._connections, alive_since=alive_since)


def _insert_args(chunk: Sequence[NewJob], now: datetime) -> list[str]:
    args = [codec.us(now), str(len(chunk))]
    for new in chunk:
        args.extend(codec.insert_args(new))
    return args


def _inserted(chunk: Sequence[NewJob], replies: Sequence[Any], now: datetime) -> list[Inserted]:
    """The jobs ``insert.lua`` stored (or found): "id", "id:key" (the rule's key) or a duplicate."""
    out = []
    for new, reply in zip(chunk, replies, strict=True):
        if isinstance(reply, list):
            out.append(Inserted(job=codec.job_from_flat(reply[1]), duplicate=True))
            continue
        job_id, keyed, key = str(reply).partition(":")
        job = codec.job_from_new(new, int(job_id), now, key if keyed else None)
        out.append(Inserted(job=job))
    return out
