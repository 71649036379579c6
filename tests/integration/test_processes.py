"""Real worker processes on a SQLite file: SIGKILL rescue, SIGTERM graceful shutdown.

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
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "TASKWARD_TEST_URL": f"sqlite:///{tmp_path}/jobs.db",
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
    env: dict[str, str], procs: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "taskward", "worker", "--app", "tests_support.jobs:manager",
           "-q", "default=2", "--log-level", "WARNING"]  # fmt: skip
    output = Path(env["TASKWARD_TEST_LOG"]).with_name(f"worker-{len(procs)}.out")
    with output.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    procs.append(proc)
    return proc


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
