"""``taskward dashboard`` as a real process: it serves the app for the manager given by --app."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from browser.serving import free_port

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "TASKWARD_TEST_URL": f"sqlite:///{tmp_path}/cli.db",
        "TASKWARD_ADMIN_TOKEN": "cli-token",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "taskward", "dashboard", "--app", "tests_support.jobs:manager"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            pytest.fail("taskward dashboard did not answer /health in 10 s")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def test_dashboard_command_serves_the_app(served: str) -> None:
    health = httpx.get(f"{served}/health").json()
    assert health["checks"] == {"backend": True}
    assert httpx.get(f"{served}/dashboard").status_code == 401  # reads need the credentials
    bearer = {"Authorization": "Bearer cli-token"}
    assert httpx.get(f"{served}/dashboard", headers=bearer).status_code == 200
    assert httpx.post(f"{served}/api/queues/default/pause", headers=bearer).json()["paused"]
    metrics = httpx.get(f"{served}/metrics", headers=bearer).text
    assert 'taskward_queue_paused{queue="default"} 1.0' in metrics
