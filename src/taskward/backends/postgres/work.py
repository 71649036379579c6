"""The worker's statements: claims, acks, progress, leases, and the maintenance services'.

- Claim: one ``UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED LIMIT n))
  RETURNING``, so workers never block each other (its comments in ``queries.sql`` say why
  this shape, and why it commits without waiting for the WAL flush).
- Limited claim (a queue with a ``global_limit``, migration 0006): the plain claim takes no
  job of such a queue and says so; then one transaction locks the queue's limit row
  ``FOR UPDATE`` (claims of the queue take turns), and a second statement, whose snapshot
  is taken after the lock was granted, claims at most the limit minus the queue's running
  jobs it counts. The backend remembers the queues found limited and claims them this way
  first, until the row is gone.
- Ack: the outcomes of a batch are written by one ``UPDATE … FROM unnest(arrays)``, fenced
  on the job's state, attempt and owner, returning the ids written; a limited queue that
  had a job finish is then notified (a slot came free), when this backend knows it limited.
- Leases, heartbeats, worker records and leader election run on the control connection.
- Maintenance: promote due jobs, find expired leases (the Rescuer), prune, count finished.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import psycopg

from taskward.backends.postgres import rows
from taskward.backends.postgres.connections import Connections
from taskward.backends.postgres.control import ControlConnection
from taskward.errors import BackendUnavailable
from taskward.jobs import FINISHED_STATES, Job, JobState, JobUpdate, LeaseReport, WorkerInfo

__all__ = [
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


async def fetch(
    connections: Connections,
    *,
    queue: str,
    limit: int,
    worker_id: str,
    now: datetime,
    lease_until: datetime,
    limited: set[str],
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
    limited: set[str],
) -> list[Job]:
    """Claim up to ``limit`` pending jobs of ``queue`` in priority, then schedule order.

    ``limited``: the queues this backend last found with a global limit (updated here). A
    queue not in it is claimed by one statement, which claims nothing of a queue that has a
    limit; when it claims nothing, one probe asks whether the queue has a limit, and if so
    the limited claim (:func:`_fetch_limited`) runs at once, and runs first for that queue
    from then on, until it finds the limit gone.
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
        claimed = await _fetch_limited(connections, params, limited)
    else:
        claimed = await connections.fetchall("fetch_jobs", params)
        if not claimed and (await connections.fetchall("queue_is_limited", params))[0][0]:
            limited.add(queue)
            claimed = await _fetch_limited(connections, params, limited)
    claimed.sort(key=rows.claim_order)
    return [rows.job_from_row(row) for row in claimed]


async def _fetch_limited(
    connections: Connections, params: dict[str, Any], limited: set[str]
) -> list[Any]:
    """The claim of a queue with a global limit: one transaction, two statements.

    Claims of the queue take turns on its limit row (``fetch_limit_lock``); the claim that
    follows counts the queue's running jobs in a snapshot taken after its turn came, so
    claims from any number of processes never exceed the limit together. A limit cleared
    meanwhile: the plain claim, in the same transaction.
    """
    q = connections.q
    async with connections.connection() as conn, conn.transaction():
        locked = await (await conn.run(q["fetch_limit_lock"], params)).fetchall()
        if not locked:
            limited.discard(params["queue"])
            found: list[Any] = await (await conn.run(q["fetch_jobs"], params)).fetchall()
            return found
        capped = {**params, "global_limit": locked[0][0]}
        claimed: list[Any] = await (await conn.run(q["fetch_jobs_limited"], capped)).fetchall()
        return claimed


async def finish(
    connections: Connections,
    updates: Sequence[JobUpdate],
    *,
    worker_id: str,
    limited: Collection[str] = frozenset(),
) -> list[bool]:
    """Write each outcome only if the job is still running at that attempt, owned by us.

    One statement for the batch. A batch naming a job twice is written one update at a
    time (the second must see the first). A row the database refuses (a result it cannot
    store) is retried alone, then written without its result, so that one bad outcome
    never blocks the others or leaves its job running forever.

    Then the queues given a free slot are woken if they have a global limit (their workers
    may wait for one): those in ``limited`` (the queues this backend claims the limited way),
    and after a rescue every queue rescued (the Rescuer claims nothing). A slot freed in a
    queue not known here is found by the workers' polling.
    """
    if not updates:
        return []
    freed: dict[int, str] = {}
    written = await _finish(connections, updates, worker_id, freed)
    rescue = any(u.lease_expired_before is not None for u in updates)
    wake = {queue for queue in freed.values() if rescue or queue in limited}
    if wake:
        await connections.fetchall("notify_limited_queues", {"queues": sorted(wake)})
    return written


async def _finish(
    connections: Connections,
    updates: Sequence[JobUpdate],
    worker_id: str,
    freed: dict[int, str],
) -> list[bool]:
    """:func:`finish` without the wake-up; adds each job written to ``freed`` (id: queue)."""
    if len({u.job_id for u in updates}) < len(updates):
        return [(await _finish(connections, [u], worker_id, freed))[0] for u in updates]
    try:
        written = await _finish_batch(connections, updates, worker_id, drop_results=False)
    except psycopg.DataError:
        if len(updates) > 1:
            return [(await _finish(connections, [u], worker_id, freed))[0] for u in updates]
        logger.error(
            "job %s: the database refused its result; storing it without one",
            updates[0].job_id,
            exc_info=True,
        )
        written = await _finish_batch(connections, updates, worker_id, drop_results=True)
    freed.update(written)
    return [u.job_id in written for u in updates]


async def _finish_batch(
    connections: Connections, updates: Sequence[JobUpdate], worker_id: str, *, drop_results: bool
) -> dict[int, str]:
    params = rows.update_arrays(updates, worker_id, drop_results=drop_results)
    return dict(await connections.fetchall("finish_jobs", params))


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

    Deletes in batches of 10,000 so that no transaction holds many row locks for long.
    """
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
