"""SAQ (asyncio) on PostgreSQL (PostgresQueue, LISTEN/NOTIFY)."""

from harness.common import PG_DSN, amark, clear_marks, pg_execute, pg_has_table, venv_bin
from saq import Queue

NAME, BACKEND = "saq-pg", "postgres"
CONFIG = "saq --workers 1, concurrency 10 (default), PostgresQueue defaults"
BULK_NOTE = "none"
ASYNC = True

queue = Queue.from_url(PG_DSN)


async def noop(ctx, *, i, ts=0.0):
    await amark(ts)


settings = {"queue": queue, "functions": [noop], "concurrency": 10}


def reset():
    clear_marks()
    if pg_has_table("saq_jobs"):
        pg_execute("TRUNCATE saq_jobs, saq_stats")


async def aopen():
    await queue.connect()


async def aenqueue(i, ts=0.0):
    await queue.enqueue("noop", i=i, ts=ts)


aenqueue_bulk = None


async def aclose():
    await queue.disconnect()


def worker_argv():
    return [venv_bin("saq"), "systems.saq_pg.settings", "--workers", "1"]
