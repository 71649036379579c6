"""Bulk inserts: jobs without unique keys streamed by one ``COPY … FROM STDIN``.

One COPY is one transaction, so a bulk is all or none. Its rows take their ids from the
identity as the server reads them (COPY has no RETURNING): a ``nextval`` drawn before the
COPY is the floor, and ``bulk_ids`` after it either confirms floor + 1 … floor + n or
returns the rows of the span this transaction wrote (another session drew ids meanwhile).
Each batch is written as soon as it is built, so the server stores rows while the caller
builds the next one. The queues given pending jobs are notified after the commit, by a
statement of its own: a notifying commit holds a cluster-wide lock until it is flushed.

COPY computes nothing, so the rows of a partitioned queue get their keys here: the statement
that draws the floor also reads every queue's partition rule, in the bulk's transaction (its
lock on the limits table is then held until the commit, as an insert statement's is), and each
job without a key from its producer gets the key its queue's rule reads
(:meth:`~taskward.limits.PartitionBy.key_of`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Final, cast

import psycopg

from taskward.backends.postgres import rows
from taskward.backends.postgres.connections import AConn, Connections
from taskward.backends.sql.rows import jobs_from_batch, with_ids
from taskward.errors import BackendUnavailable, InvalidJob
from taskward.jobs import Job, JobState, NewJobBatch
from taskward.limits import PartitionBy

__all__ = ["insert_stream"]

logger = logging.getLogger(__name__)
# Characters per COPY write, at least (smaller batches are joined first; a bulk enqueue's
# batch of 100 plain jobs is about 12,000): the server stores one write's rows while the
# client builds the next batch.
COPY_WRITE_CHARS: Final = 8192


async def insert_stream(
    connections: Connections, batches: Iterable[NewJobBatch], *, count: int, now: datetime
) -> list[Job]:
    """Insert ``count`` jobs without unique keys by one COPY, written batch by batch.

    An exception from ``batches`` cancels the COPY: no job is stored, and the caller gets
    that exception.
    """
    try:
        return await connections.run(lambda conn: _copy_in(connections, conn, batches, count, now))
    except (psycopg.DataError, UnicodeEncodeError) as exc:
        raise InvalidJob(f"PostgreSQL cannot store these jobs: {exc}") from exc


async def _copy_in(
    connections: Connections,
    conn: AConn,
    batches: Iterable[NewJobBatch],
    count: int,
    now: datetime,
) -> list[Job]:
    q = connections.q
    failed: list[BaseException] = []
    try:
        async with conn.transaction():
            cursor = await conn.execute(q["bulk_floor"])
            floor, partitioned, rules = cast(
                tuple[int, list[str], list[str]], await cursor.fetchone()
            )
            keyed = {
                queue: PartitionBy.parse(rule)
                for queue, rule in zip(partitioned, rules, strict=True)
            }
            async with conn.cursor() as cur, cur.copy(q["copy_jobs"]) as copy:
                jobs, queues = await _copy_batches(copy, batches, failed, floor, count, now, keyed)
            cursor = await conn.execute(q["bulk_ids"], {"floor": floor, "n": count})
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
            await conn.execute(q["notify_queues"], {"queues": sorted(queues)})
        except psycopg.Error as exc:
            # The jobs are stored: failing the call now would invite a duplicate retry.
            logger.warning("jobs stored; their wake-up failed (%s): polling finds them", exc)
    return jobs


async def _copy_batches(
    copy: psycopg.AsyncCopy,
    batches: Iterable[NewJobBatch],
    failed: list[BaseException],
    floor: int,
    count: int,
    now: datetime,
    rules: dict[str, PartitionBy | None],
) -> tuple[list[Job], set[str]]:
    """Write ``batches`` into ``copy``; return their jobs and the queues given pending jobs.

    The jobs are built with the ids the rows take when no other session draws one from the
    identity during the COPY, ``floor + 1`` on: the caller checks that after. ``rules``: the
    partition rule of each partitioned queue.
    """
    jobs: list[Job] = []
    queues: set[str] = set()
    lines: list[str] = []  # formatted, not written yet
    for batch in _noting_failure(batches, failed):
        if len(jobs) + len(batch) > count:
            raise ValueError(f"insert_stream was given more than count={count} jobs")
        keys = rows.batch_keys(batch, rules.get(batch.template.queue))
        lines.append(rows.copy_rows(batch, now, keys))
        first = floor + 1 + len(jobs)
        ids = range(first, first + len(batch))
        jobs.extend(jobs_from_batch(batch, ids, now, keys or [None] * len(batch)))
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
