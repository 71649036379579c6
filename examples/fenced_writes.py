"""Fencing a job's own writes with ``ctx.fence_token`` (PostgreSQL).

taskward fences its own bookkeeping: a worker that lost its lease (paused, cut off from the
network) cannot complete a job someone else has rescued. The job's *own* writes are the
job's business. Here the job stores ``ctx.fence_token`` beside the row it writes, and the
write is conditional on the stored token not being greater, so a stale run that wakes up
after a newer run has written changes nothing::

    TASKWARD_URL=postgresql://localhost/app python examples/fenced_writes.py

``main()`` creates the example's tables, enqueues one job, runs it, then shows a write with an
older token being refused. ``tests/reliability/test_fence_token.py`` runs the real thing:
two worker processes, the first paused with SIGSTOP mid-job until its lease is rescued.
Importing this module starts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from decimal import Decimal

import psycopg

from taskward import JobContext, TaskManager

URL = os.environ.get("TASKWARD_URL", "postgresql://localhost/taskward_example")
# The test shortens the lease so that a paused worker loses its job within a second or two.
tw = TaskManager(URL, lease_seconds=float(os.environ.get("LEASE_SECONDS", "30")))
logger = logging.getLogger("fenced_writes")

SCHEMA = """
CREATE TABLE IF NOT EXISTS invoice_lines (
    invoice_id bigint NOT NULL,
    amount numeric NOT NULL
);
CREATE TABLE IF NOT EXISTS invoice_totals (
    invoice_id bigint PRIMARY KEY,
    total numeric NOT NULL,
    written_by text NOT NULL,
    job_id bigint NOT NULL,
    fence_token bigint NOT NULL
);
"""

# The whole pattern is this WHERE: an existing row is replaced only by a run of a later job, or
# by a run of the same job whose token is at least the stored one. A run holding an older
# token updates nothing (rowcount 0). Tokens count the runs of one job, so they are compared
# together with the job id (ids only grow): a new job for the invoice wins over any run of
# an older one, whatever their tokens.
FENCED_UPSERT = """
INSERT INTO invoice_totals AS stored (invoice_id, total, written_by, job_id, fence_token)
VALUES (%(invoice_id)s, %(total)s, %(written_by)s, %(job_id)s, %(token)s)
ON CONFLICT (invoice_id) DO UPDATE
    SET total = excluded.total, written_by = excluded.written_by,
        job_id = excluded.job_id, fence_token = excluded.fence_token
    WHERE (stored.job_id, stored.fence_token) <= (excluded.job_id, excluded.fence_token)
"""


class StaleRun(Exception):
    """A newer run of this job has already written: this run's write was refused."""


async def write_total(
    conn: psycopg.AsyncConnection[object],
    invoice_id: int,
    total: Decimal,
    *,
    job_id: int,
    token: int,
    written_by: str,
) -> bool:
    """Store ``total`` unless a later run already did; True if written."""
    params = {
        "invoice_id": invoice_id,
        "total": total,
        "written_by": written_by,
        "job_id": job_id,
        "token": token,
    }
    cursor = await conn.execute(FENCED_UPSERT, params)
    return cursor.rowcount == 1


@tw.task(name="fenced.total_invoice", max_attempts=5)
async def total_invoice(ctx: JobContext, invoice_id: int) -> str:
    """Sum an invoice's lines and store the total, fenced by this run's token."""
    token = ctx.fence_token
    print(f"job {ctx.job_id}: computing, fence token {token}, pid {os.getpid()}", flush=True)
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT coalesce(sum(amount), 0) FROM invoice_lines WHERE invoice_id = %s",
            (invoice_id,),
        )
        row = await cursor.fetchone()
        total = Decimal(row[0]) if row else Decimal(0)
        # Stands for slow work (a report, a call to a partner): where a pause hurts most.
        await asyncio.sleep(float(os.environ.get("WORK_SECONDS", "0")))
        written_by = f"pid {os.getpid()} attempt {ctx.attempt}"
        fenced = {"job_id": ctx.job_id, "token": token, "written_by": written_by}
        if not await write_total(conn, invoice_id, total, **fenced):
            print(f"job {ctx.job_id}: write with token {token} refused", flush=True)
            raise StaleRun(f"invoice {invoice_id}: a newer run (token > {token}) has written")
    print(f"job {ctx.job_id}: wrote total {total} with token {token}", flush=True)
    return str(total)


async def setup(invoice_id: int, amounts: list[str]) -> None:
    """Create the example's tables and (re)write one invoice's lines."""
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        await conn.execute(SCHEMA)
        await conn.execute("DELETE FROM invoice_lines WHERE invoice_id = %s", (invoice_id,))
        await conn.execute("DELETE FROM invoice_totals WHERE invoice_id = %s", (invoice_id,))
        for amount in amounts:
            await conn.execute(
                "INSERT INTO invoice_lines VALUES (%s, %s)", (invoice_id, Decimal(amount))
            )


async def demo() -> None:
    """Run one job, then show that a write carrying an older token changes nothing."""
    await setup(1, ["12.50", "7.25"])
    async with tw:
        job = await total_invoice.enqueue(1)
        await tw.drain()
        done = await tw.get_task_status(job.id)
        print(f"job {job.id}: {done.state.value}, total {done.result}")
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        # A run claimed before this one (a zombie) holds a smaller token: refused.
        stale = await write_total(
            conn, 1, Decimal("0"), job_id=job.id, token=0, written_by="a zombie"
        )
        cursor = await conn.execute(
            "SELECT total, written_by, job_id, fence_token FROM invoice_totals WHERE invoice_id = 1"
        )
        print(f"stale write accepted: {stale}; stored row: {await cursor.fetchone()}")


def main() -> None:
    """Entry point of ``python examples/fenced_writes.py``."""
    asyncio.run(demo())


if __name__ == "__main__":
    main()
