"""What the shop's tests share: running a worker, reading the store, the database in use."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import connection

PROJECT = Path(__file__).resolve().parents[2]


def on_postgres() -> bool:
    """True when Django's database (and so taskward's store) is PostgreSQL."""
    return connection.vendor == "postgresql"


def burst(*args: str) -> None:
    """Run every due job in this process, as ``manage.py taskward_worker --burst`` would."""
    _burst_output(*args)


def _burst_output(*args: str) -> str:
    """Run a burst worker; return what it printed (its summary line), kept off the test log."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        call_command("taskward_worker", "--burst", "--log-level", "WARNING", *args)
    return out.getvalue()


def burst_counts(*args: str) -> str:
    """Run a burst worker; return what it counted (``"{'completed': 1}"``), as printed."""
    return _burst_output(*args).strip().rsplit("burst done: ", 1)[-1]


def manage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` in a child process on the test database (what a deployment runs)."""
    env = dict(os.environ)
    name = connection.settings_dict["NAME"]
    env["TASKWARD_DJANGO_TEST_DB_NAME"] = str(name)
    return subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_until_finished(result: Any, *args: str, within: float = 20.0, pause: float = 0.2) -> None:
    """Run burst workers until ``result`` is finished (retries wait out their backoff)."""
    deadline = time.monotonic() + within
    while True:
        burst(*args)
        result.refresh()
        if result.is_finished or time.monotonic() > deadline:
            return
        time.sleep(pause)
