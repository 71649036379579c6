"""Issue 21: a queue's global limit holds across worker processes, and survives a kill -9.

The run log is written by the job bodies outside the store: ``start`` after the claim, ``done``
before the outcome is written, so the number of runs open in the log never exceeds the number
of running jobs the store counts against the limit. At no point may it exceed the limit.
"""

from __future__ import annotations

import time

from reliability.harness import (
    RunLog,
    Workers,
    count_of,
    enqueue,
    report,
    run,
    sized,
    wait_until,
)
from taskward import JobState, TaskManager

LIMIT = 5


def most_at_once(log: RunLog) -> int:
    """The largest number of runs open at once, in the log's (append) order."""
    open_runs = 0
    most = 0
    for parts in log.lines:
        if parts[0] == "start":
            open_runs += 1
            most = max(most, open_runs)
        elif parts[0] == "done":
            open_runs -= 1
    return most


async def limit(url: str, global_limit: int | None) -> None:
    async with TaskManager(url) as tw:
        await tw.configure_queue("default", global_limit=global_limit)


def test_four_workers_of_ten_slots_never_run_more_than_the_global_limit(
    workers: Workers, store_url: str
) -> None:
    n = sized(200, 2000)
    run(limit(store_url, LIMIT))
    run(enqueue(store_url, n))
    workers.base_env = {"REL_SLEEP": "0.02", "REL_CONCURRENCY": "10", "REL_LEASE": "5"}
    started = time.monotonic()
    workers.start(4)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == n, 120, "all jobs completed")
    elapsed = time.monotonic() - started
    assert workers.stop_all() == [0, 0, 0, 0]
    log = workers.log()
    most = most_at_once(log)
    report("global limit, 4 workers x 10 slots", jobs=n, limit=LIMIT, most_at_once=most)
    assert most <= LIMIT
    assert most == LIMIT  # the limit bound, rather than some other bottleneck
    assert log.overlaps() == []
    assert set(log.dones) == set(range(n))
    assert elapsed < 120


def test_slots_held_by_a_killed_worker_come_back_after_its_lease(
    workers: Workers, store_url: str
) -> None:
    run(limit(store_url, 2))
    run(enqueue(store_url, 6))
    # The first worker takes both slots with long bodies, and dies holding them.
    workers.base_env = {"REL_SLEEP": "30", "REL_CONCURRENCY": "10", "REL_LEASE": "1"}
    workers.start(1)
    wait_until(lambda: count_of(store_url, JobState.RUNNING) == 2, 30, "both slots taken")
    workers.kill_group()
    # A healthy worker gets the slots back once the dead one's leases are rescued.
    workers.base_env = {"REL_SLEEP": "0.01", "REL_CONCURRENCY": "10", "REL_LEASE": "1"}
    workers.start(1)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == 6, 60, "every job completed")
    assert workers.stop_all() == [0]
    log = workers.log()
    assert most_at_once(RunLog([p for p in log.lines if p[2] == "1"])) <= 2
