"""pgqueuer with 2 worker processes: drains compared at equal process counts (issue 24).

The same system as ``pgqueuer`` (producer, job body, settings); its worker command starts two
``pgqueuer.run`` processes in one session, which the driver stops together.
"""

import sys

from systems.pgqueuer import (  # noqa: F401 (the driver reads these from this module)
    ASYNC,
    BACKEND,
    BULK_NOTE,
    aclose,
    aenqueue,
    aenqueue_bulk,
    aopen,
    factory,
    reset,
)

NAME = "pgqueuer-2"
CONFIG = (
    "2 procs, each pgqueuer.run(factory) as `pgq run` does, asyncpg, batch_size 10 (default), "
    "no max_concurrent_tasks cap (default)"
)


def worker_argv():
    one = f"{sys.executable} -m systems.pgqueuer"
    return ["sh", "-c", f"{one} & {one} & wait"]
