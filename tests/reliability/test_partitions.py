"""Issue 21: in a partitioned queue a tenant's deep backlog does not delay another tenant.

Tenant A enqueues 20,000 jobs; once the four workers (ten slots each) are well into them,
tenant B enqueues 10. Measured on order, not on wall time: from the store's ``attempted_at`` of
every job, how many of A's jobs started after B's jobs were committed (when the enqueue
returned: a job is due for a claim once its insert commits, not when its row got its
``inserted_at``, taken before the insert began) and before each of B's started. Keys take
turns at every claim, so B's first job waits at most for the claims already in flight (four
workers' slots), and each further B job for about one more A job: without partitions B would
queue behind the whole of A's backlog.
"""

from __future__ import annotations

from reliability.harness import (
    TASK,
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
from taskward import JobState, TaskManager
from taskward.clock import utcnow

SLOTS = 4 * 10


async def configure(url: str) -> None:
    async with TaskManager(url) as tw:
        await tw.configure_queue("default", partition_by="tenant")


async def enqueue_b(url: str, first: int) -> None:
    async with TaskManager(url) as tw:
        await tw.enqueue_many(TASK, [[first + i] for i in range(10)], partition_key="b")


def test_a_deep_backlog_does_not_delay_another_keys_jobs(workers: Workers, store_url: str) -> None:
    a_jobs = sized(20_000, 20_000)
    run(configure(store_url))
    run(enqueue(store_url, a_jobs, partition_key="a"))
    workers.base_env = {"REL_SLEEP": "0.01", "REL_CONCURRENCY": "10", "REL_LEASE": "5"}
    workers.start(4)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) >= 300, 60, "A well under way")
    run(enqueue_b(store_url, a_jobs))
    b_committed = utcnow()  # the workers' clock: attempted_at comes from the same system clock
    wait_until(
        lambda: count_of(store_url, JobState.COMPLETED) >= 300 + 10 + SLOTS, 60, "B's turn came"
    )
    assert workers.stop_all() == [0, 0, 0, 0]
    jobs = run(all_jobs(store_url))
    b = sorted(
        (j for j in jobs if j.partition_key == "b"), key=lambda j: j.attempted_at or j.inserted_at
    )
    assert len(b) == 10
    assert all(j.state is JobState.COMPLETED for j in b), [j.state for j in b]
    assert max(j.inserted_at for j in b) <= b_committed
    a_starts = sorted(
        j.attempted_at
        for j in jobs
        if j.partition_key == "a" and j.attempted_at is not None and j.attempted_at > b_committed
    )
    ahead = [sum(1 for t in a_starts if t < j.attempted_at) for j in b]  # type: ignore[operator]
    report(
        "partitions: B's 10 jobs after A's 20,000",
        a_started_before_each_b=ahead,
        a_pending_at_the_end=count_of(store_url, JobState.PENDING),
    )
    assert ahead[0] <= SLOTS  # B's first job: within the claims already in flight
    for k, n in enumerate(ahead):
        assert n <= SLOTS + 2 * (k + 1), ahead  # then about one A job per B job
    assert {job_number(j) for j in b} == set(range(a_jobs, a_jobs + 10))
