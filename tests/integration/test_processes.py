"""Real worker processes on SQLite and PostgreSQL: SIGKILL rescue, SIGTERM graceful shutdown,
many workers sharing one store, and a database restart under running workers.

Each job body appends ``start n`` / ``done n`` to a run log opened with O_APPEND, so lost and
duplicate runs are counted independently of what the store says.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskward import JobState, TaskManager

pytestmark = pytest.mark.integration
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path: Path, store_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "TASKWARD_TEST_URL": store_url,
        "TASKWARD_TEST_LOG": str(tmp_path / "run.log"),
        "TASKWARD_TEST_SLEEP": "0.6",
        "NO_COLOR": "1",
    }


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:  # never leave a worker behind, whatever the test did
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def start_worker(
    env: dict[str, str], procs: list[subprocess.Popen[bytes]], concurrency: int = 2
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "taskward", "worker", "--app", "tests_support.jobs:manager",
           "-q", f"default={concurrency}", "--log-level", "WARNING"]  # fmt: skip
    output = Path(env["TASKWARD_TEST_LOG"]).with_name(f"worker-{len(procs)}.out")
    with output.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    return proc


def worker_outputs(env: dict[str, str], procs: list[subprocess.Popen[bytes]]) -> str:
    """Why a worker process ended: its exit code and the end of its output, for a failure."""
    folder = Path(env["TASKWARD_TEST_LOG"]).parent
    parts = []
    for n, proc in enumerate(procs):
        out = folder / f"worker-{n}.out"
        tail = out.read_text(errors="replace")[-3000:] if out.exists() else ""
        parts.append(f"worker {n} exit={proc.poll()}:\n{tail}")
    return "a worker process ended:\n" + "\n".join(parts)


def run_log(env: dict[str, str]) -> list[str]:
    path = Path(env["TASKWARD_TEST_LOG"])
    return path.read_text().splitlines() if path.exists() else []


def wait_until(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


async def enqueue(env: dict[str, str], n: int) -> list[int]:
    async with TaskManager(env["TASKWARD_TEST_URL"]) as tw:
        # By import path: this producer process only knows where the task lives.
        jobs = await tw.enqueue_many("tests_support.jobs:record", [[i] for i in range(n)])
        return [j.id for j in jobs]


async def states(env: dict[str, str]) -> list[tuple[JobState, int, list[str]]]:
    async with TaskManager(env["TASKWARD_TEST_URL"]) as tw:
        page = await tw.list_tasks(per_page=1000, sort_by="id")
        return [(j.state, j.attempt, [e.kind for e in j.errors]) for j in page.items]


async def live_workers(env: dict[str, str]) -> int:
    async with TaskManager(env["TASKWARD_TEST_URL"]) as tw:
        return int((await tw.get_statistics())["workers"]["total"])


async def counts(env: dict[str, str]) -> dict[JobState, int]:
    async with TaskManager(env["TASKWARD_TEST_URL"]) as tw:
        stats = await tw.get_statistics()
        return {JobState(k): v for k, v in stats["queues"].get("default", {}).items()}


def test_sigkill_mid_run_jobs_are_rescued_and_completed(
    env: dict[str, str], workers: list[subprocess.Popen[bytes]]
) -> None:
    asyncio.run(enqueue(env, 6))
    victim = start_worker(env, workers)
    wait_until(lambda: sum(line.startswith("start") for line in run_log(env)) >= 2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    interrupted = {line.split()[1] for line in run_log(env) if line.startswith("start")} - {
        line.split()[1] for line in run_log(env) if line.startswith("done")
    }
    assert interrupted, "the kill should land while jobs run"

    rescuer = start_worker(env, workers)
    wait_until(lambda: all(s is JobState.COMPLETED for s, _, _ in asyncio.run(states(env))))
    rescuer.send_signal(signal.SIGTERM)
    assert rescuer.wait(30) == 0

    done = Counter(line.split()[1] for line in run_log(env) if line.startswith("done"))
    assert sorted(done) == [str(i) for i in range(6)]  # nothing lost
    assert set(done.values()) == {1}  # each completed exactly once
    final = asyncio.run(states(env))
    rescued = [(attempt, kinds) for _, attempt, kinds in final if kinds]
    assert len(rescued) == len(interrupted)
    assert all(attempt == 2 and kinds == ["Orphaned"] for attempt, kinds in rescued)


def test_sigterm_lets_the_running_job_finish(
    env: dict[str, str], workers: list[subprocess.Popen[bytes]]
) -> None:
    asyncio.run(enqueue(env, 1))
    worker = start_worker(env, workers)
    wait_until(lambda: "start 0" in run_log(env))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert run_log(env) == ["start 0", "done 0"]
    ((state, attempt, errors),) = asyncio.run(states(env))
    assert state is JobState.COMPLETED
    assert attempt == 1
    assert errors == []


def done_counts(env: dict[str, str]) -> Counter[str]:
    return Counter(line.split()[1] for line in run_log(env) if line.startswith("done"))


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_four_workers_drain_ten_thousand_jobs_each_exactly_once(
    env: dict[str, str], workers: list[subprocess.Popen[bytes]]
) -> None:
    env["TASKWARD_TEST_SLEEP"] = "0"
    # About claiming, not rescue: with the 1 s lease a CI run saw a worker stall past it and
    # 8 of its jobs rescued and run again (correct at-least-once, but not this test's point).
    env["TASKWARD_TEST_LEASE"] = "10"
    n = 10_000
    asyncio.run(enqueue(env, n))
    for _ in range(4):
        start_worker(env, workers, concurrency=10)
    wait_until(lambda: asyncio.run(counts(env)).get(JobState.COMPLETED) == n, timeout=120)
    for proc in workers:
        proc.send_signal(signal.SIGTERM)
    assert [proc.wait(30) for proc in workers] == [0, 0, 0, 0]
    runs = Counter(line.split()[1] for line in run_log(env) if line.startswith("start"))
    assert len(runs) == n
    assert set(runs.values()) == {1}  # no job was claimed twice
    assert set(done_counts(env).values()) == {1}


@pytest.mark.slow
def test_database_restart_under_running_workers_loses_and_repeats_nothing(
    tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    from tests_support.servers import private_postgres

    with private_postgres() as server:
        env = {
            **os.environ,
            "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TASKWARD_TEST_URL": f"{server.url()}?schema=restart",
            "TASKWARD_TEST_LOG": str(tmp_path / "run.log"),
            "TASKWARD_TEST_SLEEP": "0.005",
            "NO_COLOR": "1",
        }
        n = 1_500
        for _ in range(2):
            start_worker(env, workers, concurrency=4)
        # Both workers up before any job (a loaded machine can start one late): this is
        # about running workers riding out a restart, not about starting during one.
        wait_until(lambda: asyncio.run(live_workers(env)) == 2, timeout=60)
        asyncio.run(enqueue(env, n))
        wait_until(lambda: len(done_counts(env)) >= 200)
        assert len(done_counts(env)) < n, "the restart must land mid-run"
        server.restart()  # clients are disconnected mid-run
        wait_until(lambda: asyncio.run(counts(env)).get(JobState.COMPLETED) == n, timeout=120)
        assert all(proc.poll() is None for proc in workers), worker_outputs(env, workers)
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(30) for proc in workers] == [0, 0]
        done = done_counts(env)
        assert sorted(done, key=int) == [str(i) for i in range(n)]  # nothing lost
        # A job whose completion was recorded never ran again; only a job that was running
        # when the connection dropped may have run twice (at-least-once).
        repeated = [job for job, times in done.items() if times > 1]
        assert len(repeated) <= 8, repeated
