"""``manage.py taskward_worker`` as a deployment runs it: a separate process on the same store."""

from __future__ import annotations

import io
import json

from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import TransactionTestCase, override_settings

from shop.models import Order
from shop.tasks import add, always_fails, flaky, send_confirmation
from shop.tests.helpers import burst, manage, run_until_finished
from taskward.contrib.django.compat import TaskResultStatus


class WorkerCommandTests(TransactionTestCase):
    def test_a_worker_process_runs_the_jobs(self) -> None:
        orders = [Order.objects.create(email=f"{i}@example.com") for i in range(5)]
        results = [send_confirmation.enqueue(order.id) for order in orders]
        done = manage("taskward_worker", "--burst", "-q", "emails=2")
        self.assertEqual(done.returncode, 0, done.stderr)
        for result in results:
            result.refresh()
            self.assertEqual(result.errors, [], done.stderr)
            self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
            self.assertEqual(len(result.worker_ids), 1)
        self.assertEqual(Order.objects.filter(confirmed=True).count(), 5)

    def test_supervision_is_refused_through_call_command(self) -> None:
        # A supervisor re-runs its own command line: from call_command, the caller's program.
        for option in ("--processes", "--max-jobs-per-process"):
            with self.assertRaisesMessage(CommandError, f"{option} works from a shell only"):
                call_command("taskward_worker", "--burst", option, "2")

    def test_help_shows_the_worker_options(self) -> None:
        shown = manage("taskward_worker", "--help")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn("--burst", shown.stdout)
        self.assertIn("--queue", shown.stdout)

    def test_an_alias_that_is_not_taskward_is_one_error_line(self) -> None:
        refused = manage("taskward_worker", "--burst", "--backend", "nosuch")
        self.assertEqual(refused.returncode, 1)
        (line,) = refused.stderr.strip().splitlines()
        self.assertTrue(line.startswith("error: ") and "nosuch" in line, line)

    def test_the_alias_queues_are_served_by_default(self) -> None:
        order = Order.objects.create(email="q@example.com")
        result = send_confirmation.enqueue(order.id)  # queue "emails", in QUEUES
        burst()  # no -q: every queue of QUEUES
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)


class RetryTests(TransactionTestCase):
    def test_retries_until_success_count_attempts(self) -> None:
        order = Order.objects.create(email="f@example.com")
        result = flaky.enqueue(order.id)
        run_until_finished(result, "--backend", "retrying")
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 3)
        self.assertEqual(result.attempts, 3)
        self.assertEqual(len(result.errors), 2)
        self.assertEqual(
            [e.exception_class_path for e in result.errors], ["shop.tasks.CustomError"] * 2
        )
        self.assertIn("attempt 2", result.errors[1].traceback)
        order.refresh_from_db()
        self.assertEqual(order.attempts, 3)

    def test_a_task_failing_every_attempt_is_failed_with_each_error(self) -> None:
        result = always_fails.enqueue()
        run_until_finished(result, "--backend", "retrying")
        self.assertEqual(result.status, TaskResultStatus.FAILED)
        self.assertEqual(result.attempts, 3)
        self.assertEqual(len(result.errors), 3)
        self.assertIsNotNone(result.finished_at)
        with self.assertRaises(ValueError):
            _ = result.return_value


class TaskwardCommandTests(TransactionTestCase):
    def test_any_taskward_command_reaches_the_alias_store(self) -> None:
        result = add.enqueue(1, 2)
        shown = manage("taskward", "status", result.id, "--json")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        job = json.loads(shown.stdout)
        self.assertEqual(job["task"], "shop.tasks.add")
        self.assertEqual(job["args"], [1, 2])
        stats = manage("taskward", "stats", "--json", "--backend", "retrying")
        self.assertEqual(stats.returncode, 0, stats.stderr)
        self.assertIsInstance(json.loads(stats.stdout), dict)

    def test_an_unknown_alias_is_one_error_line(self) -> None:
        refused = manage("taskward", "jobs", "--backend", "nosuch")
        self.assertEqual(refused.returncode, 1)
        self.assertEqual(
            refused.stderr.strip().splitlines(), ["error: The connection 'nosuch' doesn't exist."]
        )


class CallCommandTests(TransactionTestCase):
    def test_a_failing_command_raises_command_error(self) -> None:
        with self.assertRaises(CommandError) as raised:  # no such job: an error, status 1
            call_command("taskward", "status", "999999999")
        self.assertEqual(raised.exception.returncode, 1)
        with self.assertRaises(CommandError) as raised:  # not an id: a usage error, status 2
            call_command("taskward", "status", "abc")
        self.assertEqual(raised.exception.returncode, 2)

    def test_a_task_enqueued_on_another_alias_runs_there(self) -> None:
        # add is decorated for "default"; its worker on "retrying" runs it all the same.
        result = add.using(backend="retrying", queue_name="retries").enqueue(20, 22)
        self.assertEqual(result.backend, "retrying")
        burst("--backend", "retrying")
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 42)
        self.assertEqual(result.task.backend, "retrying")

    def test_a_worker_for_any_queue_must_name_its_queues(self) -> None:
        tasks = {**settings.TASKS, "open": {**settings.TASKS["default"], "QUEUES": []}}
        with override_settings(TASKS=tasks):
            errors = io.StringIO()
            with self.assertRaises(CommandError):
                call_command("taskward_worker", "--burst", "--backend", "open", stderr=errors)
        self.assertIn("QUEUES'] is empty", errors.getvalue())
