"""taskward on PostgreSQL, uncapped: no mark, completion read from the store."""

from harness.common import PG_DSN

from systems import _tw

NAME, BACKEND, KIND = "taskward-postgres-own", "postgres", "taskward"
MODE, PROCS = "own", 2
CONFIG = _tw.config("postgres", PROCS, MODE)
BULK_NOTE = "manager.sync.enqueue_many (batches of 1000)"
ASYNC = False  # the sync producer (Task.enqueue_sync); *-async rows measure the other
manager, task = _tw.build(PG_DSN, MODE)
_p = _tw.SyncProducer(manager, task)
open, enqueue, enqueue_bulk, close = _p.open, _p.enqueue, _p.enqueue_bulk, _p.close
reset = _tw.reset_postgres


def worker_argv(procs=PROCS):
    return _tw.worker_argv(f"systems.{__name__.rsplit('.', 1)[-1]}:manager", procs)


STORE = _tw.PostgresStore()
