"""The ``taskward`` command on a real SQLite file (in-process, and as a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from taskward import JobState, TaskManager
from taskward.cli import app, stats_table

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TASKWARD_URL", url)
    monkeypatch.setenv("TASKWARD_TEST_URL", url)
    monkeypatch.setenv("TASKWARD_TEST_LOG", str(tmp_path / "run.log"))
    monkeypatch.delenv("TASKWARD_APP", raising=False)
    # The support module builds its manager from TASKWARD_TEST_URL at import: import it afresh.
    monkeypatch.delitem(sys.modules, "tests_support.jobs", raising=False)
    return {"url": url, "log": str(tmp_path / "run.log")}


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_enqueue_list_status_and_burst_worker(env: dict[str, str]) -> None:
    code, out = invoke("enqueue", "tests_support.jobs:add", "--args", "[2, 3]", "--priority", "1")
    assert code == 0, out
    assert "enqueued job 1" in out
    code, out = invoke("jobs", "--json")
    assert code == 0
    (listed,) = json.loads(out)
    assert listed["state"] == "pending"
    assert listed["priority"] == 1
    code, out = invoke("worker", "--burst", "-q", "default=2", "--log-level", "WARNING")
    assert code == 0, out
    assert "'completed': 1" in out
    code, out = invoke("status", "1", "--json")
    assert json.loads(out)["result"] == 5
    code, out = invoke("jobs", "--state", "completed")
    assert code == 0
    assert "1 job(s)" in out
    assert "completed" in out


@pytest.mark.parametrize(
    ("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")]
)
def test_the_worker_runs_on_the_event_loop_asked_for(
    env: dict[str, str], choice: str, expected: str
) -> None:
    """auto takes uvloop where installed (the dev extra installs it, except on Windows)."""
    if expected == "uvloop":
        pytest.importorskip("uvloop")
    invoke("enqueue", "tests_support.jobs:loop_module")
    code, out = invoke("worker", "--burst", "--loop", choice, "--log-level", "WARNING")
    assert code == 0, out
    code, out = invoke("status", "1", "--json")
    assert json.loads(out)["result"] == expected


def test_an_unknown_event_loop_is_refused_before_anything_runs(env: dict[str, str]) -> None:
    invoke("enqueue", "tests_support.jobs:add", "--args", "[1]")
    code, out = invoke("worker", "--burst", "--loop", "trio")
    assert code == 2
    assert "choose from auto, asyncio, uvloop" in out
    code, out = invoke("status", "1", "--json")
    assert json.loads(out)["state"] == "pending"


def test_stats_retry_cancel_and_cleanup(env: dict[str, str]) -> None:
    invoke("enqueue", "support.fail", "--app", "tests_support.jobs:manager")
    invoke("enqueue", "tests_support.jobs:add", "--args", "[1]", "--delay", "3600")
    code, out = invoke("worker", "--burst", "--app", "tests_support.jobs:manager")
    assert code == 0, out
    code, out = invoke("stats", "--json")
    counts = json.loads(out)["queues"]["default"]
    assert counts["failed"] == 1
    assert counts["scheduled"] == 1
    code, out = invoke("status", "1")
    assert "support.fail always fails" in out
    code, out = invoke("retry", "1")
    assert code == 0
    assert "pending" in out
    code, out = invoke("cancel", "2")
    assert "cancelled" in out
    code, out = invoke("cleanup", "--completed-days", "0", "--failed-days", "0")
    assert "deleted 1 job(s)" in out  # the cancelled one; the retried one is pending
    code, out = invoke("stats")
    assert code == 0
    assert "taskward statistics" in out
    assert "workers: 0" in out  # the burst worker deregistered


def test_stats_mark_estimated_counts(env: dict[str, str]) -> None:
    assert invoke("migrate")[0] == 0  # stats only reads: it never creates the store
    code, out = invoke("stats", "--json")
    assert code == 0
    assert json.loads(out)["estimated"] == {}  # SQLite: always exact
    assert "estimated" not in invoke("stats")[1]
    counts = {s.value: 0 for s in JobState} | {"completed": 250_000, "failed": 7}
    data = {
        "queues": {"default": counts},
        "estimated": {"default": ["completed"]},
        "paused": [],
        "workers": {"total": 0, "busy_slots": 0, "total_slots": 0, "nodes": []},
    }
    console = Console(width=200, record=True)
    console.print(stats_table(data))
    shown = console.export_text()
    assert "~250000" in shown
    assert "~7" not in shown
    assert " 7 " in shown
    assert "~ estimated: past 10,000 finished jobs of a queue in one state" in shown


def test_pause_resume_and_cron(env: dict[str, str]) -> None:
    # No task, job or setting uses "emails" yet: --force pauses it ahead of its first job.
    assert invoke("pause", "emails", "--force")[0] == 0
    assert json.loads(invoke("stats", "--json")[1])["paused"] == ["emails"]
    assert invoke("resume", "emails")[0] == 0  # a paused queue is known
    code, out = invoke("cron", "list", "--json")
    assert code == 0
    assert json.loads(out) == []
    code, out = invoke("cron", "cancel", "nothing")
    assert code == 1
    assert "error: no recurring schedule named 'nothing'" in out


def test_cron_cancel_of_a_schedule(env: dict[str, str]) -> None:
    async def save() -> None:
        async with TaskManager(env["url"]) as tw:
            await tw.schedule_recurring_task(
                "nightly", "tests_support.jobs:add", cron="0 3 * * *", args=[1]
            )

    asyncio.run(save())
    assert [s["name"] for s in json.loads(invoke("cron", "list", "--json")[1])] == ["nightly"]
    code, out = invoke("cron", "cancel", "nightly")
    assert code == 0, out
    assert "recurring schedule nightly cancelled" in out
    assert json.loads(invoke("cron", "list", "--json")[1]) == []


def test_errors_are_clear_and_exit_nonzero(env: dict[str, str]) -> None:
    invoke("migrate")
    code, out = invoke("status", "42")
    assert code == 1
    assert "job 42 not found" in out
    # "module:function" is enqueued even where the code is absent (the worker decides);
    # a name that is neither registered nor an import path is refused at once.
    code, out = invoke("enqueue", "nosuchtask")
    assert code == 1
    assert "unknown task 'nosuchtask'" in out
    code, out = invoke("enqueue", "tests_support.jobs:add", "--args", "{not json")
    assert code == 2
    code, out = invoke("enqueue", "tests_support.jobs:add", "--queue", "bad queue")
    assert code == 1
    assert "invalid queue name" in out


def test_bulk_enqueue_from_jsonl(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(json.dumps({"args": [i, i]}) for i in range(50)) + "\n")
    code, out = invoke("enqueue", "tests_support.jobs:add", "--from-file", str(path))
    assert code == 0, out
    assert "enqueued 50 job(s)" in out
    code, out = invoke("jobs", "--json", "--per-page", "100")
    assert len(json.loads(out)) == 50


def test_migrate_and_audit_subcommands(env: dict[str, str], tmp_path: Path) -> None:
    code, out = invoke("migrate")
    assert code == 0
    assert out.startswith("applied ")
    code, out = invoke("migrate")
    assert code == 0
    assert "up to date (version " in out
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\n\nasync def f():\n    asyncio.create_task(g())\n")
    code, out = invoke("audit", str(bad), "--format", "json")
    assert code == 1
    assert json.loads(out)[0]["function"] == "f"
    good = tmp_path / "good.py"
    good.write_text("x = 1\n")
    assert invoke("audit", str(good))[0] == 0


def test_python_dash_m_runs_the_cli(env: dict[str, str]) -> None:
    invoke("migrate")
    proc = subprocess.run(
        [sys.executable, "-m", "taskward", "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["queues"] == {}


def test_workflow_shows_and_cancels_a_workflow(env: dict[str, str]) -> None:
    from taskward import chain

    manager = TaskManager(env["url"])
    try:
        step = manager.task(name="support.add")(lambda a, b=0: a + b)
        record = manager.sync.enqueue_workflow(chain(step.s(1), step.s(2)), name="pair")
    finally:
        manager.sync.shutdown()
    code, out = invoke("workflow", str(record.id))
    assert code == 0, out
    assert f"workflow {record.id} (pair): running, 2 step(s)" in out
    assert "add.2: job 2 (support.add) blocked, after add" in out
    code, out = invoke("workflow", str(record.id), "--cancel", "--json")
    assert code == 0, out
    assert [s["state"] for s in json.loads(out)["steps"]] == ["cancelled", "cancelled"]
    code, out = invoke("workflow", "999")
    assert code == 1
    assert "error: no workflow with id 999" in out
