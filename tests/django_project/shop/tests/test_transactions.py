"""An enqueue inside ``transaction.atomic()``: with PostgreSQL it commits or rolls back with
the transaction; with SQLite (a separate store) it is committed at once, as documented."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.test import TransactionTestCase, override_settings

from shop.models import Order
from shop.tasks import add, send_confirmation
from shop.tests.helpers import burst, burst_counts, on_postgres
from taskward.contrib.django.backend import TaskwardBackend
from taskward.contrib.django.compat import (
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
)

TASKS = settings.TASKS


class AtomicEnqueueTests(TransactionTestCase):
    def test_a_committed_enqueue_is_stored_and_runs(self) -> None:
        response = self.client.post("/orders/", {"email": "c@example.com"})
        self.assertEqual(response.status_code, 200)
        body = response.json()
        result = send_confirmation.get_result(body["result"])
        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual(result.args, [body["order"]])
        burst()
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, "c@example.com")
        self.assertTrue(Order.objects.get(pk=body["order"]).confirmed)

    def test_a_rolled_back_enqueue(self) -> None:
        response = self.client.post("/orders/failing/")
        self.assertEqual(response.status_code, 409)
        result_id = response.json()["result"]
        self.assertFalse(Order.objects.filter(email="rolled@example.com").exists())
        if on_postgres():
            # Written through Django's connection: gone with the transaction.
            with self.assertRaises(TaskResultDoesNotExist):
                send_confirmation.get_result(result_id)
        else:
            # A separate store: the job was committed at once and outlives the rollback; its
            # order does not exist, so it fails when it runs (what the docs warn about).
            self.assertEqual(send_confirmation.get_result(result_id).status, "READY")
            burst("-q", "emails")
            failed = send_confirmation.get_result(result_id)
            self.assertEqual(failed.status, TaskResultStatus.FAILED)
            self.assertTrue(failed.errors[0].exception_class_path.endswith("DoesNotExist"))

    def test_invisible_to_workers_until_commit(self) -> None:
        burst()  # nothing else due
        with transaction.atomic():
            result = add.enqueue(20, 22)
            if on_postgres():
                # A worker's connection does not see the uncommitted job: it runs nothing.
                self.assertEqual(burst_counts(), "{}")
        self.assertEqual(burst_counts(), "{'completed': 1}")
        self.assertEqual(add.get_result(result.id).return_value, 42)

    def test_an_explicit_url_is_another_store_even_for_the_same_database(self) -> None:
        # OPTIONS['url'] names the store: it is never Django's database, so an enqueue
        # commits at once, whatever the transaction does (manage.py check says so: I001).
        url = task_backends["default"].url
        explicit = {"BACKEND": TASKS["default"]["BACKEND"], "OPTIONS": {"url": url}}
        with override_settings(TASKS={**TASKS, "explicit": explicit}):
            backend = task_backends["explicit"]
            self.assertIsInstance(backend, TaskwardBackend)
            self.assertFalse(backend.shares_database())
            self.assertEqual(task_backends["default"].shares_database(), on_postgres())
            try:
                with transaction.atomic():
                    result = add.using(backend="explicit").enqueue(1, 2)
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            self.assertEqual(backend.get_result(result.id).status, TaskResultStatus.READY)
            backend.manager.sync.shutdown()

    def test_result_times_are_utc_whatever_the_session_zone(self) -> None:
        if not on_postgres():
            self.skipTest("read through Django's connection on PostgreSQL only")
        result = add.enqueue(1, 1)
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'America/New_York'")
        try:
            read = add.get_result(result.id)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET TIME ZONE 'UTC'")
        self.assertEqual(read.enqueued_at.utcoffset(), timedelta(0))
        self.assertEqual(read.enqueued_at, result.enqueued_at)

    def test_a_savepoint_rolled_back_inside_a_committed_transaction(self) -> None:
        with transaction.atomic():
            kept = add.enqueue(1, 1)
            try:
                with transaction.atomic():
                    dropped = add.enqueue(2, 2)
                    raise RuntimeError("inner block fails")
            except RuntimeError:
                pass
        self.assertEqual(add.get_result(kept.id).status, TaskResultStatus.READY)
        if on_postgres():
            with self.assertRaises(TaskResultDoesNotExist):
                add.get_result(dropped.id)
        else:
            self.assertEqual(add.get_result(dropped.id).status, TaskResultStatus.READY)

    def test_outside_a_transaction_the_enqueue_commits_at_once(self) -> None:
        result = add.enqueue(3, 4)
        self.assertEqual(add.get_result(result.id).status, TaskResultStatus.READY)
        burst()
        self.assertEqual(add.get_result(result.id).return_value, 7)
