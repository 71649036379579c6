"""Celery 5 on Redis (prefork)."""

import sys

from celery import Celery
from harness.common import REDIS_URL, flush_queue_redis, mark

NAME, BACKEND = "celery", "redis"
CONFIG = (
    "prefork, --concurrency 2; defaults otherwise (prefetch x4, early ack, no result backend); "
    "--without-gossip/mingle/heartbeat, -l WARNING"
)
BULK_NOTE = "none (group() publishes one message per task)"

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(i, ts=0.0):
    mark(ts)


def reset():
    flush_queue_redis()


def open():
    pass


def enqueue(i, ts=0.0):
    noop.apply_async((i, ts))


enqueue_bulk = None


def close():
    pass


def worker_argv():
    return [
        sys.executable, "-m", "celery", "-A", "systems.celery", "worker", "-c", "2", "-P",
        "prefork", "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
