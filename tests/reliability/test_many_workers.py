"""Item 4: many worker processes claiming from one store never claim a job twice.

CI: 8 processes, 4,000 jobs, once. ``TASKWARD_LONG=1``: 16 processes, 20,000 jobs, 10 times.
Leases are long (10 s) so that no job is rescued on a loaded machine: any second start, any
attempt above 1, is then a double claim.
"""

from __future__ import annotations

import time

import pytest

from reliability.harness import (
    LONG,
    Workers,
    all_jobs,
    count_of,
    enqueue,
    report,
    run,
    sized,
    wait_until,
)
from taskward import JobState


@pytest.mark.timeout(7200 if LONG else 240)
def test_many_workers_never_claim_a_job_twice(workers: Workers, store_url: str) -> None:
    procs, n, reps = sized(8, 16), sized(4_000, 20_000), sized(1, 10)
    workers.base_env = {"REL_LEASE": "10", "REL_CONCURRENCY": "4", "REL_SLEEP": "0"}
    workers.start(procs)
    for rep in range(reps):
        began = time.monotonic()
        run(enqueue(store_url, n))  # the workers are already polling: claims race from job 1
        total = n * (rep + 1)
        wait_until(lambda t=total: count_of(store_url, JobState.COMPLETED) == t, 600)
        seconds = time.monotonic() - began
        log = workers.log()
        jobs = run(all_jobs(store_url))[rep * n :]
        assert len(jobs) == n
        double = [i for i, c in log.starts.items() if c > rep + 1]  # job i runs once per rep
        assert double == []
        assert {j.attempt for j in jobs} == {1}
        assert len(log.starts) == n
        assert set(log.dones.values()) == {rep + 1}
        report(
            "many_workers",
            backend=store_url.split(":")[0],
            rep=rep,
            processes=procs,
            jobs=n,
            double_claims=len(double),
            jobs_per_second=round(n / seconds),
        )
    assert workers.stop_all() == [0] * procs
    assert workers.log().overlaps() == []
    for proc in workers.procs:  # nothing was rescued, so no log line may say otherwise
        assert "lease lost" not in workers.output(proc)
        assert "rescued job" not in workers.output(proc)
