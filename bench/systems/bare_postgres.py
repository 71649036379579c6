"""Bare PostgreSQL loop (psycopg 3, SKIP LOCKED batch claims; see systems/_bare.py)."""

import sys

from systems import _bare

NAME, BACKEND, KIND = "bare-postgres", "postgres", "bare"
CONFIG = (
    f"bare loop, psycopg 3, 2 procs, claim {_bare.BATCH} (UPDATE..IN (SELECT..FOR UPDATE SKIP "
    "LOCKED) RETURNING), batched done UPDATE; fsync on; 1 ms claim poll when idle"
)
BULK_NOTE = "executemany in one transaction (pipelined)"
_p = None


def reset():
    _bare.pg_reset()


def open():
    global _p
    _p = _bare.PgProducer()


def enqueue(i, ts=0.0):
    _p.enqueue(i, ts)


def enqueue_bulk(n):
    _p.enqueue_bulk(n)


def close():
    _p.conn.close()


def worker_argv(procs=2):
    return [sys.executable, "-m", "systems.bare_postgres", str(procs)]


if __name__ == "__main__":
    _bare.run_procs(_bare.pg_loop, (), int(sys.argv[1]))
