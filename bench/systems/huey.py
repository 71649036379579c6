"""Huey on Redis (RedisHuey)."""

import sys

from harness.common import REDIS_URL, flush_queue_redis, mark
from huey import RedisHuey

NAME, BACKEND = "huey", "redis"
CONFIG = "huey_consumer -w 2 -k process (2 procs), blocking BRPOP (default), -n -q"
BULK_NOTE = "none (.map() loops single enqueues)"

huey = RedisHuey("bench", url=REDIS_URL)


@huey.task()
def noop(i, ts=0.0):
    mark(ts)


def reset():
    flush_queue_redis()


def open():
    pass


def enqueue(i, ts=0.0):
    noop(i, ts)


enqueue_bulk = None


def close():
    pass


def worker_argv():
    return [sys.executable, "-m", "huey.bin.huey_consumer", "systems.huey.huey", "-w", "2",
            "-k", "process", "-n", "-q"]  # fmt: skip
