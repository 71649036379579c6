"""Huey on SQLite (SqliteHuey defaults: WAL, synchronous=FULL as SQLite's default)."""

import sys

from harness.common import DATA_DIR, clear_marks, mark
from huey import SqliteHuey

NAME, BACKEND = "huey-sqlite", "sqlite"
CONFIG = (
    "huey_consumer -w 2 -k process (2 procs); SqliteHuey defaults (WAL, synchronous FULL); "
    "empty-queue polling 0.1 s x1.15 backoff (defaults)"
)
BULK_NOTE = "none"
DB = DATA_DIR / "huey-sqlite.db"
DB.parent.mkdir(parents=True, exist_ok=True)
huey = SqliteHuey("bench", filename=str(DB))


@huey.task()
def noop(i, ts=0.0):
    mark(ts)


def reset():
    clear_marks()
    huey.storage.flush_all()


def open():
    pass


def enqueue(i, ts=0.0):
    noop(i, ts)


enqueue_bulk = None


def close():
    pass


def worker_argv():
    return [sys.executable, "-m", "huey.bin.huey_consumer", "systems.huey_sqlite.huey", "-w",
            "2", "-k", "process", "-n", "-q"]  # fmt: skip
