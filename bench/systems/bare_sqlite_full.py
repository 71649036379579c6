"""Bare SQLite loop, WAL + synchronous=FULL (= SqliteHuey's and taskward's default durability)."""

from systems import _bare, bare_sqlite

NAME, BACKEND, KIND = "bare-sqlite-full", "sqlite", "bare"
SYNC = "FULL"
CONFIG = bare_sqlite.CONFIG.replace("synchronous=NORMAL", "synchronous=FULL")
BULK_NOTE = bare_sqlite.BULK_NOTE
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
    return [bare_sqlite.sys.executable, "-m", "systems.bare_sqlite", str(procs), SYNC]
