"""``make demo``: the ``taskward demo`` command, run as a user runs it, does what it promises.

The demo (``taskward.demo``) has no option to run short and needs none: it stops by itself
once its 12 jobs and the cron job's first run have finished (a few seconds; its own deadline is
45 s). So it runs once here, whole, as a subprocess in a temporary working directory with the
default ``--url`` (``sqlite:///./demo.db``) and no ``TASKWARD_*`` variables, and the tests
check what it prints against the SQLite file it leaves behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskward.backends import open_backend
from taskward.jobs import Job, JobFilter, JobState, Stats

pytestmark = pytest.mark.integration

S = JobState
HARD_TIMEOUT = 90.0  # the demo's own deadline is 45 s; it normally ends in about 3
URL = "sqlite:///./demo.db"  # the default of `taskward demo --url`, relative to the cwd
ENQUEUED = 12  # 8 welcome emails, 1 transcode, 1 CRM sync, 2 card charges; the cron job aside


@dataclass(frozen=True)
class DemoRun:
    cwd: Path
    returncode: int
    stdout: str
    stderr: str


def taskward_command() -> list[str]:
    """The console script `make demo` runs (`.venv/bin/taskward`), else `python -m taskward`."""
    script = shutil.which("taskward", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "taskward"]


def user_env() -> dict[str, str]:
    """This environment without taskward's settings (the test suite sets some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")}


def run_taskward(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*taskward_command(), *args],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=HARD_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    cwd = tmp_path_factory.mktemp("demo")
    # A demo.db left by an earlier `make demo` that is not even a database: the demo starts
    # on a fresh file (opening this one would fail).
    (cwd / "demo.db").write_bytes(b"left over from an earlier run")
    proc = run_taskward(cwd, "demo")
    return DemoRun(cwd, proc.returncode, proc.stdout, proc.stderr)


async def read_store(path: Path) -> tuple[list[Job], Stats]:
    backend = open_backend(f"sqlite:///{path}")
    await backend.open()
    try:
        page = await backend.list_jobs(JobFilter(per_page=1000, sort_by="id"))
        return list(page.items), await backend.stats()
    finally:
        await backend.close()


def table(output: str, title: str) -> list[dict[str, str]]:
    """The rows of the last table titled ``title`` in ``output``, as {column: cell}."""
    lines = output.splitlines()
    start = max(n for n, line in enumerate(lines) if line.strip().startswith(title))
    header = next(line for line in lines[start:] if line.startswith("┃"))
    columns = [cell.strip() for cell in header.strip("┃").split("┃")]
    rows = []
    for line in lines[lines.index(header, start) + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def flat(text: str) -> str:
    """``text`` with every run of whitespace made one space (log lines wrap at 110 columns)."""
    return " ".join(text.split())


def by_task(jobs: list[Job], task: str) -> list[Job]:
    return [job for job in jobs if job.task == task]


def test_the_demo_ends_by_itself_and_leaves_its_database_where_documented(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert demo.stderr == ""
    db = demo.cwd / "demo.db"
    assert db.read_bytes()[:16] == b"SQLite format 3\x00"  # the leftover was replaced
    assert {p.name for p in demo.cwd.iterdir()} <= {"demo.db", "demo.db-wal", "demo.db-shm"}
    assert f"enqueued {ENQUEUED} jobs on {URL}; starting a worker" in demo.stdout


def test_part_one_reports_the_failed_background_task(demo: DemoRun) -> None:
    out = demo.stdout
    assert "1. safe in-process background tasks (taskward.aio)" in out
    assert (
        "background task 'save_metrics' failed: ConnectionError: metrics store unreachable"
        in flat(out)
    )
    assert "failure counters: {'save_metrics': 1}" in out
    answer = out.split("GET /health/tasks would answer:\n", 1)[1]
    health = json.loads(answer[: answer.index("\n}") + 2])
    assert health == {
        "total_failures": 1,
        "failures_by_task": {"save_metrics": 1},
        "tasks_with_failures": 1,
        "in_flight": 0,
    }


async def test_part_two_runs_every_job_to_its_end_and_prints_the_store_as_it_is(
    demo: DemoRun,
) -> None:
    jobs, stats = await read_store(demo.cwd / "demo.db")
    emails = by_task(jobs, "demo.send_welcome_email")
    assert len(emails) == 8
    assert {j.state for j in emails} == {S.COMPLETED}
    [video] = by_task(jobs, "demo.transcode_video")
    assert (video.state, video.result) == (S.COMPLETED, {"video_id": 7, "renditions": 3})
    assert video.progress == {"done": 10, "total": 10}
    [crm] = by_task(jobs, "demo.sync_crm")
    assert (crm.state, crm.attempt, crm.result) == (
        S.COMPLETED, 3, "acme-corp synced on attempt 3"
    )  # fmt: skip
    assert [e.kind for e in crm.errors] == ["ConnectionError", "ConnectionError"]
    # The cron job runs every minute: at least once, twice if the demo crossed a minute.
    reports = by_task(jobs, "demo.nightly_report")
    assert S.COMPLETED in {j.state for j in reports}
    assert 1 <= len(reports) <= 2
    assert len(jobs) == ENQUEUED + len(reports)

    # The statistics table printed at the end is the file's content, queue by queue.
    printed = {row.pop("queue"): row for row in table(demo.stdout, "taskward statistics")}
    assert printed == {
        queue: {state.value: str(counts.get(state, 0)) for state in JobState}
        for queue, counts in stats.counts.items()
    }
    assert printed["emails"]["completed"] == "8"
    assert printed["media"]["completed"] == "1"
    assert (printed["default"]["failed"], printed["default"]["discarded"]) == ("1", "1")


async def test_each_welcome_email_goes_to_its_user(demo: DemoRun) -> None:
    jobs, _ = await read_store(demo.cwd / "demo.db")
    emails = by_task(jobs, "demo.send_welcome_email")
    assert [(j.args, j.kwargs) for j in emails] == [
        ([n, f"user{n}@example.com"], {}) for n in range(1, 9)
    ]
    assert [j.result for j in emails] == [
        f"welcome mail sent to user{n}@example.com" for n in range(1, 9)
    ]


async def test_the_dead_letters_and_the_flaky_sync_are_reported(demo: DemoRun) -> None:
    jobs, _ = await read_store(demo.cwd / "demo.db")
    failed, discarded = by_task(jobs, "demo.charge_card")
    assert (failed.state, failed.attempt, failed.max_attempts) == (S.FAILED, 3, 3)
    assert (discarded.state, discarded.attempt) == (S.DISCARDED, 1)  # Discard: no retry

    title = f"dead letters (retry one with: taskward retry ID --url {URL})"
    rows = table(demo.stdout, title)
    assert sorted(rows, key=lambda row: int(row["id"])) == [
        {
            "id": str(failed.id),
            "task": "demo.charge_card",
            "state": "failed",
            "attempts": "3",
            "last error": "RuntimeError: payment gateway declined order 1001",
        },
        {
            "id": str(discarded.id),
            "task": "demo.charge_card",
            "state": "discarded",
            "attempts": "1",
            "last error": "Discarded: order 1002: amount 0 is not chargeable",
        },
    ]
    assert Counter(j.state for j in jobs if j.state in {S.FAILED, S.DISCARDED}) == Counter(
        {S.FAILED: 1, S.DISCARDED: 1}
    )
    last_line = demo.stdout.rstrip().splitlines()[-1]
    assert last_line == (
        "flaky CRM sync: completed — 'acme-corp synced on attempt 3' after 3 attempts"
    )


async def test_the_retry_hint_it_prints_works(demo: DemoRun, tmp_path: Path) -> None:
    """`taskward retry ID --url sqlite:///./demo.db`, in the demo's directory (a copy)."""
    for part in demo.cwd.glob("demo.db*"):
        shutil.copy(part, tmp_path / part.name)
    [dead_id] = re.findall(r"│ (\d+) +│ demo\.charge_card +│ failed", demo.stdout)
    proc = run_taskward(tmp_path, "retry", dead_id, "--url", URL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"job {dead_id}: pending" in proc.stdout
    jobs, _ = await read_store(tmp_path / "demo.db")
    [retried] = [job for job in jobs if job.id == int(dead_id)]
    assert retried.state is S.PENDING
