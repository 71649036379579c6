"""The Django test project (tests/django_project), run by Django's own test runner.

Each combination runs ``python manage.py test shop`` in a child process: Django 5.2 with the
``django_tasks`` backport on this interpreter, and Django 6 (``django.tasks``) on Python 3.12
from the second virtual environment ``make test`` creates (``TASKWARD_DJANGO6_PYTHON``); each
on SQLite and on PostgreSQL (the suite's throwaway server, a database per run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests_support.servers import PostgresServer

PROJECT = Path(__file__).resolve().parents[1] / "django_project"
# Fewer tests than this means discovery went wrong (a module failed to import, say).
MIN_TESTS = 80


def django6_python() -> str:
    """The Python 3.12 interpreter of the Django 6 environment, or skip (fail if required)."""
    python = os.environ.get("TASKWARD_DJANGO6_PYTHON", "")
    if python and Path(python).exists():
        return python
    if os.environ.get("TASKWARD_REQUIRE_DJANGO6", "") not in ("", "0"):
        pytest.fail("TASKWARD_REQUIRE_DJANGO6 is set but TASKWARD_DJANGO6_PYTHON is not usable")
    pytest.skip("no Django 6 environment (make test creates .venv-django6)")


def run_suite(python: str, env: dict[str, str], tmp_path: Path) -> str:
    full = {**os.environ, **env, "TASKWARD_DJANGO_DIR": str(tmp_path)}
    full.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [python, "manage.py", "test", "shop", "--noinput", "-v", "2"],
        cwd=PROJECT,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = done.stderr + done.stdout
    assert done.returncode == 0, report[-6000:]
    ran = re.search(r"Ran (\d+) tests?", report)
    assert ran is not None, report[-3000:]
    assert int(ran.group(1)) >= MIN_TESTS, report[-3000:]
    assert "\nOK" in report, report[-3000:]
    return report


def pg_env(server: PostgresServer) -> dict[str, str]:
    name = f"twdj_{uuid.uuid4().hex[:12]}"  # Django creates and drops test_<name>
    return {"TASKWARD_DJANGO_DB": "postgres", "TASKWARD_DJANGO_PG_URL": server.url(name)}


@pytest.mark.timeout(900)
def test_django5_backport_on_sqlite(tmp_path: Path) -> None:
    run_suite(sys.executable, {"TASKWARD_DJANGO_DB": "sqlite"}, tmp_path)


@pytest.mark.timeout(900)
def test_django5_backport_on_postgres(pg_server: PostgresServer, tmp_path: Path) -> None:
    run_suite(sys.executable, pg_env(pg_server), tmp_path)


@pytest.mark.timeout(900)
def test_django6_on_sqlite(tmp_path: Path) -> None:
    run_suite(django6_python(), {"TASKWARD_DJANGO_DB": "sqlite"}, tmp_path)


@pytest.mark.timeout(900)
def test_django6_on_postgres(pg_server: PostgresServer, tmp_path: Path) -> None:
    run_suite(django6_python(), pg_env(pg_server), tmp_path)
