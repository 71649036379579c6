"""Settings shared by the driver and every system, and the uniform job body ``mark()``.

The job body of every comparable figure is ``mark(ts)`` / ``await amark(ts)``: one pipelined,
non-transactional Redis round trip that

* RPUSHes ``start - ts`` (seconds) to ``bw:lat`` when the job carries an enqueue time ``ts``,
* INCRs ``bw:done`` (the completion counter the driver polls every 5 ms),
* SETNXes ``bw:first`` and SETs ``bw:last`` to the job's start time (steady drain rate).

PostgreSQL- and SQLite-backed systems use the same Redis counter, so completion detection costs
every system the same round trip. The marks live in Redis DB 15, apart from the Redis-backed
queues (DB 0), and are cleared before each phase.

``BENCH_MARK=file``: the job body is instead one 16-byte append (``O_APPEND`` ``os.write`` of
two little-endian doubles: the start time, and ``start - ts`` or -1) to the local file
``MARK_FILE``, with no Redis round trip, so that the queue's own cost shows: for the Redis
queues the mark no longer shares their server (nor its CPU). The driver counts done jobs as the
file's size / 16 (a ``stat`` every 5 ms) and reads first/last start and the latencies from it.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import redis

BENCH_DIR = Path(__file__).resolve().parent.parent
# run.py gives every `make bench` its own data dir, so that two runs never share files
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR") or BENCH_DIR / "data")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6391/0")
PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://bench@127.0.0.1:5443/bench")
MARK_URL = REDIS_URL.rsplit("/", 1)[0] + "/15"

K_DONE, K_FIRST, K_LAST, K_LAT = "bw:done", "bw:first", "bw:last", "bw:lat"
MARK = os.environ.get("BENCH_MARK", "redis")  # "redis" (default) or "file"
if MARK not in ("redis", "file"):
    raise SystemExit(f"BENCH_MARK={MARK!r}: use redis or file")
MARK_FILE = DATA_DIR / "marks.bin"
RECORD = struct.Struct("<dd")  # start time, start - ts (or -1.0): 16 bytes

_sync: redis.Redis | None = None
_async: Any = None
_pid = 0
_fd = -1
_fd_pid = 0


def _client() -> redis.Redis:
    global _sync, _pid
    if _sync is None or _pid != os.getpid():  # a forked child opens its own socket
        _sync, _pid = redis.Redis.from_url(MARK_URL), os.getpid()
    return _sync


def _append(now: float, ts: float) -> None:
    """The file mark: one 16-byte O_APPEND write (atomic between processes on a local fs)."""
    global _fd, _fd_pid
    if _fd_pid != os.getpid():  # a forked child opens its own descriptor
        _fd = os.open(MARK_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _fd_pid = os.getpid()
    os.write(_fd, RECORD.pack(now, now - ts if ts else -1.0))


def mark(ts: float = 0.0) -> None:
    """The job body of every comparable figure (one Redis round trip, or a file append)."""
    now = time.time()
    if MARK == "file":
        _append(now, ts)
        return
    pipe = _client().pipeline(transaction=False)
    if ts:
        pipe.rpush(K_LAT, now - ts)
    pipe.incr(K_DONE)
    pipe.setnx(K_FIRST, now)
    pipe.set(K_LAST, now)
    pipe.execute()


async def amark(ts: float = 0.0) -> None:
    """``mark`` for asyncio systems (redis.asyncio, one client per process)."""
    global _async
    now = time.time()
    if MARK == "file":
        _append(now, ts)
        return
    if _async is None:
        import redis.asyncio as aredis

        # blocking pool: a system without a concurrency cap (pgqueuer) waits for one of the 100
        # connections instead of failing with MaxConnectionsError
        pool = aredis.BlockingConnectionPool.from_url(MARK_URL, max_connections=100, timeout=None)
        _async = aredis.Redis(connection_pool=pool)
    pipe = _async.pipeline(transaction=False)
    if ts:
        pipe.rpush(K_LAT, now - ts)
    pipe.incr(K_DONE)
    pipe.setnx(K_FIRST, now)
    pipe.set(K_LAST, now)
    await pipe.execute()


def marks() -> redis.Redis:
    return redis.Redis.from_url(MARK_URL)


def clear_marks() -> None:
    marks().delete(K_DONE, K_FIRST, K_LAST, K_LAT)
    if MARK == "file":
        MARK_FILE.parent.mkdir(parents=True, exist_ok=True)
        with open(MARK_FILE, "wb"):  # truncate; writers append at the new end
            pass


def file_marks() -> list[tuple[float, float]]:
    """The records of the file mark: (start time, start - ts or -1.0) per job done."""
    data = MARK_FILE.read_bytes()
    return list(RECORD.iter_unpack(data[: len(data) - len(data) % RECORD.size]))


def file_marks_done() -> int:
    try:
        return os.stat(MARK_FILE).st_size // RECORD.size
    except FileNotFoundError:
        return 0


def flush_queue_redis() -> None:
    """Wipe the Redis DB the Redis-backed queues use, and the marks."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    clear_marks()


def pg_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)  # type: ignore[arg-type]


def pg_has_table(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    return row is not None and row[0] is not None


def venv_bin(name: str) -> str:
    """A console script of the running interpreter's venv."""
    return str(Path(sys.executable).parent / name)


def remove_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
