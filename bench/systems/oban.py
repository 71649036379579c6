"""Oban for Python (oban-py, PostgreSQL). Needs Python >= 3.12: runs from bench/.venv312."""

import psycopg
from harness.common import PG_DSN, amark, clear_marks, venv_bin
from oban import Oban, worker
from oban.schema import install_sql

NAME, BACKEND = "oban", "postgres"
CONFIG = (
    "oban start --queues default:10 (1 proc, concurrency 10); CLI defaults otherwise (INFO "
    "log line per job, completed rows kept); Python 3.12 venv"
)
BULK_NOTE = "Oban.enqueue_many (OSS: one INSERT per job in one transaction)"
ASYNC = True
PYTHON = "3.12"


@worker(queue="default")
class Noop:
    async def process(self, job):
        await amark(job.args.get("ts", 0.0))


def reset():
    clear_marks()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('oban_jobs')").fetchone()[0] is None:
            conn.execute(install_sql())
        conn.execute("TRUNCATE oban_jobs, oban_leaders, oban_producers RESTART IDENTITY CASCADE")


_pool = None
_oban = None


async def aopen():
    global _pool, _oban
    _pool = await Oban.create_pool(PG_DSN)
    _oban = Oban(pool=_pool)  # client mode: inserts only


async def aenqueue(i, ts=0.0):
    await _oban.enqueue(Noop.new({"i": i, "ts": ts}))


async def aenqueue_bulk(n):
    await _oban.enqueue_many([Noop.new({"i": i, "ts": 0.0}) for i in range(n)])


async def aclose():
    await _pool.close()


def worker_argv():
    return [venv_bin("oban"), "start", "--dsn", PG_DSN, "--queues", "default:10"]
