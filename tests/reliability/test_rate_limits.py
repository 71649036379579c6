"""Issue 21: a queue's rate limit holds across worker processes, and is reached.

Four worker processes of ten slots each drain a deep backlog of a queue limited to 50 starts per
second, for about ten seconds. The windows are fixed and aligned to the epoch, judged by the
claiming worker's clock (``attempted_at`` is that very ``now``), so the test buckets every
start by ``attempted_at``: no window may hold more than 50, and every window the backlog kept
busy from its start to its end must hold at least 45 (the limit is reached within 10%).
"""

from __future__ import annotations

from collections import Counter

from reliability.harness import Workers, all_jobs, count_of, enqueue, report, run, wait_until
from taskward import JobState, TaskManager
from taskward.limits import Rate

RATE = Rate(50, 1.0)
JOBS = 500  # ten seconds' worth


async def configure(url: str) -> None:
    async with TaskManager(url) as tw:
        await tw.configure_queue("default", rate_limit=(RATE.count, RATE.seconds))


def test_four_workers_start_no_more_than_the_rate_and_reach_it(
    workers: Workers, store_url: str
) -> None:
    run(configure(store_url))
    run(enqueue(store_url, JOBS))
    workers.base_env = {"REL_SLEEP": "0.01", "REL_CONCURRENCY": "10", "REL_LEASE": "5"}
    workers.start(4)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == JOBS, 60, "all jobs completed")
    assert workers.stop_all() == [0, 0, 0, 0]
    jobs = run(all_jobs(store_url))
    starts = [j.attempted_at for j in jobs if j.attempted_at is not None]
    assert len(starts) == JOBS
    per_window = Counter(RATE.window_of(at) for at in starts)
    first, last = min(per_window), max(per_window)
    # The first window may open before the workers did, and the last one ends the backlog:
    # every window between them was busy from its start to its end.
    full = [per_window[w] for w in range(first + 1, last)]
    report(
        "rate limit 50/s, 4 workers x 10 slots",
        jobs=JOBS,
        windows=len(per_window),
        most_in_a_window=max(per_window.values()),
        fewest_in_a_full_window=min(full),
    )
    assert max(per_window.values()) <= RATE.count
    assert len(full) >= 7
    assert min(full) >= 0.9 * RATE.count
    log = workers.log()
    assert log.overlaps() == []
    assert set(log.dones) == set(range(JOBS))
