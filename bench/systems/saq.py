"""SAQ (asyncio) on Redis."""

from harness.common import REDIS_URL, amark, flush_queue_redis, venv_bin
from saq import Queue

NAME, BACKEND = "saq", "redis"
CONFIG = "saq --workers 1, concurrency 10 (default)"
BULK_NOTE = "none (Queue.map = gather of single enqueues that waits for results)"
ASYNC = True

queue = Queue.from_url(REDIS_URL)


async def noop(ctx, *, i, ts=0.0):
    await amark(ts)


settings = {"queue": queue, "functions": [noop], "concurrency": 10}


def reset():
    flush_queue_redis()


async def aopen():
    await queue.connect()


async def aenqueue(i, ts=0.0):
    await queue.enqueue("noop", i=i, ts=ts)


aenqueue_bulk = None


async def aclose():
    await queue.disconnect()


def worker_argv():
    return [venv_bin("saq"), "systems.saq.settings", "--workers", "1"]
