"""Procrastinate (PostgreSQL, psycopg 3, LISTEN/NOTIFY)."""

import procrastinate
import psycopg
from harness.common import PG_DSN, amark, clear_marks, pg_execute, pg_has_table, venv_bin

NAME, BACKEND = "procrastinate", "postgres"
CONFIG = "1 proc, --concurrency 10; defaults (LISTEN/NOTIFY, finished rows kept as succeeded)"
BULK_NOTE = "Task.batch_defer_async"
ASYNC = True

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=PG_DSN))


@app.task(name="noop")
async def noop(i, ts=0.0):
    await amark(ts)


def reset():
    clear_marks()
    if not pg_has_table("procrastinate_jobs"):
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(procrastinate.schema.SchemaManager.get_schema())
    pg_execute(
        "TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers, "
        "procrastinate_workers RESTART IDENTITY CASCADE"
    )


async def aopen():
    await app.open_async()


async def aenqueue(i, ts=0.0):
    await noop.defer_async(i=i, ts=ts)


async def aenqueue_bulk(n):
    await noop.batch_defer_async(*[{"i": i, "ts": 0.0} for i in range(n)])


async def aclose():
    await app.close_async()


def worker_argv():
    return [venv_bin("procrastinate"), "--app=systems.procrastinate.app", "worker",
            "--concurrency", "10"]  # fmt: skip
