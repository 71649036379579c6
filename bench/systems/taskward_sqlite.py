"""taskward on SQLite (defaults: WAL, synchronous FULL), job body = mark()."""

from systems import _tw

NAME, BACKEND, KIND = "taskward-sqlite", "sqlite", "taskward"
MODE, PROCS = "mark", 2
CONFIG = _tw.config("sqlite, synchronous FULL", PROCS, MODE)
BULK_NOTE = "manager.sync.enqueue_many (batches of 1000)"
ASYNC = False  # the sync producer (Task.enqueue_sync); *-async rows measure the other
manager, task = _tw.build(_tw.SQLITE_URL, MODE)
_p = _tw.SyncProducer(manager, task)
open, enqueue, enqueue_bulk, close = _p.open, _p.enqueue, _p.enqueue_bulk, _p.close
reset = _tw.reset_sqlite


def worker_argv(procs=PROCS):
    return _tw.worker_argv(f"systems.{__name__.rsplit('.', 1)[-1]}:manager", procs)
