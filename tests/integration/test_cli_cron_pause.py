"""``taskward cron pause NAME`` / ``cron resume NAME`` on a real SQLite file (issue 26): the
pause is stored (``cron list`` shows it, in the table and as JSON), a resume says when it
fires next, and an unknown name is one ``error:`` line with exit 1, never a traceback."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskward import TaskManager

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TASKWARD_URL", url)
    monkeypatch.delenv("TASKWARD_APP", raising=False)
    monkeypatch.delitem(sys.modules, "tests_support.jobs", raising=False)

    async def save() -> None:
        async with TaskManager(url) as tw:
            await tw.schedule_recurring_task(
                "nightly/report", "tests_support.jobs:add", cron="0 3 * * *", args=[1]
            )

    asyncio.run(save())
    return url


def invoke(*args: str) -> tuple[int, str]:
    from taskward.cli import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def listed() -> dict[str, bool]:
    code, out = invoke("cron", "list", "--json")
    assert code == 0, out
    return {row["name"]: row["paused"] for row in json.loads(out)}


def test_pause_then_resume(url: str) -> None:
    assert listed() == {"nightly/report": False}
    code, out = invoke("cron", "pause", "nightly/report")
    assert (code, out.strip()) == (0, "recurring schedule nightly/report paused")
    assert listed() == {"nightly/report": True}
    code, out = invoke("cron", "list")
    assert code == 0, out
    assert "paused" in out.splitlines()[-2]  # the schedule's row (the last is the border)
    code, out = invoke("cron", "resume", "nightly/report")
    assert code == 0, out
    assert out.startswith("recurring schedule nightly/report resumed; next run ")
    assert "T03:00:00+00:00" in out
    assert listed() == {"nightly/report": False}


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_an_unknown_schedule_is_one_error_line(url: str, command: str) -> None:
    code, out = invoke("cron", command, "nothing")
    assert code == 1
    assert out.strip() == "error: no recurring schedule named 'nothing'"
    assert listed() == {"nightly/report": False}
