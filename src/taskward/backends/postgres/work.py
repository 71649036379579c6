"""The worker's statements: claims, acks, progress, leases, and the maintenance services'.

- Claim: one ``UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED LIMIT n))
  RETURNING``, so workers never block each other (its comments in ``queries.sql`` say why
  this shape, and why it commits without waiting for the WAL flush).
- Limited claim (a queue with a row in ``taskward_queue_limits``: a ``global_limit``,
  migration 0006; a ``rate_limit`` or a hold, 0007): the plain claim takes no job of such a
  queue and says so; then one transaction, sent as one pipeline, locks the queue's row
  ``FOR UPDATE`` (claims of the queue take turns), which returns its limits, hold and rate
  window; the hold and the rate cap the claim (:func:`taskward.limits.allowance`), and a
  second statement, whose snapshot is taken after the lock was granted, claims at most the
  global limit minus the queue's running jobs it counts, and writes the rate window's new
  count. A queue whose last claim found only a global limit sends both statements at once
  (one round trip); others read the row before the claim (two). The backend remembers what
  it found per queue (:class:`Seen`) and claims those queues this way first, until the row is
  gone.
- Partitioned claim (a row with a ``partition_by`` rule, migration 0008): one statement calls
  ``taskward_claim_by_key``, which locks the row itself, walks the keys with pending jobs from
  the queue's cursor, applies the limits to each key and claims the keys' jobs in turns (one
  round trip; two the first time, when the general claim finds the rule).
- Waits (``QueueFlow.waits``): only a claim a limit capped counts one (:mod:`.waits`).
- Ack: the outcomes of a batch are written by one ``UPDATE … FROM unnest(arrays)``, fenced
  on the job's state, attempt and owner, returning the ids written; a queue with a global
  limit that had a job finish is then notified (a slot came free), when this backend knows
  it has one.
- Leases, heartbeats, worker records and leader election run on the control connection.
- Maintenance: promote due jobs, find expired leases (the Rescuer), prune, count finished.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import psycopg

from taskward.backends.postgres import flows, rows, waits
from taskward.backends.postgres.connections import Connections
from taskward.backends.postgres.control import ControlConnection
from taskward.errors import BackendUnavailable
from taskward.jobs import FINISHED_STATES, Job, JobState, JobUpdate, LeaseReport, WorkerInfo
from taskward.limits import (
    CLOCK_LAG_TOLERATED,
    MAX_KEYS_PER_CLAIM_EXTRA,
    Allowance,
    QueueFlow,
    QueueLimits,
    Rate,
    allowance,
)

__all__ = [
    "HOLD_ROW_KEPT",
    "HeldBack",
    "Seen",
    "acquire_lease",
    "expired_leases",
    "extend_leases",
    "fetch",
    "finish",
    "finished_per_minute",
    "promote_due",
    "prune",
    "record_worker",
    "set_progress",
]

logger = logging.getLogger(__name__)
PRUNE_BATCH: Final = 10_000
HeldBack = Callable[[str, datetime, datetime], None]
"""Told (queue, the claim's now, when it may claim again) when time held a claim back."""


class Seen(enum.Enum):
    """What the last claim of a queue found in its row of ``taskward_queue_limits``."""

    GLOBAL_LIMIT = "global limit"
    """A global limit and nothing else in force: the next claim sends its lock and its claim
    in one round trip (``fetch_jobs_limited`` reads the limit from the row itself)."""
    GLOBAL_AND_MORE = "global limit and more"
    """A global limit, and a rate or a hold in force (or not known yet)."""
    NO_GLOBAL_LIMIT = "no global limit"
    """A rate or a hold, no global limit: a finish frees no slot (no wake-up)."""
    PARTITIONED = "partitioned"
    """A partition rule, no global limit: claimed by ``claim_by_key`` in one round trip."""
    PARTITIONED_GLOBAL = "partitioned, global limit"
    """A partition rule and a global limit (per key): as :attr:`PARTITIONED`, and a finish
    frees a slot of its key."""

    @property
    def has_global_limit(self) -> bool:
        """True when a finish in the queue frees a slot its workers may wait for."""
        return self is not Seen.NO_GLOBAL_LIMIT and self is not Seen.PARTITIONED

    @property
    def partitioned(self) -> bool:
        """True when the queue is claimed by key."""
        return self is Seen.PARTITIONED or self is Seen.PARTITIONED_GLOBAL


# What taskward_claim_by_key says the queue's row held ('none': no rule, it claimed nothing).
_FOUND: Final = {
    "partitioned": Seen.PARTITIONED,
    "partitioned, global limit": Seen.PARTITIONED_GLOBAL,
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


HOLD_ROW_KEPT: Final = timedelta(minutes=5)
"""How long after its end a hold keeps its queue's row when nothing else is in it.

The next claim after that deletes the row, and the queue goes back to the plain claim. A queue
held again within that time (an upstream that keeps refusing) only updates its row: creating
one takes the limits table's lock (``lock_queue_limits``), which pauses every claim.
"""


async def fetch(
    connections: Connections,
    *,
    queue: str,
    limit: int,
    worker_id: str,
    now: datetime,
    lease_until: datetime,
    limited: dict[str, Seen],
    held_back: HeldBack,
) -> list[Job]:
    """:func:`_fetch`, saying what to do when the schema predates this code's claim."""
    try:
        return await _fetch(
            connections,
            queue=queue,
            limit=limit,
            worker_id=worker_id,
            now=now,
            lease_until=lease_until,
            limited=limited,
            held_back=held_back,
        )
    except psycopg.errors.UndefinedTable as exc:
        # A deploy that skipped migrations (migrate_on_start off): say how to fix it, and let
        # the worker retry as for any store that is not there yet.
        raise BackendUnavailable(
            f"the taskward tables are older than this taskward ({exc}): run `taskward migrate`"
        ) from exc


async def _fetch(
    connections: Connections,
    *,
    queue: str,
    limit: int,
    worker_id: str,
    now: datetime,
    lease_until: datetime,
    limited: dict[str, Seen],
    held_back: HeldBack,
) -> list[Job]:
    """Claim up to ``limit`` pending jobs of ``queue`` in priority, then schedule order.

    ``limited``: the queues this backend last found with a row of limits or a hold, each
    with what the row held (updated here). A queue not in it is claimed by
    one statement, which claims nothing of a queue that has a row; when it claims nothing, one
    probe asks whether the queue has one, and if so the limited claim (:func:`_fetch_limited`)
    runs at once, and runs first for that queue from then on, until it finds the row gone.
    ``held_back(queue, now, until)``: called when a hold or a full rate window held the claim
    back, to wake this process's waiters of the queue when it ends (the listener's
    :class:`~taskward.backends.waiters.WakeTimers`). A partitioned queue's jobs come in the
    order its keys took turns; others in claim order.
    """
    if limit <= 0:
        return []
    params = {
        "queue": queue,
        "limit": limit,
        "worker_id": worker_id,
        "now": now,
        "lease_until": lease_until,
    }
    if queue in limited:
        claimed = await _fetch_limited(connections, params, limited, held_back)
    else:
        claimed = await connections.fetchall("fetch_jobs", params)
        if not claimed and (await connections.fetchall("queue_is_limited", params))[0][0]:
            limited.setdefault(queue, Seen.GLOBAL_AND_MORE)
            claimed = await _fetch_limited(connections, params, limited, held_back)
        else:
            claimed.sort(key=rows.claim_order)
    return [rows.job_from_row(row) for row in claimed]


async def _fetch_limited(
    connections: Connections,
    params: dict[str, Any],
    limited: dict[str, Seen],
    held_back: HeldBack,
) -> list[Any]:
    """The claim of a queue with a row of limits or a hold: one transaction, two statements.

    Claims of the queue take turns on its row (``fetch_limit_lock``), which gives its limits,
    hold and rate window as they stay until the transaction ends; the claim that follows
    counts the queue's running jobs in a snapshot taken after its turn came, for the global
    limit, so claims from any number of processes never exceed the limits together. A queue
    last seen with only a global limit is claimed in one round trip (:func:`_claim_global`);
    the claim it sends claims nothing if the row has changed since, and the general claim
    (:func:`_claim_flow`) follows. So is a queue last seen partitioned (:func:`_claim_by_key`).
    Returns the claimed rows in the order the jobs are handed out.
    """
    seen = limited.get(params["queue"])
    if seen is Seen.GLOBAL_LIMIT:
        claimed, row = await _claim_global(connections, params)
        if claimed or (row is not None and _seen(row, params["now"]) is Seen.GLOBAL_LIMIT):
            claimed.sort(key=rows.claim_order)
            return claimed
    elif seen is not None and seen.partitioned:
        found = await connections.fetchall("claim_by_key", _by_key_params(params))
        by_key = _claimed_by_key(found, params, limited, held_back)
        if by_key is not None:
            return by_key
    return await _claim_flow(connections, params, limited, held_back)


async def _claim_global(
    connections: Connections, params: dict[str, Any]
) -> tuple[list[Any], Sequence[Any] | None]:
    """Lock the queue's row and claim under its global limit, in one round trip.

    Both statements go out in one pipeline on an autocommit connection: one implicit
    transaction, committed (or rolled back, if one fails) by the pipeline's sync. Returns the
    claimed rows and the row the lock read (None: no row).
    """
    q = connections.q
    async with connections.connection() as conn:
        lock, claim = conn.cursor(), conn.cursor()
        async with conn.pipeline():
            await lock.execute(q["fetch_limit_lock"], params)
            await claim.execute(q["fetch_jobs_limited"], params)
        row = await lock.fetchone()
        claimed: list[Any] = await claim.fetchall()
        if row is not None and _seen(row, params["now"]) is Seen.GLOBAL_LIMIT:  # it could claim
            asked, queue = params["limit"], params["queue"]
            await waits.count_global_limit(conn, q, queue, asked=asked, claimed=len(claimed))
        return claimed, row


async def _claim_flow(
    connections: Connections,
    params: dict[str, Any],
    limited: dict[str, Seen],
    held_back: HeldBack,
) -> list[Any]:
    """The general limited claim: lock and read the row, then claim what it allows.

    One pipeline, so one implicit transaction up to its sync: the row is read by a flush
    (the first round trip; the row stays locked), the hold and the rate cap the claim here
    (:func:`taskward.limits.allowance`, at the claim's ``now``), and the claim, which writes
    the rate window's count too, goes out with the sync (the second). A row with a partition
    rule: the partitioned claim (``claim_by_key``) instead, in the same transaction. A row
    cleared meanwhile: the plain claim, in the same transaction; so too once the row holds
    nothing but a hold that ended :data:`HOLD_ROW_KEPT` ago (deleted here).
    """
    q = connections.q
    queue: str = params["queue"]
    now: datetime = params["now"]
    allowed = Allowance(0)
    by_key = False
    under_global = 0  # fewer claimed than this, with jobs left: the global limit capped it
    async with connections.connection() as conn:
        lock, claim = conn.cursor(), conn.cursor()
        async with conn.pipeline():
            await lock.execute(q["fetch_limit_lock"], params)
            row = await lock.fetchone()
            if row is not None and _only_an_ended_hold(row, now):
                await conn.cursor().execute(q["delete_ended_hold"], params)
                row = None
            if row is None:
                limited.pop(queue, None)
                await claim.execute(q["fetch_jobs"], params)
            elif row[6]:  # a partition rule
                by_key = True
                await claim.execute(q["claim_by_key"], _by_key_params(params))
            else:
                limited[queue] = _seen(row, now)
                global_limit, rate_count, period_ms, window, used, held_until, _ = row
                rate = None if rate_count is None else Rate.of_ms(rate_count, period_ms)
                flow = QueueFlow(
                    limits=QueueLimits(rate_limit=rate),
                    held_until=held_until,
                    window=window,
                    window_used=used,
                )
                allowed = allowance(flow, wanted=params["limit"], running=0, now=now)
                if allowed.count > 0 and rate is None and global_limit is not None:
                    await claim.execute(q["fetch_jobs_limited"], params)
                elif allowed.count > 0:
                    current = None if rate is None else rate.window_of(now)
                    counted = {
                        **params,
                        "limit": allowed.count,
                        "global_limit": global_limit,
                        "window": current,
                        "used": used if current is not None and window == current else 0,
                    }
                    await claim.execute(q["fetch_jobs_rated"], counted)
                under_global = await waits.count_capped(conn, q, queue, allowed, global_limit)
        claimed: list[Any] = await claim.fetchall() if claim.pgresult is not None else []
        if under_global:
            await waits.count_global_limit(conn, q, queue, asked=under_global, claimed=len(claimed))
    if by_key:
        # The row was locked by this transaction: it had a rule, and the claim found it.
        return _claimed_by_key(claimed, params, limited, held_back) or []
    # Time held the claim back only if it took all that time allowed (else the global limit
    # or the pending jobs ran out first, and a finish or an insert wakes the waiters).
    if allowed.retry_at is not None and len(claimed) >= allowed.count:
        held_back(queue, now, allowed.retry_at)
    claimed.sort(key=rows.claim_order)
    return claimed


def _by_key_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``claim_by_key``: the claim's, and what its function needs besides.

    The claim's clock in epoch milliseconds (rate windows count from the epoch), and the
    core's constants, so that each has one copy.
    """
    return {
        **params,
        "now_ms": (params["now"] - _EPOCH) // _MS,
        "lag_ms": CLOCK_LAG_TOLERATED // _MS,
        "extra": MAX_KEYS_PER_CLAIM_EXTRA,
    }


def _claimed_by_key(
    found: list[Any], params: dict[str, Any], limited: dict[str, Seen], held_back: HeldBack
) -> list[Any] | None:
    """The jobs ``claim_by_key`` claimed, in turn order; None if the queue has no rule now.

    Its last row carries no job: the time held the claim back until (a hold, a full or
    newer rate window of some key: this process's waiters of the queue wake then), and what
    the queue's row held, remembered in ``limited``.
    """
    *claimed, (*_, retry_at, what) = found
    queue: str = params["queue"]
    seen = _FOUND.get(what)
    if seen is None:
        limited[queue] = Seen.GLOBAL_AND_MORE  # the general claim reads the row next
        return None
    limited[queue] = seen
    if retry_at is not None:
        held_back(queue, params["now"], retry_at)
    return claimed


def _seen(row: Sequence[Any], now: datetime) -> Seen:
    """What a locked row holds at ``now`` (see :class:`Seen`)."""
    global_limit, rate_count, _, _, _, held_until, partitioned = row
    if partitioned:
        return Seen.PARTITIONED if global_limit is None else Seen.PARTITIONED_GLOBAL
    if global_limit is None:
        return Seen.NO_GLOBAL_LIMIT
    if rate_count is None and (held_until is None or held_until <= now):
        return Seen.GLOBAL_LIMIT
    return Seen.GLOBAL_AND_MORE


def _only_an_ended_hold(row: Sequence[Any], now: datetime) -> bool:
    """True when a locked row has no limit or rule, and no hold or one that ended long ago."""
    global_limit, rate_count, _, _, _, held_until, partitioned = row
    return (
        global_limit is None
        and rate_count is None
        and not partitioned
        and (held_until is None or held_until + HOLD_ROW_KEPT <= now)
    )


async def finish(
    connections: Connections,
    updates: Sequence[JobUpdate],
    *,
    worker_id: str,
    limited: Mapping[str, Seen] = MappingProxyType({}),
) -> list[bool]:
    """Write each outcome only if the job is still running at that attempt, owned by us.

    One statement for the batch. A batch naming a job twice is written one update at a
    time (the second must see the first). A row the database refuses (a result it cannot
    store) is retried alone, then written without its result, so that one bad outcome
    never blocks the others or leaves its job running forever.

    Then the queues given a free slot are woken if they have a global limit (their workers
    may wait for one): those that ``limited`` (the queues this backend claims the limited
    way) says have one, and after a rescue every queue rescued (the Rescuer claims nothing).
    A slot freed in a queue not known here is found by the workers' polling.
    """
    if not updates:
        return []
    freed: dict[int, str] = {}
    watched: set[int] = set()  # ended jobs an outcome waiter watches (migration 0012)
    written = await _finish(connections, updates, worker_id, freed, watched)
    if watched:
        await notify_ends(connections, watched)
    rescue = any(u.lease_expired_before is not None for u in updates)
    wake = {
        queue
        for queue in freed.values()
        if rescue or (queue in limited and limited[queue].has_global_limit)
    }
    if wake:
        await connections.fetchall("notify_limited_queues", {"queues": sorted(wake)})
    return written


async def notify_ends(connections: Connections, job_ids: Collection[int]) -> None:
    """NOTIFY the ends of watched jobs, best-effort: never fail a change already committed.

    The notice is a separate statement after the commit. If it fails, the change stands and
    the caller must not report an error for it (``finish`` would make the Acker rewrite rows
    that are refused and log a false "lease lost"; a cancel would say it failed); the outcome
    watcher's fallback read (1 to 5 s) finds the end instead.
    """
    try:
        await connections.fetchall("notify_ends", {"ids": sorted(job_ids)})
    except Exception as exc:
        logger.warning("could not notify the end of watched jobs %s: %s", sorted(job_ids), exc)


async def _finish(
    connections: Connections,
    updates: Sequence[JobUpdate],
    worker_id: str,
    freed: dict[int, str],
    watched: set[int],
) -> list[bool]:
    """:func:`finish` without the wake-up; adds each job written to ``freed`` (id: queue).

    Adds to ``watched`` the jobs it ended that an outcome waiter watches.
    """
    if len({u.job_id for u in updates}) < len(updates):
        return [(await _finish(connections, [u], worker_id, freed, watched))[0] for u in updates]
    try:
        written = await _finish_batch(connections, updates, worker_id, drop_results=False)
    except psycopg.DataError:
        if len(updates) > 1:
            return [
                (await _finish(connections, [u], worker_id, freed, watched))[0] for u in updates
            ]
        logger.error(
            "job %s: the database refused its result; storing it without one",
            updates[0].job_id,
            exc_info=True,
        )
        written = await _finish_batch(connections, updates, worker_id, drop_results=True)
    for job_id, (queue, is_watched) in written.items():
        freed[job_id] = queue
        if is_watched:
            watched.add(job_id)
    return [u.job_id in written for u in updates]


async def _finish_batch(
    connections: Connections, updates: Sequence[JobUpdate], worker_id: str, *, drop_results: bool
) -> dict[int, tuple[str, bool]]:
    """The jobs written: id -> (queue, whether an outcome waiter watches its end)."""
    params = rows.update_arrays(updates, worker_id, drop_results=drop_results)
    ending = flows.ends_steps(updates)
    if ending:  # workflow steps others wait for: released or cancelled in the same transaction
        found = await flows.finish_ending_steps(connections, params, ending)
    else:
        found = await connections.fetchall("finish_jobs", params)
    return {row[0]: (row[1], bool(row[2])) for row in found}


async def set_progress(
    connections: Connections, job_id: int, progress: Any, *, worker_id: str
) -> bool:
    """Store progress of a running job this worker owns."""
    params = {"id": job_id, "worker_id": worker_id, "progress": rows.dumps(progress)}
    return await connections.execute("set_progress", params) == 1


# -- leases (on the control connection) ------------------------------------------------------
async def extend_leases(
    control: ControlConnection,
    job_ids: Collection[int],
    *,
    worker_id: str,
    lease_until: datetime,
) -> LeaseReport:
    """Extend this worker's leases; report jobs lost or with a cancel request."""
    if not job_ids:
        return LeaseReport()
    ids = list(job_ids)
    params = {"ids": ids, "worker_id": worker_id, "lease_until": lease_until}
    held = await control.fetchall("extend_leases", params)
    cancel = frozenset(job_id for job_id, requested in held if requested)
    lost = frozenset(ids) - {job_id for job_id, _ in held}
    return LeaseReport(lost=lost, cancel_requested=cancel)


async def acquire_lease(
    control: ControlConnection, name: str, *, holder: str, now: datetime, until: datetime
) -> bool:
    """Take or renew the named lease unless another holder has it past ``now``."""
    params = {"name": name, "holder": holder, "now": now, "until": until}
    return bool(await control.fetchall("acquire_lease", params))


async def record_worker(control: ControlConnection, info: WorkerInfo) -> None:
    """Upsert a worker's liveness record."""
    await control.fetchall("record_worker", rows.worker_params(info))


# -- maintenance -----------------------------------------------------------------------------
async def promote_due(connections: Connections, *, now: datetime) -> int:
    """Move due scheduled/retryable jobs to pending (notifying their queues); how many."""
    promoted = await connections.fetchall("promote_due", {"now": now})
    return sum(count for _, count, _ in promoted)


async def expired_leases(connections: Connections, *, now: datetime, limit: int) -> list[Job]:
    """Return running jobs whose lease expired before ``now``, by id."""
    found = await connections.fetchall("expired_leases", {"now": now, "limit": limit})
    return [rows.job_from_row(row) for row in found]


async def finished_per_minute(
    connections: Connections, *, since: datetime
) -> list[tuple[datetime, JobState, int]]:
    """Count jobs finished since ``since`` per UTC minute and state (one index scan)."""
    found = await connections.fetchall("finished_per_minute", {"since": since})
    return [(minute, JobState(state), n) for minute, state, n in found]


async def prune(connections: Connections, *, before: Mapping[JobState, datetime]) -> int:
    """Delete finished jobs of each given state that finished before its cutoff.

    Deletes in batches of 10,000 so that no transaction holds many row locks for long. Then
    the per-key rows of partitioned queues that are long over (``prune_partitions``); only
    the jobs are counted.
    """
    while await connections.execute("prune_partitions", {"limit": PRUNE_BATCH}) >= PRUNE_BATCH:
        pass
    total = 0
    for state, cutoff in before.items():
        if state not in FINISHED_STATES:
            continue
        params = {"state": state.value, "before": cutoff, "limit": PRUNE_BATCH}
        while True:
            deleted = await connections.execute("prune_state", params)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
    return total
