"""Dramatiq on Redis."""

import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from harness.common import REDIS_URL, flush_queue_redis, mark

NAME, BACKEND = "dramatiq", "redis"
CONFIG = "--processes 2 --threads 1 (defaults: ncpu x 8); default middleware, no results"
BULK_NOTE = "none"

dramatiq.set_broker(RedisBroker(url=REDIS_URL))


@dramatiq.actor(queue_name="default")
def noop(i, ts=0.0):
    mark(ts)


def reset():
    flush_queue_redis()


def open():
    pass


def enqueue(i, ts=0.0):
    noop.send(i, ts)


enqueue_bulk = None


def close():
    pass


def worker_argv():
    return [sys.executable, "-m", "dramatiq", "systems.dramatiq", "--processes", "2",
            "--threads", "1"]  # fmt: skip
