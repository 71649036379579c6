"""``taskward cron history NAME`` on a real SQLite file: the table, --json, --limit, and one
``error:`` line (exit 1) for an unknown schedule or (exit 2) a bad limit."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskward import FrozenClock, TaskManager
from taskward.errors import InvalidOptions, ScheduleNotFound
from taskward.runtime.scheduler import CronScheduler

runner = CliRunner()
START = datetime(2026, 3, 2, 9, 59, 30, tzinfo=UTC)


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TASKWARD_URL", url)
    monkeypatch.setenv("TASKWARD_TEST_URL", url)
    monkeypatch.delenv("TASKWARD_APP", raising=False)
    monkeypatch.delitem(sys.modules, "tests_support.jobs", raising=False)
    return url


def invoke(*args: str) -> tuple[int, str]:
    from taskward.cli import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def fire_three_hours(url: str) -> None:
    """10:00 inserted, then a scheduler down until 13:20 (11:00-13:00 skipped as missed)."""

    async def go() -> None:
        clock = FrozenClock(START)
        async with TaskManager(url, clock=clock) as tw:
            await tw.schedule_recurring_task(
                "hourly", "tests_support.jobs:add", cron="0 * * * *", args=[1]
            )
            for when in (
                datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC),
                datetime(2026, 3, 2, 13, 20, tzinfo=UTC),
            ):
                clock.set(when)
                await CronScheduler(tw.backend, clock, make_job=tw.schedule_job).run_once()

    asyncio.run(go())


def test_history_as_json_and_as_a_table(url: str) -> None:
    fire_three_hours(url)
    code, out = invoke("cron", "history", "hourly", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["planned_at"], r["outcome"], r["count"]) for r in rows] == [
        ("2026-03-02T13:00:00+00:00", "skipped", 3),
        ("2026-03-02T10:00:00+00:00", "inserted", 1),
    ]
    assert rows[0]["job_id"] is None
    assert rows[0]["reason"].startswith("missed: 3 fire times from 2026-03-02T11:00:00+00:00")
    assert rows[1]["job_id"] == 1
    (listed,) = json.loads(invoke("cron", "list", "--json")[1])
    assert (listed["catch_up"], listed["overlap"]) == ("skip", "allow")
    code, out = invoke("cron", "history", "hourly", "--limit", "1", "--json")
    assert [r["outcome"] for r in json.loads(out)] == ["skipped"]
    code, out = invoke("cron", "history", "hourly")
    assert code == 0, out
    assert "fire history of hourly" in out
    assert "inserted" in out
    assert "skipped" in out


def test_unknown_schedule_is_one_error_line(url: str) -> None:
    invoke("migrate")
    code, out = invoke("cron", "history", "nothing")
    assert code == 1
    assert out.strip() == "error: no recurring schedule named 'nothing'"


def test_a_schedule_without_fires_yet(url: str) -> None:
    fire_three_hours(url)

    async def another() -> None:
        async with TaskManager(url) as tw:
            await tw.schedule_recurring_task(
                "new", "tests_support.jobs:add", cron="0 3 * * *", args=[1]
            )

    asyncio.run(another())
    code, out = invoke("cron", "history", "new", "--json")
    assert (code, json.loads(out)) == (0, [])
    code, out = invoke("cron", "history", "new")
    assert "no fire time handled yet" in out


def test_a_limit_out_of_range_is_a_usage_error(url: str) -> None:
    code, out = invoke("cron", "history", "hourly", "--limit", "0")
    assert code == 2
    assert "--limit" in out


def test_the_sync_twin_reads_the_same_history(url: str) -> None:
    fire_three_hours(url)
    tw = TaskManager(url)
    try:
        found = tw.sync.cron_history("hourly", limit=5)
        assert [(f.outcome, f.count) for f in found] == [("skipped", 3), ("inserted", 1)]
        with pytest.raises(ScheduleNotFound):
            tw.sync.cron_history("nothing")
        with pytest.raises(InvalidOptions, match="limit must be an integer from 1 to 100"):
            tw.sync.cron_history("hourly", limit=0)
    finally:
        tw.sync.close()
