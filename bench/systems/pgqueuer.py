"""PgQueuer (PostgreSQL, asyncio, asyncpg driver, LISTEN/NOTIFY)."""

import asyncio
import sys
from contextlib import asynccontextmanager

import asyncpg
from harness.common import PG_DSN, amark, clear_marks, pg_execute, pg_has_table
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

NAME, BACKEND = "pgqueuer", "postgres"
CONFIG = (
    "1 proc, pgqueuer.run(factory) as `pgq run` does (its CLI crashes at start-up with typer "
    "0.29), asyncpg, batch_size 10 (default), no max_concurrent_tasks cap (default)"
)
BULK_NOTE = "Queries.enqueue with lists (one INSERT ... unnest)"
ASYNC = True


@asynccontextmanager
async def factory():
    conn = await asyncpg.connect(PG_DSN)
    pgq = PgQueuer(AsyncpgDriver(conn))

    @pgq.entrypoint("noop")
    async def noop(job):
        await amark(float(job.payload.split(b",")[1]))

    try:
        yield pgq
    finally:
        await conn.close()


async def _install():
    conn = await asyncpg.connect(PG_DSN)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


def reset():
    clear_marks()
    if not pg_has_table("pgqueuer"):
        asyncio.run(_install())
    pg_execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY")


_conn = None
_q = None


async def aopen():
    global _conn, _q
    _conn = await asyncpg.connect(PG_DSN)
    _q = Queries(AsyncpgDriver(_conn))


async def aenqueue(i, ts=0.0):
    await _q.enqueue("noop", f"{i},{ts!r}".encode())


async def aenqueue_bulk(n):
    await _q.enqueue(["noop"] * n, [f"{i},0.0".encode() for i in range(n)], [0] * n)


async def aclose():
    await _conn.close()


def worker_argv():
    return [sys.executable, "-m", "systems.pgqueuer"]


if __name__ == "__main__":
    import pgqueuer
    from pgqueuer.adapters.cli.cli import asyncio_run
    from pgqueuer.core import logconfig

    logconfig.setup_fancy_logger(logconfig.LogLevel.INFO)
    asyncio_run(pgqueuer.run("systems.pgqueuer:factory"))
