"""Operators' statements: jobs (look up, list, count), queues, schedules, workers.

Listings count matches exactly up to ``EXACT_COUNT_CAP``, then take the planner's estimate;
statistics count each queue's jobs of one finished state exactly up to ``STATS_EXACT_CAP``
(waiting and running jobs are always exact). Both read in one snapshot and turn JIT off
for their own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg.types.datetime import TimestamptzLoader

from taskward.backends.postgres import rows
from taskward.backends.postgres.connections import AConn, Connections
from taskward.errors import BackendUnavailable, JobNotFound
from taskward.jobs import (
    FINISHED_STATES,
    Job,
    JobFilter,
    JobState,
    Page,
    Reseal,
    Schedule,
    Stats,
    WorkerInfo,
)
from taskward.limits import (
    RUNNING_SHOWN,
    WAIT_REASONS,
    PartitionBy,
    QueueFlow,
    QueueLimits,
    Rate,
)

__all__ = [
    "EXACT_COUNT_CAP",
    "STATS_EXACT_CAP",
    "delete_schedule",
    "get",
    "hold_queue",
    "list_jobs",
    "list_schedules",
    "list_workers",
    "partition_flow",
    "pause_queue",
    "paused_queues",
    "queue_flow",
    "queue_limits",
    "remove_worker",
    "resume_queue",
    "save_schedule",
    "set_queue_limits",
    "stats",
]

# Listings count matches exactly up to this many, then take the planner's estimate.
EXACT_COUNT_CAP: Final = 10_000
# Statistics count each queue's jobs of one finished state exactly up to this many, then take
# the planner's estimate (waiting and running jobs are always exact). Counting the cap's rows
# in the (queue, state, id) index costs ~2.5 ms per pair that reaches it.
STATS_EXACT_CAP: Final = 10_000


async def get(connections: Connections, job_id: int) -> Job:
    """Return one job; raise ``JobNotFound``."""
    found = await connections.fetchall("get_job", {"id": job_id})
    if not found:
        raise JobNotFound(job_id)
    return rows.job_from_row(found[0])


class _UtcTimestampLoader(TimestamptzLoader):
    """``timestamptz`` as an aware UTC datetime, whatever the session's time zone."""

    def load(self, data: Any) -> datetime:
        return super().load(data).astimezone(UTC)


def get_blocking(connections: Connections, conn: psycopg.Connection[Any], job_id: int) -> Job:
    """:func:`get` through a caller's sync connection (inside its transaction, if one is open)."""
    from psycopg.types.json import JsonbLoader, JsonLoader

    cursor = conn.cursor()
    # The caller may load json as text and times naive in its own zone (Django's connections
    # do, with USE_TZ = False): this cursor reads them as the backend's connections do (JSON
    # values, aware UTC times); the caller's connection stays untouched.
    cursor.adapters.register_loader("jsonb", JsonbLoader)
    cursor.adapters.register_loader("json", JsonLoader)
    cursor.adapters.register_loader("timestamptz", _UtcTimestampLoader)
    try:
        found = cursor.execute(connections.q["get_job"], {"id": job_id}).fetchall()
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise BackendUnavailable(f"PostgreSQL: {exc}") from exc
    finally:
        cursor.close()
    if not found:
        raise JobNotFound(job_id)
    return rows.job_from_row(found[0])


async def list_jobs(connections: Connections, filter: JobFilter) -> Page[Job]:
    """Return one page of jobs matching ``filter``, with the total count."""
    q = connections.q
    parts: list[str] = []
    params: dict[str, Any] = {"limit": filter.per_page, "offset": filter.offset}
    if filter.states is not None:
        parts.append(q["filter_states"])
        params["states"] = sorted(state.value for state in filter.states)
    if filter.queue is not None:
        parts.append(q["filter_queue"])
        params["queue"] = filter.queue
    if filter.task is not None:
        parts.append(q["filter_task"])
        params["task"] = filter.task
    if filter.workflow is not None:
        parts.append(q["filter_workflow"])
        params["workflow"] = filter.workflow
    where = " AND ".join(parts) or "true"
    listing = q["list_jobs"].format(where=where, order_by=rows.order_by(filter))
    counting = q["count_jobs"].format(where=where)
    planning = q["count_jobs_plan"].format(where=where)
    params["count_cap"] = EXACT_COUNT_CAP + 1

    async def read(conn: AConn) -> tuple[int, bool, list[Any]]:
        # One snapshot for the count and the page.
        async with conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            await conn.execute(q["jit_off"])
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

    total, estimated, found = await connections.run(read)
    return Page(
        items=[rows.job_from_row(row) for row in found],
        total_entries=total,
        page_number=filter.page,
        page_size=filter.per_page,
        total_is_estimate=estimated,
    )


async def stats(connections: Connections) -> Stats:
    """Count jobs by queue and state; paused queues are listed even when empty.

    Exact, except for the jobs of one queue in one finished state past
    ``STATS_EXACT_CAP`` of them: such a count is the planner's estimate (never below the
    cap, which was counted) and its pair is in ``Stats.estimated``. An exact count of a
    million finished jobs is a scan of most of the table (~200 ms), on every refresh of
    the dashboard; see ``count_by_queue_and_state`` in queries.sql.
    """
    q = connections.q
    cap = STATS_EXACT_CAP

    async def read(conn: AConn) -> tuple[list[Any], list[Any], dict[tuple[str, str], int]]:
        async with conn.transaction():
            # The planner prices the counting query as if it read every row (~400,000
            # with 1M jobs: past jit_above_cost), and JIT compiling it costs more than it
            # saves: 38 ms instead of 23 (the former full scan: ~370 instead of ~240).
            # SET LOCAL, since PgBouncer refuses jit in the startup options.
            await conn.execute(q["jit_off"])
            paused = await (await conn.execute(q["list_paused"])).fetchall()
            cursor = await conn.execute(q["count_by_queue_and_state"], {"count_cap": cap + 1})
            counted = await cursor.fetchall()
            planned: dict[tuple[str, str], int] = {}
            for queue, state, n in counted:
                if n > cap and JobState(state) in FINISHED_STATES:  # capped: estimate
                    # Not prepared: a generic plan would not look at the values.
                    params = {"queue": queue, "state": state}
                    cursor = await conn.execute(q["count_pair_plan"], params, prepare=False)
                    plan = await cursor.fetchone()
                    planned[queue, state] = int(plan[0][0]["Plan"]["Plan Rows"]) if plan else 0
        return paused, counted, planned

    paused_rows, counted, planned = await connections.run(read)
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


# -- queues ----------------------------------------------------------------------------------
async def pause_queue(connections: Connections, queue: str) -> None:
    """Stop ``fetch`` from handing out jobs of ``queue``, on every node."""
    await connections.execute("pause_queue", {"queue": queue})


async def resume_queue(connections: Connections, queue: str) -> None:
    """Undo :func:`pause_queue` (and wake that queue's workers everywhere)."""
    await connections.execute("resume_queue", {"queue": queue})


async def paused_queues(connections: Connections) -> set[str]:
    """Return the names of paused queues."""
    return {queue for (queue,) in await connections.fetchall("list_paused")}


LIMIT_ATTEMPTS = 20


async def set_queue_limits(connections: Connections, queue: str, limits: QueueLimits) -> None:
    """Store ``queue``'s limits, replacing any; empty limits clear them (every node).

    A change is one statement; so is the first limit of a queue that is held (its row exists).
    A clear is one transaction: the limits go, then the row too unless it carries a hold. The
    first row of a queue is created under the lock of the limits table (:func:`_create_row`),
    and so is a partition rule set or changed, which re-keys the queue's waiting jobs in the
    same transaction (``re_key_jobs`` says why the lock makes that exact). The hold, the rate
    window and the partition cursor are left as they are.
    """
    if limits.is_empty:
        q = connections.q

        async def clear(conn: AConn) -> None:
            async with conn.transaction():
                await conn.execute(q["clear_queue_limits"], {"queue": queue})
                await conn.execute(q["delete_empty_queue_row"], {"queue": queue})

        await connections.run(clear)
        return
    rate, rule = limits.rate_limit, limits.partition_by
    params = {
        "queue": queue,
        "global_limit": limits.global_limit,
        "rate_count": None if rate is None else rate.count,
        "rate_period_ms": None if rate is None else rate.period_ms,
        "partition_kwarg": None if rule is None else rule.kwarg,
        "partition_arg": None if rule is None else rule.arg,
    }
    if await connections.execute("update_queue_limit", params) == 1:
        return
    steps = ["create_queue_limit"] if rule is None else ["re_key_jobs", "create_queue_limit"]
    await _create_row(connections, steps, params, f"set the limits of {queue!r}")


async def hold_queue(
    connections: Connections, queue: str, *, until: datetime | None, key: str | None = None
) -> None:
    """Hold back ``queue`` (or its ``key``) until ``until``, or the later hold it has.

    None releases it. A hold of a queue that has a row is one statement; the first row of a
    queue is created under the lock of the limits table (:func:`_create_row`). A release is
    one transaction: the hold goes (waking the queue's workers everywhere), then the row too
    unless it carries a limit. A key's hold is one statement on the key's row (created on
    demand), whatever the queue's row holds.
    """
    if key is not None:
        params = {"queue": queue, "key": key, "until": until}
        await connections.execute("hold_key" if until is not None else "release_key_hold", params)
        return
    if until is not None:
        params = {"queue": queue, "until": until}
        if await connections.execute("hold_queue", params) == 1:
            return
        await _create_row(connections, ["create_queue_hold"], params, f"hold queue {queue!r}")
        return
    q = connections.q

    async def release(conn: AConn) -> None:
        async with conn.transaction():
            await conn.execute(q["release_queue_hold"], {"queue": queue})
            await conn.execute(q["delete_empty_queue_row"], {"queue": queue})

    await connections.run(release)


async def _create_row(
    connections: Connections, steps: list[str], params: dict[str, Any], doing: str
) -> None:
    """Run the statements ``steps`` under an ACCESS EXCLUSIVE lock of the limits table.

    ``lock_queue_limits`` says why a queue's first row needs it, ``re_key_jobs`` why a new
    partition rule does. Claims of every queue queue up behind a waiting request for that
    lock, so each attempt waits at most 100 ms; up to 20 attempts with a growing pause
    between them, then :class:`BackendUnavailable` (saying what could not be done: ``doing``)
    and nothing stored.
    """
    q = connections.q

    async def create(conn: AConn) -> psycopg.errors.LockNotAvailable | None:
        # Caught here: out of the pooled connection it would be any connection failure.
        try:
            async with conn.transaction():
                await conn.execute(q["queue_limits_lock_timeout"])
                await conn.execute(q["lock_queue_limits"])
                for name in steps:
                    await conn.execute(q[name], params)
        except psycopg.errors.LockNotAvailable as exc:
            return exc
        return None

    for attempt in range(LIMIT_ATTEMPTS):
        refused = await connections.run(create)
        if refused is None:
            return
        if attempt == LIMIT_ATTEMPTS - 1:
            raise BackendUnavailable(
                f"could not {doing}: another transaction holds the queue limits table "
                f"({refused}); try again"
            ) from refused
        await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))


async def queue_limits(connections: Connections) -> dict[str, QueueLimits]:
    """Return the limits of every queue that has one (a queue with only a hold has none)."""
    found = await connections.fetchall("list_queue_limits")
    return {queue: _limits(*stored) for queue, *stored in found}


async def queue_flow(connections: Connections) -> dict[str, QueueFlow]:
    """Limits, hold, rate window and waits of every queue that has a row (a hold, or a limit)."""
    found = await connections.fetchall("list_queue_flow")
    return {queue: _flow(stored) for queue, *stored in found}


def _flow(stored: Sequence[Any]) -> QueueFlow:
    """A queue's flow from its row of ``list_queue_flow`` (after the queue's name)."""
    global_limit, rate_count, period_ms, kwarg, arg, window, used, held_until, *counts = stored
    return QueueFlow(
        limits=_limits(global_limit, rate_count, period_ms, kwarg, arg),
        held_until=held_until,
        window=window,
        window_used=used,
        waits={reason: n for reason, n in zip(WAIT_REASONS, counts, strict=True) if n > 0},
    )


async def partition_flow(connections: Connections, queue: str, key: str) -> QueueFlow:
    """The queue's limits with one key's hold, rate window and running jobs (one statement)."""
    params = {"queue": queue, "key": key, "shown": RUNNING_SHOWN}
    [row] = await connections.fetchall("partition_flow", params)
    global_limit, rate_count, period_ms, kwarg, arg, held_until, window, used, running = row
    return QueueFlow(
        limits=_limits(global_limit, rate_count, period_ms, kwarg, arg),
        held_until=held_until,
        window=window,
        window_used=used,
        running=tuple(running),
    )


def _limits(
    global_limit: int | None,
    rate_count: int | None,
    period_ms: int | None,
    kwarg: str | None = None,
    arg: int | None = None,
) -> QueueLimits:
    """The limits a row stores.

    Migration 0007 keeps the rate's count and period both or neither; 0008 the rule's kwarg
    or its position, or neither.
    """
    rate = None if rate_count is None or period_ms is None else Rate.of_ms(rate_count, period_ms)
    rule = None if kwarg is None and arg is None else PartitionBy(kwarg=kwarg, arg=arg)
    return QueueLimits(global_limit=global_limit, rate_limit=rate, partition_by=rule)


# -- schedules -------------------------------------------------------------------------------
async def save_schedule(connections: Connections, schedule: Schedule) -> None:
    """Create or replace a recurring schedule by name."""
    await connections.execute("save_schedule", rows.schedule_params(schedule))


async def reseal(connections: Connections, rewrites: Sequence[Reseal]) -> list[bool]:
    """Write re-sealed values of jobs still as they were read (key rotation), one statement."""
    if not rewrites:
        return []
    found = await connections.fetchall("reseal_jobs", rows.reseal_arrays(rewrites))
    written = {row[0] for row in found}
    return [r.job_id in written for r in rewrites]


async def delete_schedule(connections: Connections, name: str) -> bool:
    """Delete a recurring schedule; False if there was none."""
    return await connections.execute("delete_schedule", {"name": name}) == 1


async def list_schedules(connections: Connections) -> list[Schedule]:
    """Return every recurring schedule, by name."""
    return [rows.schedule_from_row(row) for row in await connections.fetchall("list_schedules")]


async def set_schedule_paused(connections: Connections, name: str, paused: bool) -> bool:
    """Pause or resume a recurring schedule; False if there is none."""
    params = {"name": name, "paused": paused}
    return await connections.execute("set_schedule_paused", params) == 1


# -- workers ---------------------------------------------------------------------------------
async def remove_worker(connections: Connections, worker_id: str) -> None:
    """Delete a worker's liveness record (its offers are the dispatch module's)."""
    await connections.execute("remove_worker", {"id": worker_id})


async def list_workers(connections: Connections, *, alive_since: datetime) -> list[WorkerInfo]:
    """Return workers that heartbeated at or after ``alive_since``, by id."""
    found = await connections.fetchall("list_workers", {"alive_since": alive_since})
    return [rows.worker_from_row(row) for row in found]
