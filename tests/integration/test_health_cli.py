"""``taskward health``: the table, ``--json``, ``--queue`` and one exit code per verdict."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskward import FrozenClock, TaskManager
from taskward.cli import app
from taskward.clock import utcnow

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("TASKWARD_APP", raising=False)
    monkeypatch.delenv("TASKWARD_URL", raising=False)
    return f"sqlite:///{tmp_path}/health.db"


def store_with_a_job_due(url: str, seconds_ago: float | None) -> None:
    """Create the store; with ``seconds_ago``, one email job due that long ago, unserved."""

    async def make() -> None:
        clock = FrozenClock(utcnow() - timedelta(seconds=seconds_ago or 0))
        async with TaskManager(url, clock=clock) as tw:
            if seconds_ago is not None:

                @tw.task(name="emails.send", queue="emails")
                def send(to: str) -> None:
                    return None

                await send.enqueue("ada@example.com")

    asyncio.run(make())


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["health", *args])
    return result.exit_code, result.output


def test_ok_exits_0_with_the_table(url: str) -> None:
    store_with_a_job_due(url, None)
    code, out = invoke("--url", url)
    assert code == 0, out
    assert "taskward health: ok" in out
    assert "workers alive: 0" in out


def test_degraded_exits_3_and_says_why(url: str) -> None:
    store_with_a_job_due(url, 600)
    code, out = invoke("--url", url)
    assert code == 3, out
    assert "taskward health: degraded" in out
    assert "emails" in out
    assert "degraded: queue 'emails': oldest due job waited" in out
    assert "(degraded above 300 s)" in out
    assert "degraded: queue 'emails': 0 live worker(s)" in out


def test_failing_exits_4_and_json_is_the_report(url: str) -> None:
    store_with_a_job_due(url, 7200)
    code, out = invoke("--url", url, "--json")
    assert code == 4, out
    body = json.loads(out)
    assert body["verdict"] == "failing"
    [queue] = body["queues"]
    assert (queue["queue"], queue["backlog"]) == ("emails", 1)
    assert queue["oldest_due_age"] >= 7200
    assert "ada@example.com" not in out


def test_one_queue_alone(url: str) -> None:
    store_with_a_job_due(url, 7200)
    code, out = invoke("--url", url, "--queue", "reports")
    assert code == 0, out
    assert "queue reports has no due, running or recently ended jobs" in out
    code, out = invoke("--url", url, "-q", "emails", "--json")
    assert code == 4
    assert [q["queue"] for q in json.loads(out)["queues"]] == ["emails"]


def test_bad_input_is_one_error_line(url: str) -> None:
    store_with_a_job_due(url, None)
    code, out = invoke("--url", url, "--queue", "no spaces")
    assert code == 1
    assert out.count("error:") == 1
    assert "invalid queue name 'no spaces'" in out
    assert "Traceback" not in out
    missing = url.replace("health.db", "missing.db")
    code, out = invoke("--url", missing)
    assert code == 1
    assert out.startswith("error:")


def test_the_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["health", "--help"])
    assert result.exit_code == 0
    assert "0 ok, 3 degraded, 4 failing" in result.output


def test_the_app_s_thresholds_are_the_ones_judged(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_with_a_job_due(url, 0)
    (tmp_path / "health_cli_app.py").write_text(
        "from taskward import TaskManager\n"
        "from taskward.health import HealthLimits, HealthThresholds\n"
        f"tw = TaskManager({url!r}, health_thresholds=HealthThresholds(\n"
        "    degraded=HealthLimits(), failing=HealthLimits(max_backlog=0)))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out = invoke("--url", url)
    assert code == 3, out  # the defaults: nobody serves a queue with a due job
    code, out = invoke("--app", "health_cli_app:tw")
    assert code == 4, out  # the app's: failing above a backlog of 0
    assert "failing: queue 'emails': backlog of 1 due jobs (failing above 0 due jobs)" in out
