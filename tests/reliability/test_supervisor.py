"""``taskward worker --processes N``: the supervisor with real worker processes, on real stores.

Each test starts the real command (``python -m taskward worker …`` or the ``taskward`` script)
in its own process group, so nothing outlives it. The run log (``tests_support.
reliability_app.record``: ``start i gen pid`` / ``done i gen pid t``) witnesses the job bodies
from outside the store; the supervisor's own log lines name each child's index and pid.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reliability.harness import Workers, all_jobs, count_of, enqueue, run, wait_until
from taskward import JobState, TaskManager

STARTED = re.compile(r"worker process (\d+) started \(pid (\d+)\)")
_HELD: list[bytes] = []  # what hog() keeps alive in its worker process


def hog(mib: int) -> int:
    """A job that grows its worker's resident set by ``mib`` MiB and keeps it (a leak)."""
    _HELD.append(b"\x01" * (mib * 1024 * 1024))  # written, so every page is resident
    return mib


class Supervised:
    """One ``taskward worker --processes …`` process (the supervisor) and its output file."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path) -> None:
        self.proc, self.out = proc, out

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def starts(self) -> list[tuple[int, int]]:
        """(index, pid) of every child the supervisor started, in order."""
        return [(int(i), int(pid)) for i, pid in STARTED.findall(self.output())]

    def wait_for(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.output(), timeout, f"{text!r} in the output")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the supervisor (once its children are ready) and return its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


Start = Callable[..., Supervised]
SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
BOTH = pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def supervise(workers: Workers, tmp_path: Path) -> Iterator[Start]:
    """Start supervisors with ``supervise(*worker_args, script=False, **env)``."""
    started: list[Supervised] = []

    def start(*args: str, script: bool = False, **env: str) -> Supervised:
        command = (
            [str(Path(sys.executable).with_name("taskward"))]
            if script
            else [sys.executable, "-m", "taskward"]
        )
        out = tmp_path / f"supervisor-{len(started)}.out"
        modules = f"{os.environ.get('TASKWARD_TASK_MODULES', '')},reliability.test_supervisor"
        with out.open("wb") as sink:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [*command, "worker", "--url", workers.url, "--log-level", "INFO", *args],
                env=workers.env(
                    TASKWARD_LEASE_SECONDS="1",
                    TASKWARD_POLL_INTERVAL="0.05",
                    TASKWARD_SHUTDOWN_TIMEOUT="5",
                    TASKWARD_DEFAULT_RETRY_DELAY="0.05",
                    TASKWARD_TASK_MODULES=modules,
                    **env,
                ),
                stdout=sink,
                stderr=subprocess.STDOUT,
                process_group=0,  # the supervisor and its children: killed together below
            )
        started.append(Supervised(proc, out))
        return started[-1]

    yield start
    for one in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(one.proc.pid, signal.SIGKILL)
        one.proc.wait(10)


def ready_children(sup: Supervised, n: int) -> None:
    """Wait until ``n`` children have started their workers (their SIGTERM handlers are in)."""
    wait_until(lambda: sup.output().count("started on queues") >= n, 30, f"{n} workers ready")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False


@BOTH
def test_a_killed_child_is_replaced_and_nothing_is_lost(
    supervise: Start, workers: Workers, store_url: str
) -> None:
    n = 400
    run(enqueue(store_url, n))
    sup = supervise("--processes", "2", "-q", "default=4", REL_SLEEP="0.02")
    wait_until(lambda: len(workers.log().dones) >= n // 4, 60, "a quarter done")
    index, victim = sup.starts()[0]
    os.kill(victim, signal.SIGKILL)  # under load: it holds running jobs
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == n, 60, "all completed")
    sup.wait_for(f"worker process {index} (pid {victim}) was killed by SIGKILL")
    assert [i for i, _ in sup.starts()].count(index) == 2, sup.output()  # its replacement
    assert sup.stop() == 0, sup.output()

    log = workers.log()
    assert set(log.dones) == set(range(n))  # every body finished at least once
    assert all(j.state is JobState.COMPLETED for j in run(all_jobs(store_url)))


@BOTH
def test_sigterm_to_the_supervisor_lets_running_jobs_finish(
    supervise: Start, workers: Workers, store_url: str
) -> None:
    run(enqueue(store_url, 8))
    sup = supervise("--processes", "2", "-q", "default=2", REL_SLEEP="1.5")
    wait_until(lambda: len(workers.log().starts) >= 4, 30, "four jobs running")
    began = time.monotonic()
    assert sup.stop() == 0, sup.output()

    log = workers.log()
    assert len(log.starts) == 4  # nothing claimed after the stop
    assert log.unfinished() == set()  # the running ones finished, none was cut short
    assert time.monotonic() - began >= 0.5  # it waited for them
    assert count_of(store_url, JobState.COMPLETED) == 4
    assert count_of(store_url, JobState.PENDING) == 4
    out = sup.output()
    assert out.count("waiting up to 5s for 2 running job(s)") == 2, out  # said at once
    assert "every worker process stopped cleanly" in out


@SQLITE
def test_children_are_recycled_after_k_jobs(
    supervise: Start, workers: Workers, store_url: str
) -> None:
    n, k = 40, 10
    run(enqueue(store_url, n))
    sup = supervise(
        "--processes", "2", "-q", "default=4", "--max-jobs-per-process", str(k), script=True
    )
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == n, 60, "all completed")
    assert sup.stop() == 0, sup.output()

    jobs = run(all_jobs(store_url))
    per_worker = Counter(j.attempted_by for j in jobs)
    assert len(per_worker) >= n // k, per_worker  # at least n / k worker processes ran them
    assert max(per_worker.values()) <= k, per_worker  # claims were capped to the budget
    assert sup.output().count("recycled after") >= n // k - 2, sup.output()
    assert "killed by" not in sup.output()
    assert "exited with status" not in sup.output()


@SQLITE
def test_a_child_is_recycled_at_its_memory_limit(
    supervise: Start, workers: Workers, store_url: str
) -> None:
    async def produce() -> None:
        async with TaskManager(store_url) as tw:
            await tw.enqueue_task("reliability.test_supervisor:hog", args=[256])
            await enqueue(store_url, 12)

    run(produce())
    sup = supervise("--max-memory-per-process", "200MiB", "-q", "default=2")
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == 13, 60, "all completed")
    sup.wait_for("recycled after")
    assert sup.stop() == 0, sup.output()

    out = sup.output()
    assert "recycling: its resident set is" in out, out
    assert len(sup.starts()) >= 2  # --processes 1 still supervises: the child was replaced
    jobs = run(all_jobs(store_url))
    assert all(j.state is JobState.COMPLETED for j in jobs)
    assert len({j.attempted_by for j in jobs}) >= 2


@SQLITE
def test_children_failing_at_import_end_the_supervisor(supervise: Start, store_url: str) -> None:
    began = time.monotonic()
    sup = supervise("--app", "tests_support.broken_task_module:tw", "--processes", "2")
    code = sup.proc.wait(30)
    out = sup.output()
    assert code == 1, out
    assert time.monotonic() - began < 20
    errors = [line for line in out.splitlines() if "keep failing at start-up" in line]
    assert len(errors) == 1, out
    assert errors[0].startswith("error: "), out
    assert len(sup.starts()) <= 4, out  # no restart storm: 3 failures in a row end it


@SQLITE
def test_children_stop_when_the_supervisor_dies(supervise: Start, store_url: str) -> None:
    sup = supervise("--processes", "2")
    ready_children(sup, 2)
    pids = [pid for _, pid in sup.starts()]
    sup.proc.kill()  # SIGKILL: no chance to forward anything
    sup.proc.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in pids), 30, "orphaned children gone")
    assert sup.output().count("its supervisor is gone; stopping gracefully") == 2
