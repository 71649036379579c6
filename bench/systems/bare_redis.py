"""Bare Redis loop (one list; RPOP 100 claims, no in-flight record; BRPOP when idle)."""

import sys

from harness.common import flush_queue_redis

from systems import _bare

NAME, BACKEND, KIND = "bare-redis", "redis", "bare"
CONFIG = f"bare loop, 2 procs, RPOP {_bare.BATCH} (no ack/in-flight record), BRPOP when idle"
BULK_NOTE = "one pipeline of LPUSHes"
_p = None


def reset():
    flush_queue_redis()


def open():
    global _p
    _p = _bare.RedisProducer()


def enqueue(i, ts=0.0):
    _p.enqueue(i, ts)


def enqueue_bulk(n):
    _p.enqueue_bulk(n)


def close():
    _p.r.close()


def worker_argv(procs=2):
    return [sys.executable, "-m", "systems.bare_redis", str(procs)]


if __name__ == "__main__":
    _bare.run_procs(_bare.redis_loop, (), int(sys.argv[1]))
