"""``taskward retry ID`` with edits and ``taskward retry-all`` on a real SQLite file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskward.cli import app

runner = CliRunner()
APP = ("--app", "tests_support.replay_app:manager")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TASKWARD_URL", url)
    monkeypatch.setenv("TASKWARD_TEST_URL", url)
    monkeypatch.delenv("TASKWARD_APP", raising=False)
    monkeypatch.delitem(sys.modules, "tests_support.replay_app", raising=False)
    return url


def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.output


def status(job_id: int) -> dict[str, object]:
    code, out = invoke("status", str(job_id), "--json")
    assert code == 0, out
    shown: dict[str, object] = json.loads(out)
    return shown


def burst() -> None:
    code, out = invoke("worker", "--burst", "--log-level", "CRITICAL", *APP)
    assert code == 0, out


def test_retry_with_new_arguments_and_a_note(env: str) -> None:
    assert invoke("enqueue", "replay.divide", "--args", "[1, 0]", *APP)[0] == 0
    burst()
    assert status(1)["state"] == "failed"
    code, out = invoke("retry", "1", "--args", "[1, 4]", "--note", "b was 0", *APP)
    assert code == 0, out
    assert out.strip().endswith("job 1: pending")
    burst()
    shown = status(1)
    assert (shown["state"], shown["result"], shown["args"]) == ("completed", 0.25, [1, 4])
    [record] = shown["meta"]["taskward.replays"]  # type: ignore[index]
    assert (record["args"], record["note"], record["state"]) == ([1, 0], "b was 0", "failed")
    code, out = invoke("status", "1")
    assert "replayed" in out
    assert 'b was 0 (was {"args": [1, 0]})' in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--args", "[1,"), "--args must be JSON"),
        (("--kwargs", "[1]"), "--kwargs must be a JSON object"),
        (("--args", '{"a": 1}'), "--args must be a JSON list"),
    ],
)
def test_bad_json_is_one_usage_error_line(env: str, options: tuple[str, ...], message: str) -> None:
    invoke("enqueue", "replay.divide", "--args", "[1, 0]", *APP)
    burst()
    code, out = invoke("retry", "1", *options)
    assert code == 2
    assert out.count("error:") == 1
    assert message in out
    assert "Traceback" not in out
    assert status(1)["state"] == "failed"


def test_arguments_the_task_cannot_take_change_nothing(env: str) -> None:
    invoke("enqueue", "replay.divide", "--args", "[1, 0]", *APP)
    burst()
    code, out = invoke("retry", "1", "--args", "[1, 2, 3]", *APP)
    assert code == 1
    assert out.count("error:") == 1
    assert "Nothing was stored" in out or "takes" in out
    assert status(1)["args"] == [1, 0]
    assert status(1)["state"] == "failed"
    code, out = invoke("retry", "1", "--priority", "12", *APP)
    assert code == 1
    assert "priority" in out


def test_a_running_or_completed_job_is_refused(env: str) -> None:
    invoke("enqueue", "replay.divide", "--args", "[1, 1]", *APP)
    burst()
    code, out = invoke("retry", "1", "--note", "again")
    assert code == 1
    assert "completed: only a failed, discarded or cancelled job" in out


def test_retry_all_counts_asks_then_replays_each(env: str) -> None:
    for n in range(3):
        invoke("enqueue", "replay.send", "--args", f'["u{n}@x", "tok-{n}"]', *APP)
    invoke("enqueue", "replay.divide", "--args", "[1, 0]", *APP)
    burst()
    code, out = invoke("retry-all", "--task", "replay.send", input="n\n")
    assert code == 1
    assert "3 dead letter(s) match" in out
    assert "nothing retried" in out
    assert [status(i)["state"] for i in (1, 2, 3)] == ["failed"] * 3
    code, out = invoke(
        "retry-all",
        "--error-kind",
        "ConnectionError",
        "--set-kwargs",
        '{"relay": "backup"}',
        "--note",
        "primary down",
        "--yes",
        *APP,
    )
    assert code == 0, out
    assert "3 dead letter(s) match" in out
    assert "retried 3 job(s), refused 0" in out
    burst()
    for i in (1, 2, 3):
        shown = status(i)
        assert shown["result"] == f"sent to u{i - 1}@x via backup"
        assert shown["args"] == [f"u{i - 1}@x", "***"]  # the token stays hidden
        assert f"tok-{i - 1}" not in json.dumps(shown)
    assert status(4)["state"] == "failed"  # another error kind: not matched


def test_retry_all_reports_a_job_it_refuses_and_retries_the_rest(env: str) -> None:
    invoke("enqueue", "replay.send", "--args", '["a@x", "t"]', *APP)
    invoke("enqueue", "replay.divide", "--args", "[1, 0]", *APP)
    burst()
    code, out = invoke("retry-all", "--set-kwargs", '{"relay": "backup"}', "--yes", *APP)
    assert code == 1
    assert "2 dead letter(s) match" in out
    assert "job 2 left unchanged" in out
    assert "retried 1 job(s), refused 1" in out
    assert status(1)["state"] == "pending"
    assert status(2)["state"] == "failed"
    code, out = invoke("retry-all", "--set-kwargs", "{bad", "--yes")
    assert code == 2
    assert out.count("error:") == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--priority", "12"), "priority"),
        (("--to-queue", "no spaces allowed"), "queue"),
        (("--note", "x" * 3000), "note must be at most 2000 characters"),
    ],
)
def test_retry_all_refuses_a_bad_option_once_before_any_job(
    env: str, options: tuple[str, ...], message: str
) -> None:
    for n in range(3):
        invoke("enqueue", "replay.divide", "--args", f"[{n}, 0]", *APP)
    burst()
    code, out = invoke("retry-all", *options, "--yes", *APP)
    assert code == 2, out
    assert out.count("error:") == 1  # one usage error, not one refusal per job
    assert message in out
    assert "left unchanged" not in out
    assert [status(i)["state"] for i in (1, 2, 3)] == ["failed"] * 3
