"""arq (asyncio, Redis)."""

from urllib.parse import urlsplit

from arq import create_pool
from arq.connections import RedisSettings
from harness.common import REDIS_URL, amark, flush_queue_redis, venv_bin

NAME, BACKEND = "arq", "redis"
CONFIG = "1 proc, max_jobs=10 (default); poll_delay 0.5 s, keep_result 3600 s (defaults)"
BULK_NOTE = "none"
ASYNC = True

_u = urlsplit(REDIS_URL)
SETTINGS = RedisSettings(host=_u.hostname, port=_u.port, database=int(_u.path.strip("/") or 0))


async def noop(ctx, i, ts=0.0):
    await amark(ts)


class WorkerSettings:
    functions = [noop]
    redis_settings = SETTINGS
    max_jobs = 10


_pool = None


def reset():
    flush_queue_redis()


async def aopen():
    global _pool
    _pool = await create_pool(SETTINGS)


async def aenqueue(i, ts=0.0):
    await _pool.enqueue_job("noop", i, ts)


aenqueue_bulk = None


async def aclose():
    await _pool.aclose()


def worker_argv():
    return [venv_bin("arq"), "systems.arq.WorkerSettings"]
