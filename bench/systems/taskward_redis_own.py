"""taskward on Redis, uncapped: no mark, completion read from the store."""

from systems import _tw

NAME, BACKEND, KIND = "taskward-redis-own", "redis", "taskward"
MODE, PROCS = "own", 2
CONFIG = _tw.config("redis, a fresh prefix= per run", PROCS, MODE)
BULK_NOTE = "manager.sync.enqueue_many (scripts of 500 jobs)"
ASYNC = False  # the sync producer (Task.enqueue_sync)
manager, task = _tw.build(_tw.REDIS_TW_URL, MODE)
_p = _tw.SyncProducer(manager, task)
open, enqueue, enqueue_bulk, close = _p.open, _p.enqueue, _p.enqueue_bulk, _p.close
reset = _tw.reset_redis


def worker_argv(procs=PROCS):
    return _tw.worker_argv(f"systems.{__name__.rsplit('.', 1)[-1]}:manager", procs)


STORE = _tw.RedisStore()
