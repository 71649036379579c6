"""Bare SQLite loop, WAL + synchronous=NORMAL (see systems/_bare.py)."""

import sys

from systems import _bare

NAME, BACKEND, KIND = "bare-sqlite", "sqlite", "bare"
SYNC = "NORMAL"
CONFIG = (
    f"bare loop, 2 procs, claim {_bare.BATCH}/txn (BEGIN IMMEDIATE; UPDATE..RETURNING), batched "
    f"done UPDATE; WAL, synchronous={SYNC}; 1 ms read poll when idle"
)
BULK_NOTE = "executemany in one transaction"
_p = None


def reset():
    _bare.sqlite_reset(SYNC)


def open():
    global _p
    _p = _bare.SqliteProducer(SYNC)


def enqueue(i, ts=0.0):
    _p.enqueue(i, ts)


def enqueue_bulk(n):
    _p.enqueue_bulk(n)


def close():
    _p.conn.close()


def worker_argv(procs=2):
    return [sys.executable, "-m", "systems.bare_sqlite", str(procs), SYNC]


if __name__ == "__main__":
    _bare.run_procs(_bare.sqlite_loop, (sys.argv[2],), int(sys.argv[1]))
