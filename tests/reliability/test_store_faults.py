"""Item 5: the store misbehaves. 5% of outcome and heartbeat writes fail (half of them after
the write committed: the reply was lost); PostgreSQL restarts twice under long jobs; a SQLite
writer killed mid-transaction leaves a consistent database with whole batches only.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import (
    TESTS,
    RunLog,
    Workers,
    all_jobs,
    count_of,
    enqueue,
    report,
    run,
    wait_until,
)
from taskward import FrozenClock, JobState, TaskManager
from taskward.errors import BackendUnavailable
from taskward.runtime.maintenance import Rescuer

LEASE = 1.0
HEARTBEAT = LEASE / 3  # HeartbeatService: three heartbeats per lease


def recovery_gaps(log: RunLog) -> dict[str, list[float]]:
    """Seconds from each injected fault to the next successful call (same method, process)."""
    pending: dict[tuple[str, str], float] = {}
    gaps: dict[str, list[float]] = defaultdict(list)
    for parts in log.lines:
        if parts[0] == "fault":
            pending.setdefault((parts[1], parts[2]), float(parts[4]))
        elif parts[0] == "recovered":
            since = pending.pop((parts[1], parts[2]))
            gaps[parts[1]].append(float(parts[3]) - since)
    return gaps


def test_five_percent_of_writes_failing_strands_and_loses_nothing(
    workers: Workers, store_url: str
) -> None:
    n = 240  # 9 s of work: about 27 heartbeats per worker
    run(enqueue(store_url, n))
    workers.base_env = {
        "REL_LEASE": str(LEASE),
        "REL_SLEEP": "0.3",
        "REL_CONCURRENCY": "4",
        "REL_FAIL_EVERY": "20",  # 5%, deterministic: never two faults in a row
    }
    workers.start(2)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == n, 120, "all completed")
    assert workers.stop_all() == [0, 0]
    log = workers.log()
    faults = log.of("fault")
    assert {f[1] for f in faults} == {"finish", "extend_leases"}, "both seams were hit"
    assert set(range(n)) == set(log.dones)  # none lost
    assert [i for i, c in log.starts.items() if c > 1] == []  # no lease lapsed: none re-run
    jobs = run(all_jobs(store_url))
    assert {j.state for j in jobs} == {JobState.COMPLETED}  # none stuck
    assert [j.id for j in jobs if j.errors] == []  # none rescued (Orphaned)
    lost_replies = Counter(f[2] for f in faults if f[1] == "finish" and f[3] == "after")
    assert lost_replies, "some finish faults strike after the commit"
    for proc in workers.procs:  # no other run existed: the log must not blame one …
        output = workers.output(proc)
        assert "another run owns it" not in output
        # … but say that the outcome had been stored when its reply was lost
        stored = output.count("was stored before the store's reply was lost")
        assert stored >= lost_replies[str(proc.pid)]
    gaps = recovery_gaps(log)
    worst = max(g for method in gaps.values() for g in method)
    report(
        "store_faults",
        backend=store_url.split(":")[0],
        jobs=n,
        faults_finish=sum(f[1] == "finish" for f in faults),
        faults_heartbeat=sum(f[1] == "extend_leases" for f in faults),
        lost=0,
        rerun=0,
        worst_recovery_seconds=round(worst, 3),
        worst_recovery_heartbeats=round(worst / HEARTBEAT, 2),
    )


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_postgres_restarted_twice_under_long_jobs(tmp_path: Path, store_url: str) -> None:
    from tests_support.servers import PostgresServer, find_pg_bin

    bin_dir = find_pg_bin()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)  # its own cluster: the session's one stays up
    server.start()
    workers = Workers(f"{server.url()}?schema=restarts", tmp_path)
    try:
        n = 24
        run(enqueue(workers.url, n))
        # Leases longer than an outage, bodies longer than a restart: jobs span both restarts.
        workers.base_env = {"REL_LEASE": "6", "REL_SLEEP": "2", "REL_CONCURRENCY": "4"}
        workers.start(2)
        for restarted in (1, 2):
            wait_until(lambda r=restarted: len(workers.log().starts) >= 8 * r, 60, "jobs running")
            running = workers.log().unfinished()
            assert running, "the restart must land while jobs run"
            server.restart()  # fast shutdown: every client connection is cut
        wait_until(lambda: count_of(workers.url, JobState.COMPLETED) == n, 120, "all done")
        assert all(p.poll() is None for p in workers.procs), "a worker died with the database"
        assert workers.stop_all() == [0, 0]
        log = workers.log()
        assert set(log.dones) == set(range(n))  # none lost
        assert [i for i, c in log.starts.items() if c > 1] == []  # none ran twice
        report("pg_restarts", backend="postgresql", jobs=n, restarts=2, lost=0, rerun=0)
    finally:
        workers.cleanup()
        server.destroy()


PRODUCER = """
import asyncio, sys
from taskward import TaskManager
async def main():
    async with TaskManager(sys.argv[1]) as tw:
        print("open", flush=True)
        for _ in range(1000):
            await tw.enqueue_many("tests_support.reliability_app:record",
                                  [[i] for i in range(5000)], batch_size=5000)
asyncio.run(main())
"""


def test_sqlite_writer_killed_mid_transaction_leaves_whole_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for kill in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, url], env=env, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"open\n"
        before = count_of(url, JobState.PENDING)
        wait_until(lambda b=before: count_of(url, JobState.PENDING) > b, 60, "a batch committed")
        time.sleep(0.05 * kill)  # inside a later batch's transaction, most likely
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        with sqlite3.connect(tmp_path / "jobs.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            (count,) = db.execute("SELECT COUNT(*) FROM taskward_jobs").fetchone()
            (ids,) = db.execute("SELECT COUNT(DISTINCT id) FROM taskward_jobs").fetchone()
        assert count % 5000 == 0  # each batch is one transaction: all of it or none
        assert ids == count
    report("sqlite_kill_mid_insert", kills=3, integrity="ok", partial_batches=0)


async def test_an_outcome_waiting_for_the_store_keeps_its_job_leased() -> None:
    """The store refuses outcome writes for longer than a lease while heartbeats still get
    through: the worker holds the outcome, so the job must not be rescued and run again."""
    clock = FrozenClock()
    async with TaskManager("memory://", clock=clock, lease_seconds=30) as tw:

        async def quick() -> str:
            return "done"

        job = await tw.enqueue_task(quick)
        worker = tw.make_worker({"default": 1})
        (claimed,) = await worker.fetch("default", 1)
        finish = tw.backend.finish

        async def store_refuses(updates: Any, *, worker_id: str) -> list[bool]:
            if any(u.lease_expired_before is None for u in updates):  # not a Rescuer's write
                raise BackendUnavailable("the store takes no outcome from this worker now")
            return await finish(updates, worker_id=worker_id)

        tw.backend.finish = store_refuses  # type: ignore[method-assign]
        await worker.start_job(claimed)
        with pytest.raises(BackendUnavailable):
            await worker.acker.flush()  # kept for the next flush
        rescuer = Rescuer(
            tw.backend,
            clock,
            1,
            leadership=None,
            resolve=tw._lookup,
            default_policy=tw.default_policy,
        )
        for _ in range(4):  # two leases go by, heartbeats on time
            clock.advance(15)
            await worker.heartbeat()
            await rescuer.run_once()
        tw.backend.finish = finish  # type: ignore[method-assign]
        await worker.acker.flush()
        worker.close()
        stored = await tw.get_task_status(job.id)
        assert (stored.state, stored.attempt, stored.errors) == (JobState.COMPLETED, 1, ())
