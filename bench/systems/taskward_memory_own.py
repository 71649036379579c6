"""taskward on memory://, in the driver process, uncapped: drain() timed, no mark."""

from systems import _tw_memory

NAME, BACKEND, KIND = "taskward-memory-own", "memory", "taskward"
CONFIG = (
    "in-process (1 proc): drain = `await manager.drain()` (batch 10) timed to its return; "
    "latency: run_worker default=50 on the producer's loop, latency stored as job result"
)
BULK_NOTE = "Task.enqueue_many (batches of 1000)"
INPROCESS = True
run_phase = _tw_memory.runner("own")
