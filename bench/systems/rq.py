"""RQ on Redis, default Worker (forks a work horse per job)."""

from harness.common import REDIS_URL, flush_queue_redis, mark, venv_bin
from redis import Redis
from rq import Queue

NAME, BACKEND = "rq", "redis"
CONFIG = "rq worker-pool -n 2 (2 procs), default Worker (fork per job), default result_ttl"
BULK_NOTE = "Queue.enqueue_many (one pipeline)"
# The default Worker forks a work horse per job (~50-100 jobs/s on 2 cores): 10,000 jobs would
# take minutes per run, so RQ is measured on 1,000 jobs (rates are per second either way).
MAX_N = 1000


def noop(i, ts=0.0):
    mark(ts)


_q = None


def reset():
    flush_queue_redis()


def open():
    global _q
    _q = Queue("default", connection=Redis.from_url(REDIS_URL))


def enqueue(i, ts=0.0):
    _q.enqueue(noop, i, ts)


def enqueue_bulk(n):
    _q.enqueue_many([Queue.prepare_data(noop, args=(i, 0.0)) for i in range(n)])


def close():
    pass


def worker_argv():
    return [venv_bin("rq"), "worker-pool", "-n", "2", "-u", REDIS_URL, "-q", "default"]
