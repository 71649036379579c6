"""A worker killed with SIGKILL mid-task: its task is rescued and run again by another worker.

(Django's database backend leaves such a task RUNNING forever.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.db import connection
from django.test import TransactionTestCase

from shop.tasks import add, hangs_on_first_attempt
from shop.tests.helpers import PROJECT
from taskward.contrib.django.compat import TaskResultStatus


def start_worker(lease: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TASKWARD_DJANGO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        # Short leases and polls, so that the rescue happens within the test's seconds.
        "TASKWARD_LEASE_SECONDS": str(lease),
        "TASKWARD_POLL_INTERVAL": "0.1",
    }
    return subprocess.Popen(
        [sys.executable, str(PROJECT / "manage.py"), "taskward_worker", "--backend", "retrying"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(check: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.1)
    return False


class KilledWorkerTests(TransactionTestCase):
    def test_a_task_of_a_killed_worker_runs_again(self) -> None:
        marker = Path(tempfile.mkdtemp()) / "started"
        result = hangs_on_first_attempt.enqueue(str(marker))
        first = start_worker(lease=2.0)
        try:
            self.assertTrue(wait_for(marker.exists, 30), "the first attempt never started")
            result.refresh()
            self.assertEqual(result.status, TaskResultStatus.RUNNING)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        second = start_worker(lease=2.0)
        try:

            def finished() -> bool:
                result.refresh()
                return bool(result.is_finished)

            self.assertTrue(wait_for(finished, 60), "the task was not rescued")
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(30)
            except subprocess.TimeoutExpired:
                second.kill()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 2)
        self.assertEqual(result.attempts, 2)
        self.assertEqual(second.returncode, 0, second.stderr.read() if second.stderr else "")


class SupervisedWorkerTests(TransactionTestCase):
    def test_manage_py_worker_with_two_processes(self) -> None:
        results = [add.enqueue(n, n) for n in range(20)]
        env = {
            **os.environ,
            "TASKWARD_DJANGO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
            "TASKWARD_POLL_INTERVAL": "0.1",
        }
        supervisor = subprocess.Popen(
            [sys.executable, str(PROJECT / "manage.py"), "taskward_worker", "--processes", "2"],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def all_done() -> bool:
                for result in results:
                    result.refresh()
                return all(r.status == TaskResultStatus.SUCCESSFUL for r in results)

            self.assertTrue(wait_for(all_done, 60), "the children did not run the jobs")
        finally:
            supervisor.send_signal(signal.SIGTERM)
            try:
                _, errors = supervisor.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                _, errors = supervisor.communicate()
        self.assertEqual(supervisor.returncode, 0, errors)
        self.assertEqual([r.return_value for r in results], [n + n for n in range(20)])
