"""``taskward wait ID``: the result as JSON, and one exit code per way a job ends."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskward import TaskManager
from taskward.cli.waits import (
    EXIT_CANCELLED,
    EXIT_DISCARDED,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_TIMEOUT,
)
from taskward.errors import Discard

pytestmark = pytest.mark.integration


def wait_command(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "taskward", "wait", *args, "--url", url]


def taskward_wait(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TASKWARD_APP", None)
    return subprocess.run(
        wait_command(url, *args), capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture
async def ended(tmp_path: Path) -> tuple[str, dict[str, int]]:
    """A SQLite store with one job ended each way, and one still pending; their ids."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    async with TaskManager(url) as tw:

        @tw.task(name="cli.add")
        def add(a: int, b: int) -> dict[str, int]:
            return {"sum": a + b}

        @tw.task(name="cli.fail", max_attempts=1)
        def fail() -> None:
            raise ValueError("out of luck")

        @tw.task(name="cli.discard")
        def discard() -> None:
            raise Discard("bad input")

        ids = {
            "completed": (await add.enqueue(2, 3)).id,
            "failed": (await fail.enqueue()).id,
            "discarded": (await discard.enqueue()).id,
        }
        await tw.drain()
        ids["cancelled"] = (await add.enqueue_with(args=[1, 1], delay=3600)).id
        await tw.cancel_task(ids["cancelled"], reason="not needed")
        ids["pending"] = (await add.enqueue_with(args=[1, 1], delay=3600)).id
    return url, ids


def test_a_completed_job_prints_its_result_as_json(ended: tuple[str, dict[str, int]]) -> None:
    url, ids = ended
    done = taskward_wait(url, str(ids["completed"]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sum": 5}


@pytest.mark.parametrize(
    ("kind", "code", "text"),
    [
        ("failed", EXIT_FAILED, "ValueError: out of luck"),
        ("discarded", EXIT_DISCARDED, "bad input"),
        ("cancelled", EXIT_CANCELLED, "not needed"),
    ],
)
def test_each_other_end_has_its_exit_code(
    ended: tuple[str, dict[str, int]], kind: str, code: int, text: str
) -> None:
    url, ids = ended
    done = taskward_wait(url, str(ids[kind]), "--timeout", "10")
    assert done.returncode == code
    assert done.stdout == ""
    assert done.stderr.startswith("error:")
    assert text in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_job_and_a_timeout(ended: tuple[str, dict[str, int]]) -> None:
    url, ids = ended
    missing = taskward_wait(url, "424242", "--timeout", "1")
    assert missing.returncode == EXIT_NOT_FOUND
    assert "not found" in missing.stderr
    late = taskward_wait(url, str(ids["pending"]), "--timeout", "0.3")
    assert late.returncode == EXIT_TIMEOUT
    assert "has not ended within 0.3 s" in late.stderr
    assert len({EXIT_FAILED, EXIT_DISCARDED, EXIT_CANCELLED, EXIT_NOT_FOUND, EXIT_TIMEOUT}) == 5


def test_a_bad_timeout_is_a_usage_error(ended: tuple[str, dict[str, int]]) -> None:
    url, ids = ended
    bad = taskward_wait(url, str(ids["pending"]), "--timeout", "-1")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


async def test_the_command_wakes_when_another_process_ends_the_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/live.db"
    async with TaskManager(url) as tw:

        @tw.task(name="cli.live")
        def live() -> str:
            return "finished"

        job = await live.enqueue()
        env = {**os.environ, "NO_COLOR": "1"}
        waiting = await asyncio.create_subprocess_exec(
            *wait_command(url, str(job.id), "--timeout", "30"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        await asyncio.sleep(1.5)  # the command starts and watches the job
        assert waiting.returncode is None
        await tw.drain()
        out, err = await asyncio.wait_for(waiting.communicate(), timeout=30)
    assert waiting.returncode == 0, err
    assert json.loads(out) == "finished"
