"""Item 1: the whole worker group SIGKILLed at random moments, five times, then restarted.

Every job ends ``completed``, every body finished at least once, and a job ran twice only if it
was running (or finished but not yet acknowledged) when a kill landed.
"""

from __future__ import annotations

import random
import sqlite3
import time

import pytest

from reliability.harness import (
    LONG,
    Workers,
    all_jobs,
    count_of,
    enqueue,
    job_number,
    report,
    run,
    sized,
    wait_until,
)
from taskward import JobState

KILLS = 5


def running_at_kill(url: str) -> set[int]:
    """Jobs the store still holds as running: claimed, and not acknowledged, when killed."""
    return {job_number(j) for j in run(all_jobs(url)) if j.state is JobState.RUNNING}


@pytest.mark.timeout(1800 if LONG else 240)
def test_group_killed_five_times_loses_nothing(workers: Workers, store_url: str) -> None:
    n = sized(2_000, 10_000)
    rng = random.Random(7)
    began = time.monotonic()
    run(enqueue(store_url, n))
    workers.base_env = {"REL_SLEEP": "0.003", "REL_CONCURRENCY": "8", "REL_LEASE": "1"}
    hit: set[int] = set()  # jobs running (in the log or in the store) when a kill landed
    for kill in range(KILLS):
        # Kill k lands after about k/8 of the jobs: the last one leaves about 3/8 for the
        # restart (with 2/7 left, a fast store on an idle machine could drain it between the
        # last target and its kill, and the restart had nothing to prove).
        target = (kill + 1) * n // 8 + rng.randint(-n // 30, n // 30)
        workers.start(2)
        wait_until(lambda t=target: len(workers.log().dones) >= t, 120, "progress before a kill")
        time.sleep(rng.uniform(0, 0.2))  # a random moment, not just after a done line
        workers.kill_group()
        hit |= workers.log().unfinished() | running_at_kill(store_url)
    workers.start(2)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == n, 300, "all completed")
    assert workers.stop_all() == [0, 0]

    log = workers.log()
    jobs = run(all_jobs(store_url))
    assert len(jobs) == n
    assert {j.state for j in jobs} == {JobState.COMPLETED}
    lost = set(range(n)) - set(log.dones)
    assert not lost, f"bodies never finished: {sorted(lost)[:20]}"
    assert hit, "the kills should land while jobs run"
    assert any(p[2] == str(KILLS) for p in log.of("done")), "the restart had work left"
    started_twice = {i for i, c in log.starts.items() if c > 1}
    done_twice = {i for i, c in log.dones.items() if c > 1}
    assert started_twice <= hit, sorted(started_twice - hit)[:20]
    assert done_twice <= hit, sorted(done_twice - hit)[:20]
    assert log.overlaps() == []  # never two live runs of one job at once
    reclaimed = {job_number(j) for j in jobs if j.attempt > 1}
    assert reclaimed <= hit, sorted(reclaimed - hit)[:20]
    if store_url.startswith("sqlite"):
        path = store_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    report(
        "kill9",
        backend=store_url.split(":")[0],
        jobs=n,
        kills=KILLS,
        running_at_kills=len(hit),
        started_twice=len(started_twice),
        done_twice=len(done_twice),
        lost=len(lost),
        overlaps=0,
        seconds=round(time.monotonic() - began, 1),
    )
