"""Item 2: a crash (``os._exit``) injected at each step of claim → run → finish.

The first worker dies the third time it reaches the step; a clean worker then finishes the
work. Whatever the step, no job is lost; a job runs twice only if it was in flight at the
crash, and each step shows its own signature (see ``expect``).
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from reliability.harness import (
    Workers,
    all_jobs,
    count_of,
    enqueue,
    job_number,
    report,
    run,
    wait_until,
)
from taskward import Job, JobState
from tests_support.reliability_app import CRASH_EXIT, STEPS

N = 10
CASES = [("sqlite", step) for step in STEPS] + [
    # A PostgreSQL claim is one autocommit statement, a Redis claim one Lua script (atomic on
    # the server): a client dying while it runs leaves the server to complete it (the
    # after-claim case) or never sent it (before-claim). Neither has an uncommitted claim.
    (backend, step)
    for backend in ("postgres", "redis")
    for step in STEPS
    if step != "claim-uncommitted"
]


def crashed_ids(workers: Workers) -> set[int]:
    """Job ids in hand at the crash, as the fault hook logged them."""
    (line,) = workers.log().of("crash")
    return set() if line[3] == "-" else {int(i) for i in line[3].split(",")}


@pytest.mark.parametrize(("store_url", "step"), CASES, indirect=["store_url"])
def test_crash_at_each_step_loses_nothing(workers: Workers, store_url: str, step: str) -> None:
    began = time.monotonic()
    run(enqueue(store_url, N))
    workers.base_env = {"REL_SLEEP": "0.1", "REL_CONCURRENCY": "2", "REL_LEASE": "1"}
    (victim,) = workers.start(1, REL_CRASH=f"{step}:3")
    assert victim.wait(60) == CRASH_EXIT, workers.output(victim)
    workers.kill_group()  # nothing left alive, but the next worker is a new generation
    at_crash = run(all_jobs(store_url))
    in_hand = crashed_ids(workers)
    claimed = {int(i) for line in workers.log().of("claim") for i in line[2].split(",")}
    started_before = set(workers.log().starts)
    in_flight = workers.log().unfinished() | {
        job_number(j) for j in at_crash if j.state is JobState.RUNNING
    }
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    workers.start(1)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == N, 60, "all completed")
    assert workers.stop_all() == [0]
    log = workers.log()
    final = {job_number(j): j for j in run(all_jobs(store_url))}
    lost = set(range(N)) - set(log.dones)
    started_twice = {i for i, c in log.starts.items() if c > 1}
    done_twice = {i for i, c in log.dones.items() if c > 1}
    assert not lost
    assert {j.state for j in final.values()} == {JobState.COMPLETED}
    assert started_twice | done_twice <= in_flight
    assert log.overlaps() == []
    expect(step, at_crash, in_hand, claimed, started_before, final, log.starts, started_twice)
    report(
        "kill_step",
        backend=store_url.split(":")[0],
        step=step,
        jobs=N,
        lost=len(lost),
        started_twice=len(started_twice),
        done_twice=len(done_twice),
        reclaimed=sum(j.attempt > 1 for j in final.values()),
        seconds=round(time.monotonic() - began, 1),
    )


def expect(
    step: str,
    at_crash: list[Job],
    in_hand: set[int],
    claimed: set[int],
    started_before: set[int],
    final: dict[int, Job],
    starts: dict[int, int],
    started_twice: set[int],
) -> None:
    """The signature of each step, so that a crash at the wrong place cannot pass."""
    running = {j.id for j in at_crash if j.state is JobState.RUNNING}
    by_id = {j.id: job_number(j) for j in at_crash}
    if step in ("claim-uncommitted", "before-claim"):
        # The dying claim left no trace: every running job was handed to the worker.
        assert running <= claimed
    elif step == "after-claim":
        assert in_hand
        assert in_hand <= running
        numbers = {by_id[i] for i in in_hand}
        assert not numbers & started_before  # … never started …
        assert all(starts[i] == 1 and final[i].attempt == 2 for i in numbers)  # … ran once
    elif step == "mid-body":
        assert started_twice, "the job that died mid-body runs again"
    elif step == "after-body":
        assert in_hand
        assert in_hand <= running
        numbers = {by_id[i] for i in in_hand}
        assert all(starts[i] == 2 and final[i].attempt == 2 for i in numbers)  # … so ran again
    elif step == "after-ack":
        assert in_hand
        assert not in_hand & running
        numbers = {by_id[i] for i in in_hand}
        assert all(starts[i] == 1 and final[i].attempt == 1 for i in numbers)  # never again
