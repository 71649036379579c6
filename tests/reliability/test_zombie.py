"""Item 3: fencing. A worker paused past its lease comes back as a zombie; its late outcome is
refused and the job keeps the one final state the rescuing run gave it. A job that runs 12 times
its lease while its worker heartbeats is never rescued.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from reliability.harness import Workers, all_jobs, enqueue, report, run, wait_until
from taskward import Job, JobState, TaskManager


def only_job(url: str) -> Job:
    (job,) = run(all_jobs(url))
    return job


def _sqlite_write_locked(url: str) -> bool:
    """True if another connection holds the SQLite file's write lock right now."""
    conn = sqlite3.connect(urlsplit(url).path, timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def pause_outside_a_write(proc: subprocess.Popen[bytes], url: str) -> None:
    """SIGSTOP ``proc`` at a moment it holds no SQLite write lock.

    The scenario is a worker paused mid-body. A pause that lands inside one of its loop's
    short write transactions (a heartbeat) would keep SQLite's single write lock held until
    SIGCONT, so nobody could rescue anything: that is a paused *database writer*, another
    test. Other stores lock rows, not the file.
    """
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        if not url.startswith("sqlite") or not _sqlite_write_locked(url):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the worker held the write lock at every try")


def test_zombie_outcome_is_refused_after_rescue(workers: Workers, store_url: str) -> None:
    began = time.monotonic()
    (job_id,) = run(enqueue(store_url, 1))
    workers.base_env = {"REL_LEASE": "1", "REL_CONCURRENCY": "1"}
    (zombie,) = workers.start(1, REL_SLEEP="1.5")
    wait_until(lambda: workers.log().starts[0] == 1, 30, "the first run starts")
    pause_outside_a_write(zombie, store_url)  # paused mid-body: no heartbeat, lease runs out
    try:
        workers.group, workers.generation = None, workers.generation + 1
        (rescuer,) = workers.start(1, REL_SLEEP="0")
        wait_until(lambda: only_job(store_url).state is JobState.COMPLETED, 60, "rescued run")
        settled = only_job(store_url)
    finally:
        zombie.send_signal(signal.SIGCONT)
    refused = f"job {job_id}: lease lost before its outcome (completed) was written"
    wait_until(lambda: refused in workers.output(zombie), 30, "the zombie's outcome refused")
    assert workers.stop_all() == [0, 0]

    final = only_job(store_url)
    assert final == settled  # the zombie's late write changed nothing
    assert final.state is JobState.COMPLETED
    assert final.attempt == 2
    assert [e.kind for e in final.errors] == ["Orphaned"]
    assert final.attempted_by is not None
    assert f":{rescuer.pid}:" in final.attempted_by
    log = workers.log()
    assert log.starts[0] == 2  # the zombie's body did finish (a paused process cannot be
    assert log.dones[0] == 2  # stopped mid-call): at-least-once, but one recorded outcome
    report(
        "zombie",
        backend=store_url.split(":")[0],
        final_states=1,
        zombie_outcome="refused",
        seconds=round(time.monotonic() - began, 1),
    )


def test_job_running_twelve_leases_with_heartbeats_is_never_rescued(
    workers: Workers, store_url: str
) -> None:
    lease = 1.0  # short, but a heartbeat late by a whole lease on a loaded machine is rare
    run(enqueue(store_url, 1))
    workers.base_env = {"REL_LEASE": str(lease), "REL_SLEEP": str(12 * lease)}
    workers.start(2)  # the idle one leads or follows: a Rescuer is always watching
    wait_until(lambda: workers.log().dones[0] == 1, 60, "the long run ends")
    wait_until(lambda: only_job(store_url).state is JobState.COMPLETED, 30, "acknowledged")
    assert workers.stop_all() == [0, 0]
    job = only_job(store_url)
    assert job.attempt == 1
    assert job.errors == ()
    assert workers.log().starts[0] == 1
    for proc in workers.procs:
        assert "rescued job" not in workers.output(proc)
        assert "lease lost" not in workers.output(proc)
    report("long_job", backend=store_url.split(":")[0], leases=12, rescued=0)


async def test_a_heartbeat_racing_the_jobs_own_ack_blames_no_lost_lease(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job ends and its outcome is written while a heartbeat naming it is in flight (two
    connections, PostgreSQL): the store no longer holds it as running, but nothing was lost."""
    async with TaskManager("memory://") as tw:
        release = asyncio.Event()

        async def quick() -> None:
            await release.wait()

        job = await tw.enqueue_task(quick)
        worker = tw.make_worker({"default": 1})
        (claimed,) = await worker.fetch("default", 1)
        run_task = worker.start_job(claimed)
        extend = tw.backend.extend_leases

        async def heartbeat_lands_after_the_ack(job_ids: Any, **kwargs: Any) -> Any:
            release.set()
            await run_task  # the job ends …
            await worker.acker.flush()  # … and its outcome is stored before the heartbeat
            return await extend(job_ids, **kwargs)

        tw.backend.extend_leases = heartbeat_lands_after_the_ack  # type: ignore[method-assign]
        await worker.heartbeat()
        worker.close()
        assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED
        assert "lease lost" not in caplog.text
