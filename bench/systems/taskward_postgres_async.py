"""taskward on postgres, the async producer (await Task.enqueue), job body = mark(): enqueue only.

The main taskward-postgres row produces with Task.enqueue_sync; this row shows what an async
application's producer gets (each call awaited before the next), and the drain behind it.
"""

from harness.common import PG_DSN

from systems import _tw

NAME, BACKEND, KIND = "taskward-postgres-async", "postgres", "taskward"
MODE, PROCS = "mark", 2
CONFIG = _tw.config("postgres", PROCS, MODE)
BULK_NOTE = "Task.enqueue_many (batches of 1000)"
ASYNC = True
manager, task = _tw.build(PG_DSN, MODE)
_p = _tw.Producer(manager, task)
aopen, aenqueue, aenqueue_bulk, aclose = _p.aopen, _p.aenqueue, _p.aenqueue_bulk, _p.aclose
reset = _tw.reset_postgres


def worker_argv(procs=PROCS):
    return _tw.worker_argv(f"systems.{__name__.rsplit('.', 1)[-1]}:manager", procs)
