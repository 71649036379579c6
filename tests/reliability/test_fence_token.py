"""``ctx.fence_token`` in the SIGSTOP zombie scenario, with ``examples/fenced_writes.py``.

Two worker processes run the example's job on a fresh PostgreSQL database. The first is paused
with SIGSTOP in the middle of the job (before its write) until its lease runs out; the second
rescues the job, runs it with a greater token and writes. When the first wakes up, its write is
refused by the example's own table: the row keeps the rescuing run's total and token.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reliability.harness import report, wait_until
from taskward import JobState, TaskManager
from tests_support.examples import EXAMPLES, loaded_example
from tests_support.servers import PostgresServer


@pytest.fixture
def app_url(pg_server: PostgresServer) -> Iterator[str]:
    """A new database: the example's store and its own tables live in it."""
    name = f"fence_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_server.url(name)
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


class ExampleWorkers:
    """``taskward worker --app fenced_writes:tw`` processes, their output kept in files."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url, self.tmp = url, tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, work_seconds: float) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{EXAMPLES}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TASKWARD_URL": self.url,
            "LEASE_SECONDS": "1",
            "WORK_SECONDS": str(work_seconds),
            "NO_COLOR": "1",
        }
        with (self.tmp / f"worker-{len(self.procs)}.out").open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "taskward", "worker", "--app", "fenced_writes:tw"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"worker-{self.procs.index(proc)}.out").read_text()

    def stop(self) -> list[int | None]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        return [proc.wait(30) for proc in self.procs]

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def stored_row(url: str) -> tuple[str, str, int] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT total::text, written_by, fence_token FROM invoice_totals WHERE invoice_id = 7"
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def test_a_zombies_write_is_refused_by_the_examples_table(
    app_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKWARD_URL", app_url)  # the example reads it at import
    with loaded_example("fenced_writes.py") as example:

        async def prepare() -> int:
            await example.setup(7, ["40.00", "2.00"])
            async with example.tw:
                job = await example.total_invoice.enqueue(7)
            return int(job.id)

        job_id = asyncio.run(prepare())

    workers = ExampleWorkers(app_url, tmp_path)
    try:
        zombie = workers.start(work_seconds=3)
        first_run = f"job {job_id}: computing, fence token 1, pid {zombie.pid}"
        wait_until(lambda: first_run in workers.output(zombie), 60, "the first run starts")
        zombie.send_signal(signal.SIGSTOP)  # mid-job, before its write: its lease runs out
        try:
            rescuer = workers.start(work_seconds=0)
            wait_until(lambda: stored_row(app_url) is not None, 60, "the rescuing run writes")
            rescued = stored_row(app_url)
        finally:
            zombie.send_signal(signal.SIGCONT)
        refused = f"job {job_id}: write with token 1 refused"
        wait_until(lambda: refused in workers.output(zombie), 30, "the zombie's write refused")
        assert rescued == ("42.00", f"pid {rescuer.pid} attempt 2", 2)
        assert stored_row(app_url) == rescued  # the zombie's late write changed nothing
        assert f"job {job_id}: wrote total 42.00 with token 2" in workers.output(rescuer)
        assert "wrote total" not in workers.output(zombie)

        async def final_state() -> tuple[JobState, int]:
            async with TaskManager(app_url) as tw:
                job = await tw.get_task_status(job_id)
            return job.state, job.attempt

        assert asyncio.run(final_state()) == (JobState.COMPLETED, 2)
        assert workers.stop() == [0, 0]
    finally:
        workers.cleanup()
    report("fence_token", backend="postgresql", zombie_write="refused", stored_token=2)


def test_the_example_runs_as_a_script(app_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "fenced_writes.py")],
        env={**os.environ, "TASKWARD_URL": app_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote total 19.75 with token 1" in done.stdout
    assert "completed, total 19.75" in done.stdout
    assert "stale write accepted: False" in done.stdout
    assert "(Decimal('19.75'), 'pid" in done.stdout  # the row kept the job's own write
