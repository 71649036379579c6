"""taskward on Redis, the async producer (await Task.enqueue), job body = mark(): enqueue only.

The main taskward-redis row produces with Task.enqueue_sync; this row shows what an async
application's producer gets (each call awaited before the next), as SAQ's and arq's rows do.
"""

from systems import _tw

NAME, BACKEND, KIND = "taskward-redis-async", "redis", "taskward"
MODE, PROCS = "mark", 2
CONFIG = _tw.config("redis, a fresh prefix= per run", PROCS, MODE)
BULK_NOTE = "Task.enqueue_many (scripts of 500 jobs)"
ASYNC = True
manager, task = _tw.build(_tw.REDIS_TW_URL, MODE)
_p = _tw.Producer(manager, task)
aopen, aenqueue, aenqueue_bulk, aclose = _p.aopen, _p.aenqueue, _p.aenqueue_bulk, _p.aclose
reset = _tw.reset_redis


def worker_argv(procs=PROCS):
    return _tw.worker_argv(f"systems.{__name__.rsplit('.', 1)[-1]}:manager", procs)
