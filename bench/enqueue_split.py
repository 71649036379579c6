"""Where one PostgreSQL enqueue spends its time: round trip, taskward's statement, Python.

``python bench/enqueue_split.py postgresql://user@host:port/db`` (a schema of its own is
created). Medians of 3 runs of 1,500 calls, in µs per call: ``SELECT 1`` (the round trip), a bare
``INSERT … RETURNING`` into a one-column table, taskward's insert statement alone (the same
SQL and parameters ``enqueue_sync`` sends), and ``Task.enqueue_sync`` itself.
"""

import statistics
import sys
import time

import psycopg
from psycopg.types.json import Jsonb

from taskward import TaskManager

N = 1500


def per_call(fn) -> float:
    t = time.perf_counter()
    for i in range(N):
        fn(i)
    return (time.perf_counter() - t) / N * 1e6


def main() -> None:
    url = f"{sys.argv[1]}{'&' if '?' in sys.argv[1] else '?'}schema=split{int(time.time())}"
    tw = TaskManager(url)

    @tw.task(name="noop")
    def noop(i: int) -> None: ...

    noop.enqueue_sync(0)
    backend = tw.backend
    new = tw.build_job("noop", [1], None)
    name, params = backend._offers.single_insert([new], tw.clock.now())
    with psycopg.connect(backend.config.conninfo, autocommit=True) as con:
        con.execute("CREATE TEMP TABLE bare_split (id bigserial PRIMARY KEY, payload jsonb)")
        res: dict[str, list[float]] = {
            "select 1": [],
            "bare insert": [],
            "taskward statement": [],
            "enqueue_sync": [],
        }
        for _ in range(3):
            res["select 1"].append(per_call(lambda i: con.execute("SELECT 1").fetchall()))
            res["bare insert"].append(
                per_call(
                    lambda i: con.execute(
                        "INSERT INTO bare_split (payload) VALUES (%s) RETURNING id",
                        (Jsonb({"a": i}),),
                    ).fetchall()
                )
            )
            res["taskward statement"].append(
                per_call(lambda i: con.execute(backend.q[name], params).fetchall())
            )
            res["enqueue_sync"].append(per_call(noop.enqueue_sync))
    for key, values in res.items():
        print(f"{key}: {statistics.median(values):.0f} µs")
    print(f"statement: {name}")
    tw.sync.shutdown()


if __name__ == "__main__":
    main()
