"""taskward on memory://, in the driver process, job body = mark() (see systems/_tw_memory.py)."""

from systems import _tw_memory

NAME, BACKEND, KIND = "taskward-memory", "memory", "taskward"
CONFIG = (
    "in-process (1 proc, producer + worker on one event loop), run_worker default=50; "
    "job body = Redis mark(), completion by the Redis counter"
)
BULK_NOTE = "Task.enqueue_many (batches of 1000)"
INPROCESS = True
run_phase = _tw_memory.runner("mark")
