"""The backend-behaviour cases of Django's own ``tests/tasks`` suite, run on ``TaskwardBackend``.

Ported (rewritten, not copied) from Django's ``tests/tasks/test_tasks.py``,
``test_dummy_backend.py``, ``test_immediate_backend.py`` and ``test_custom_backend.py``, and
from the ``django-tasks`` backport's database-backend tests (worker, priority, checks). Each
test names the case it comes from. The Immediate backend runs a task inside ``enqueue``; here
a burst worker runs in this process between the enqueue and the assertions instead.

The store outlives each test (SQLite: a file of the run; PostgreSQL: taskward's tables, which
Django's flush leaves alone), so a burst may also run jobs other tests left behind: the tests
here look only at their own results.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation
from django.db import connection, connections, transaction
from django.test import SimpleTestCase, TransactionTestCase, modify_settings, override_settings
from django.utils import timezone

from shop import ported_tasks as t
from shop.tests.helpers import burst, run_until_finished
from taskward.contrib.django.backend import TaskwardBackend
from taskward.contrib.django.compat import (
    DEFAULT_TASK_QUEUE_NAME,
    FRAMEWORK,
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from taskward.contrib.django.worker import BACKEND_ENV
from taskward.errors import Discard
from taskward.manager import TaskManager

try:
    from django.tasks import task
    from django.tasks.exceptions import TaskResultMismatch
except ImportError:  # Django < 6: the backport
    from django_tasks import task  # type: ignore[no-redef]
    from django_tasks.exceptions import TaskResultMismatch  # type: ignore[no-redef]

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED
LOGGER = FRAMEWORK  # Django logs task events on "django.tasks", the backport on "django_tasks"
MISSING_IDS = ("987654321", "not-an-id", "0", "-3")
PRIORITY_MESSAGE = (
    f"priority must be a whole number between {TASK_MIN_PRIORITY} and {TASK_MAX_PRIORITY}."
)


async def aburst(*args: str) -> None:
    """:func:`burst` from async code, in a thread of its own.

    Not thread-sensitive: the worker's event loop would then run in the thread asgiref keeps
    for sync calls, from which the runner's ``sync_to_async`` around an async task cannot
    submit work to that same thread (RuntimeError, the task fails).
    """
    await sync_to_async(burst, thread_sensitive=False)(*args)


def gone() -> None:
    """The task of a job this process has no Django task for."""


class Signals:
    """Records what ``task_enqueued``, ``task_started`` and ``task_finished`` send.

    A copy of the fields is kept: the runner mutates the ``TaskResult`` it sent after the
    signal (it is the one ``TaskContext`` holds).
    """

    def __init__(self, case: SimpleTestCase) -> None:
        self.sent: list[tuple[str, Any, str, Any, dict[str, Any]]] = []
        for name, signal in (
            ("enqueued", task_enqueued),
            ("started", task_started),
            ("finished", task_finished),
        ):
            receiver = self._receiver(name)
            uid = f"test_ported.{name}.{uuid.uuid4().hex}"
            signal.connect(receiver, weak=False, dispatch_uid=uid)
            case.addCleanup(signal.disconnect, dispatch_uid=uid)

    def _receiver(self, name: str) -> Any:
        def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
            fields = {
                "worker_ids": list(task_result.worker_ids),
                "started_at": task_result.started_at,
                "finished_at": task_result.finished_at,
                "errors": [e.exception_class_path for e in task_result.errors],
                "return_value": task_result._return_value,
            }
            self.sent.append((name, sender, task_result.id, task_result.status, fields))

        return receive

    def of(self, result_id: str) -> list[tuple[str, Any, Any]]:
        """(signal, sender, status) sent for ``result_id``, in order."""
        return [
            (name, sender, status) for name, sender, rid, status, _ in self.sent if rid == result_id
        ]

    def fields(self, result_id: str, name: str) -> list[dict[str, Any]]:
        return [f for n, _, rid, _, f in self.sent if rid == result_id and n == name]


def other_sessions() -> int:
    """Sessions on Django's (PostgreSQL) database besides Django's own connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


# -- validation: no store involved ------------------------------------------------------------
class BackendValidationTests(SimpleTestCase):
    """What ``validate_task`` (run by ``@task`` and ``using()``) accepts and refuses."""

    def test_using_correct_backend(self) -> None:
        # test_immediate_backend / test_dummy_backend: test_using_correct_backend
        backend = task_backends["default"]
        self.assertIsInstance(backend, TaskwardBackend)
        self.assertIs(t.noop.get_backend(), backend)
        self.assertEqual(backend.alias, "default")
        self.assertEqual(backend.queues, {"default", "emails"})
        self.assertEqual(backend.options["default_max_attempts"], 1)
        self.assertIs(backend.supports_defer, True)
        self.assertIs(backend.supports_async_task, True)
        self.assertIs(backend.supports_get_result, True)
        self.assertIs(backend.supports_priority, True)

    def test_get_backend(self) -> None:
        # test_tasks: test_get_backend
        moved = t.noop.using(backend="retrying", queue_name="retries")
        self.assertEqual(moved.backend, "retrying")
        self.assertIsInstance(moved.get_backend(), TaskwardBackend)
        self.assertIsNot(moved.get_backend(), t.noop.get_backend())
        # "default" is not among the QUEUES of "retrying".
        with self.assertRaisesMessage(InvalidTask, "Queue 'default' is not valid for backend."):
            t.noop.using(backend="retrying")

    def test_using_priority_queue_and_run_after(self) -> None:
        # test_tasks: test_using_priority, test_using_queue_name, test_using_run_after,
        # test_using_creates_new_instance, test_chained_using
        now = timezone.now()
        self.assertEqual(t.noop.priority, 0)
        self.assertEqual(t.noop.queue_name, DEFAULT_TASK_QUEUE_NAME)
        self.assertIsNone(t.noop.run_after)
        same = t.noop.using()
        self.assertEqual(same, t.noop)
        self.assertIsNot(same, t.noop)
        chained = t.noop.using(run_after=now).using(priority=10).using(queue_name="emails")
        self.assertEqual(
            (chained.priority, chained.queue_name, chained.run_after), (10, "emails", now)
        )
        self.assertEqual(
            (t.noop.priority, t.noop.queue_name, t.noop.run_after), (0, "default", None)
        )

    def test_invalid_priority(self) -> None:
        # test_tasks: test_invalid_priority
        for priority in (TASK_MIN_PRIORITY - 1, TASK_MAX_PRIORITY + 1, 3.1):
            with (
                self.subTest(priority=priority),
                self.assertRaisesMessage(InvalidTask, PRIORITY_MESSAGE),
            ):
                t.noop.using(priority=priority)
        for priority in (TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, 0):
            self.assertEqual(t.noop.using(priority=priority).priority, priority)

    def test_unknown_queue_name(self) -> None:
        # test_tasks: test_unknown_queue_name; test_*_backend: test_validate_on_enqueue
        with self.assertRaisesMessage(InvalidTask, "Queue 'queue-2' is not valid for backend."):
            t.noop.using(queue_name="queue-2")
        self.assertEqual(t.noop.using(queue_name="emails").queue_name, "emails")

    def test_naive_datetime(self) -> None:
        # test_tasks: test_naive_datetime
        with self.assertRaisesMessage(InvalidTask, "run_after must be an aware datetime."):
            t.noop.using(run_after=datetime.now())

    @override_settings(USE_TZ=False)
    def test_naive_datetime_without_use_tz(self) -> None:
        # The other side of test_naive_datetime: without USE_TZ a naive time is valid.
        naive = datetime.now() + timedelta(hours=1)
        self.assertEqual(t.noop.using(run_after=naive).run_after, naive)

    def test_negative_timedelta_run_after(self) -> None:
        # taskward also takes a timedelta as run_after (a delay), but not a negative one.
        with self.assertRaisesMessage(InvalidTask, "negative timedelta"):
            t.noop.using(run_after=timedelta(seconds=-1))

    def test_invalid_function(self) -> None:
        # test_tasks: test_invalid_function
        def nested() -> None:
            return None

        for function in (any, nested):
            with (
                self.subTest(function=function),
                self.assertRaisesMessage(
                    InvalidTask, "Task function must be defined at a module level."
                ),
            ):
                task()(function)

    def test_takes_context_without_taking_context(self) -> None:
        # test_tasks: test_takes_context_without_taking_context
        with self.assertRaisesMessage(
            InvalidTask, "Task takes context but does not have a first argument of 'context'."
        ):
            task(takes_context=True)(t.meaning_of_life.func)

    def test_validate_disallowed_async_task(self) -> None:
        # test_dummy_backend: test_validate_disallowed_async_task; test_custom_backend:
        # test_enqueue_async_task_on_non_async_backend (Django: "async Tasks", backport: "tasks")
        backend = task_backends["default"]
        with (
            mock.patch.multiple(backend, supports_async_task=False),
            self.assertRaisesRegex(InvalidTask, "(?i)Backend does not support async tasks."),
        ):
            backend.validate_task(t.anoop)
        backend.validate_task(t.anoop)  # supported again once the patch is gone

    def test_options_are_checked(self) -> None:
        # test_custom_backend: test_options (OPTIONS reach the backend), and a bad one is refused.
        backend = TaskwardBackend("ported_options", {"OPTIONS": {"default_max_attempts": 4}})
        self.assertEqual(backend.options, {"default_max_attempts": 4})
        self.assertEqual(backend.queues, {DEFAULT_TASK_QUEUE_NAME})
        with self.assertRaisesMessage(ImproperlyConfigured, "no_such_setting"):
            TaskwardBackend("ported_options", {"OPTIONS": {"no_such_setting": 1}})


class CheckTests(SimpleTestCase):
    """``backend.check()`` and Django's system checks, which call it for every backend."""

    def test_check(self) -> None:
        # test_dummy_backend / test_immediate_backend: test_check
        for alias in ("default", "retrying"):
            errors = list(task_backends[alias].check())
            self.assertEqual(errors, [], alias)

    @modify_settings(INSTALLED_APPS={"remove": ["taskward.contrib.django"]})
    def test_app_missing(self) -> None:
        # backport test_database_backend: test_database_backend_app_missing
        errors = list(task_backends["default"].check())
        self.assertEqual([e.id for e in errors], ["taskward.W001"])
        self.assertIsInstance(errors[0], checks.Warning)
        self.assertIn("taskward.contrib.django", errors[0].hint)
        # Django's own check of the TASKS setting reports it for each alias.
        ids = [m.id for m in checks.run_checks() if str(m.id).startswith("taskward.")]
        self.assertEqual(ids, ["taskward.W001"] * len(settings.TASKS))

    def test_unknown_database(self) -> None:
        backend = TaskwardBackend("ported_db", {"OPTIONS": {"database": "nosuch"}})
        errors = list(backend.check())
        self.assertEqual([e.id for e in errors], ["taskward.E001"])
        self.assertIsInstance(errors[0], checks.Error)
        self.assertIn("'nosuch'", errors[0].msg)

    def test_store_elsewhere(self) -> None:
        backend = TaskwardBackend(
            "ported_url", {"OPTIONS": {"url": "postgresql://elsewhere.invalid:5433/other"}}
        )
        ids = [e.id for e in backend.check()]
        if connection.vendor == "postgresql":
            # An enqueue inside atomic() cannot join the transaction of another database.
            self.assertEqual(ids, ["taskward.I001"])
        else:
            self.assertEqual(ids, [])  # SQLite has no transaction to join: nothing to say


# -- enqueue and results, no worker ------------------------------------------------------------
class EnqueueTests(TransactionTestCase):
    def assert_ready(self, result: Any, task: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
        self.assertEqual(result.status, READY)
        self.assertIs(result.is_finished, False)
        self.assertIsNone(result.started_at)
        self.assertIsNone(result.last_attempted_at)
        self.assertIsNone(result.finished_at)
        with self.assertRaisesMessage(ValueError, "Task has not finished yet"):
            _ = result.return_value
        self.assertEqual(result.task, task)
        self.assertEqual(result.args, args)
        self.assertEqual(result.kwargs, kwargs)
        self.assertEqual(result.attempts, 0)
        self.assertEqual(result.worker_ids, [])
        self.assertEqual(result.errors, [])  # test_dummy_backend: test_errors
        self.assertEqual(result.backend, "default")
        self.assertIsInstance(result.id, str)
        self.assertLessEqual(len(result.id), 64)
        self.assertTrue(timezone.is_aware(result.enqueued_at))
        self.assertLess(abs(timezone.now() - result.enqueued_at), timedelta(seconds=30))

    def test_enqueue_task(self) -> None:
        # test_dummy_backend: test_enqueue_task; test_tasks: test_enqueue_task
        for task_ in (t.noop, t.anoop):
            with self.subTest(task_.name):
                result = task_.enqueue(1, two=3)
                self.assert_ready(result, task_, [1], {"two": 3})
                self.assertEqual(task_.get_result(result.id), result)

    async def test_aenqueue_task(self) -> None:
        # test_dummy_backend: test_enqueue_task_async; test_tasks: test_enqueue_task_async
        for task_ in (t.noop, t.anoop):
            with self.subTest(task_.name):
                result = await task_.aenqueue()
                self.assert_ready(result, task_, [], {})
                self.assertEqual(await task_.aget_result(result.id), result)

    def test_ids_are_unique(self) -> None:
        ids = {t.noop.enqueue().id for _ in range(5)}
        self.assertEqual(len(ids), 5)

    def test_arguments_are_normalised(self) -> None:
        # TaskResult normalises args and kwargs to JSON types (tuples become lists).
        result = t.noop.enqueue((1, 2), [3, (4,)], k=(5,), nested={"a": (6, {"b": (7,)})})
        expected_args = [[1, 2], [3, [4]]]
        expected_kwargs = {"k": [5], "nested": {"a": [6, {"b": [7]}]}}
        self.assertEqual(result.args, expected_args)
        self.assertEqual(result.kwargs, expected_kwargs)
        stored = t.noop.get_result(result.id)
        self.assertEqual((stored.args, stored.kwargs), (expected_args, expected_kwargs))

    def test_enqueue_with_invalid_argument(self) -> None:
        # test_tasks: test_enqueue_with_invalid_argument. taskward raises its NotSerializable,
        # a TypeError as Django's is, with its own message (the value is named).
        signals = Signals(self)
        with self.assertRaisesMessage(TypeError, "datetime"):
            t.noop.enqueue(datetime.now())
        with self.assertRaises(TypeError):
            t.noop.enqueue(value=object())
        self.assertEqual(signals.sent, [])  # nothing was enqueued

    async def test_aenqueue_with_invalid_argument(self) -> None:
        # test_tasks: test_aenqueue_with_invalid_argument
        with self.assertRaisesMessage(TypeError, "datetime"):
            await t.noop.aenqueue(datetime.now())

    def test_enqueue_validates_the_task(self) -> None:
        # test_*_backend: test_validate_on_enqueue (here the backend's QUEUES shrink after
        # the task was built, as override_settings(TASKS=...) does in Django's test).
        backend = task_backends["default"]
        task_ = t.noop.using(queue_name="emails")
        with mock.patch.object(backend, "queues", {"default"}):
            with self.assertRaisesMessage(InvalidTask, "Queue 'emails' is not valid for backend."):
                task_.enqueue()
            with self.assertRaisesMessage(InvalidTask, "Queue 'emails' is not valid for backend."):
                backend.enqueue(task_, [], {})

    async def test_aenqueue_validates_the_task(self) -> None:
        # test_*_backend: test_validate_on_aenqueue
        backend = task_backends["default"]
        task_ = t.noop.using(queue_name="emails")
        with (
            mock.patch.object(backend, "queues", {"default"}),
            self.assertRaisesMessage(InvalidTask, "Queue 'emails' is not valid for backend."),
        ):
            await task_.aenqueue()

    def test_get_result(self) -> None:
        # test_dummy_backend: test_get_result; test_tasks: test_get_result
        backend = task_backends["default"]
        result = backend.enqueue(t.noop, (), {})
        self.assertEqual(backend.get_result(result.id), result)
        self.assertEqual(t.noop.get_result(result.id), result)

    async def test_get_result_async(self) -> None:
        # test_dummy_backend: test_get_result_async; test_tasks: test_get_result_async
        backend = task_backends["default"]
        result = await backend.aenqueue(t.noop, (), {})
        self.assertEqual(await backend.aget_result(result.id), result)
        self.assertEqual(await t.noop.aget_result(result.id), result)

    def test_get_missing_result(self) -> None:
        # test_dummy_backend / test_tasks: test_get_missing_result; backport database
        # backend: test_invalid_uuid (an id that cannot be one). Django's test calls the
        # sync and the async API from one async test; here each from its own kind of code
        # (see test_sync_call_from_async_code_leaves_no_connection).
        for missing in MISSING_IDS:
            with self.subTest(missing):
                with self.assertRaises(TaskResultDoesNotExist):
                    task_backends["default"].get_result(missing)
                with self.assertRaises(TaskResultDoesNotExist):
                    t.noop.get_result(missing)

    async def test_get_missing_result_async(self) -> None:
        for missing in MISSING_IDS:
            with self.subTest(missing):
                with self.assertRaises(TaskResultDoesNotExist):
                    await task_backends["default"].aget_result(missing)
                with self.assertRaises(TaskResultDoesNotExist):
                    await t.noop.aget_result(missing)

    def test_sync_call_from_async_code_leaves_no_connection(self) -> None:
        # When the store is Django's database, get_result() is an ORM-like call: from async
        # code it raises SynchronousOnlyOperation as the ORM does (use aget_result), and
        # opens no connection of its own that would outlive Django's.
        if connection.vendor != "postgresql":
            self.skipTest("the store's connections are Django's database's on PostgreSQL only")
        result = t.noop.enqueue()

        async def sync_call_in_async_code() -> None:
            with self.assertRaises(SynchronousOnlyOperation):
                t.noop.get_result(result.id)
            self.assertEqual((await t.noop.aget_result(result.id)).status, READY)

        before = other_sessions()
        async_to_sync(sync_call_in_async_code)()
        deadline = time.monotonic() + 0.5  # a closed session takes a moment to go
        while other_sessions() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(other_sessions(), before)

    def test_get_incorrect_result(self) -> None:
        # test_tasks: test_get_incorrect_result
        result = task_backends["default"].enqueue(t.anoop, (), {})
        with self.assertRaisesMessage(TaskResultMismatch, "Task does not match"):
            t.noop.get_result(result.id)

    async def test_get_incorrect_result_async(self) -> None:
        # test_tasks: test_get_incorrect_result_async
        result = await task_backends["default"].aenqueue(t.anoop, (), {})
        with self.assertRaisesMessage(TaskResultMismatch, "Task does not match"):
            await t.noop.aget_result(result.id)

    async def test_refresh_result_unchanged(self) -> None:
        # test_tasks: test_refresh_result
        result = await t.noop.aenqueue()
        original = dataclasses.asdict(result)
        await sync_to_async(result.refresh)()
        self.assertEqual(dataclasses.asdict(result), original)
        await result.arefresh()
        self.assertEqual(dataclasses.asdict(result), original)

    def test_priority_is_kept(self) -> None:
        # taskward runs 10 priority bands, but the result reports the priority Django gave.
        result = t.noop.using(priority=37).enqueue()
        self.assertEqual(result.task.priority, 37)
        self.assertEqual(t.noop.get_result(result.id).task.priority, 37)
        self.assertEqual(t.noop.using(queue_name="emails").enqueue().task.queue_name, "emails")

    def test_result_of_a_task_this_process_did_not_import(self) -> None:
        # taskward never rebuilds a Task from a name read from the store: such a job has no
        # result here (Django's database backend imports the name instead).
        backend = task_backends["default"]
        other = TaskManager(backend.url)
        self.addCleanup(other.sync.shutdown)
        other.task(name="shop.gone.task")(gone)
        # Due in an hour: no worker of this run meets a job it has no task for.
        job = other.sync.enqueue_task("shop.gone.task", delay=3600)
        with self.assertRaisesMessage(TaskResultDoesNotExist, "not registered in this process"):
            backend.get_result(str(job.id))

    def test_async_calls_leave_no_connection(self) -> None:
        # With the store in Django's database, aenqueue/aget_result use Django's connection
        # as its async ORM does: a short-lived event loop (async_to_sync) leaves no session
        # of taskward's behind. (gc is off here so that it cannot hide a leak.)
        if connection.vendor != "postgresql":
            self.skipTest("the store's connections are Django's database's on PostgreSQL only")

        async def use_the_loop_manager() -> None:
            result = await t.noop.aenqueue()
            await t.noop.aget_result(result.id)

        gc.collect()
        gc.disable()
        try:
            before = other_sessions()
            async_to_sync(use_the_loop_manager)()
            deadline = time.monotonic() + 0.5  # a closed session takes a moment to go
            while other_sessions() > before and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(other_sessions(), before)
        finally:
            gc.enable()

    def test_doesnt_wait_until_transaction_commit(self) -> None:
        # test_dummy_backend / test_immediate_backend:
        # test_doesnt_wait_until_transaction_commit_by_default
        with transaction.atomic():
            result = t.noop.enqueue()
            self.assertIsNotNone(result.enqueued_at)
            self.assertEqual(result.status, READY)
        self.assertEqual(t.noop.get_result(result.id).status, READY)

    def test_enqueued_signal(self) -> None:
        # The Immediate backend sends task_enqueued from enqueue: so does this one.
        signals = Signals(self)
        result = t.noop.enqueue()
        self.assertEqual(signals.of(result.id), [("enqueued", TaskwardBackend, READY)])

    async def test_enqueued_signal_async(self) -> None:
        signals = Signals(self)
        result = await t.noop.aenqueue()
        self.assertEqual(signals.of(result.id), [("enqueued", TaskwardBackend, READY)])

    def test_enqueue_logs(self) -> None:
        # test_dummy_backend: test_enqueue_logs
        with self.assertLogs(LOGGER, level="DEBUG") as captured:
            result = t.noop.enqueue()
        self.assertEqual(len(captured.output), 1)
        self.assertIn("enqueued", captured.output[0])
        self.assertIn(result.id, captured.output[0])


# -- the worker runs them ----------------------------------------------------------------------
class WorkerTests(TransactionTestCase):
    def assert_finished(self, result: Any, status: Any) -> None:
        self.assertEqual(result.status, status)
        self.assertIs(result.is_finished, True)
        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.last_attempted_at)
        self.assertIsNotNone(result.finished_at)
        self.assertGreaterEqual(result.started_at, result.enqueued_at)
        self.assertGreaterEqual(result.finished_at, result.started_at)
        self.assertEqual(result.attempts, 1)
        self.assertEqual(len(result.worker_ids), 1)
        self.assertIsInstance(result.worker_ids[0], str)
        self.assertTrue(result.worker_ids[0])

    def test_enqueue_task(self) -> None:
        # test_immediate_backend: test_enqueue_task
        results = {task_: task_.enqueue(1, two=3) for task_ in (t.noop, t.anoop)}
        burst()
        for task_, result in results.items():
            with self.subTest(task_.name):
                self.assertEqual(result.status, READY)  # this object until refreshed
                result.refresh()
                self.assert_finished(result, SUCCESSFUL)
                self.assertIsNone(result.return_value)
                self.assertEqual(result.task, task_)
                self.assertEqual(result.args, [1])
                self.assertEqual(result.kwargs, {"two": 3})
                self.assertEqual(result.errors, [])

    async def test_enqueue_task_async(self) -> None:
        # test_immediate_backend: test_enqueue_task_async
        results = {task_: await task_.aenqueue() for task_ in (t.noop, t.anoop)}
        await aburst()
        for task_, result in results.items():
            with self.subTest(task_.name):
                await result.arefresh()
                self.assert_finished(result, SUCCESSFUL)
                self.assertIsNone(result.return_value)
                self.assertEqual(result.task, task_)
                self.assertEqual((result.args, result.kwargs), ([], {}))

    def test_result(self) -> None:
        # test_immediate_backend: test_result; test_dummy_backend: test_refresh_result
        result = task_backends["default"].enqueue(t.meaning_of_life, [], {})
        burst()
        self.assertEqual(result.status, READY)
        result.refresh()
        self.assertEqual(result.status, SUCCESSFUL)
        self.assertEqual(result.return_value, 42)
        self.assertEqual(t.meaning_of_life.get_result(result.id).return_value, 42)

    async def test_result_async(self) -> None:
        # test_immediate_backend: test_result_async; test_dummy_backend:
        # test_refresh_result_async
        backend = task_backends["default"]
        results = [
            await backend.aenqueue(f, [], {}) for f in (t.meaning_of_life, t.ameaning_of_life)
        ]
        await aburst()
        for result in results:
            await result.arefresh()
            self.assertEqual(result.status, SUCCESSFUL)
            self.assertEqual(result.return_value, 42)

    def test_catches_exception(self) -> None:
        # test_immediate_backend: test_catches_exception (ValueError; SystemExit below)
        result = t.raise_value_error.enqueue()
        burst()
        result.refresh()
        self.assert_finished(result, FAILED)
        with self.assertRaisesMessage(ValueError, "Task failed"):
            _ = result.return_value
        self.assertEqual(len(result.errors), 1)
        self.assertEqual(result.errors[0].exception_class_path, "builtins.ValueError")
        self.assertIs(result.errors[0].exception_class, ValueError)
        self.assertTrue(
            result.errors[0].traceback.endswith("ValueError: This task failed due to ValueError\n"),
            result.errors[0].traceback,
        )
        self.assertEqual(result.task, t.raise_value_error)
        self.assertEqual((result.args, result.kwargs), ([], {}))

    def test_custom_exception(self) -> None:
        # An exception class of the project's own, from a sync and an async task.
        results = [t.raise_custom.enqueue(), t.araise_custom.enqueue()]
        burst()
        for result in results:
            with self.subTest(result.task.name):
                result.refresh()
                self.assert_finished(result, FAILED)
                error = result.errors[0]
                self.assertEqual(error.exception_class_path, "shop.ported_tasks.PortedError")
                self.assertIs(error.exception_class, t.PortedError)
                self.assertIn("custom failure", error.traceback.splitlines()[-1])
                self.assertIn("Traceback (most recent call last)", error.traceback)

    def test_complex_exception(self) -> None:
        # test_immediate_backend: test_complex_exception
        result = t.raise_nested_value_error.enqueue()
        burst()
        result.refresh()
        self.assert_finished(result, FAILED)
        self.assertIsNone(result._return_value)
        self.assertIs(result.errors[0].exception_class, ValueError)
        self.assertIn('ValueError(ValueError("This task failed"))', result.errors[0].traceback)
        self.assertEqual(result.task, t.raise_nested_value_error)

    def test_complex_return_value(self) -> None:
        # test_immediate_backend: test_complex_return_value. taskward discards the job (Django
        # records the TypeError): the task did its work, so it is not run again for nothing.
        result = t.return_lambda.enqueue()
        burst()
        result.refresh()
        self.assert_finished(result, FAILED)
        self.assertIsNone(result._return_value)
        self.assertIs(result.errors[0].exception_class, Discard)
        self.assertEqual(len(result.errors), 1)

    def test_takes_context(self) -> None:
        # test_immediate_backend: test_takes_context, test_context
        own_id = t.own_result_id.enqueue()
        first = t.context_attempt_is.enqueue(1)
        wrong = t.context_attempt_is.enqueue(2)  # its assertion fails: the context is checked
        summary = t.acontext_summary.enqueue()
        burst()
        for result in (own_id, first, wrong, summary):
            result.refresh()
        self.assertEqual(own_id.return_value, own_id.id)
        self.assertEqual(first.status, SUCCESSFUL)
        self.assertEqual(wrong.status, FAILED)
        self.assertIs(wrong.errors[0].exception_class, AssertionError)
        self.assertEqual(
            summary.return_value, {"attempt": 1, "id": summary.id, "status": "RUNNING"}
        )

    def test_signals(self) -> None:
        # The Immediate backend's signal sequence: enqueued (READY), started (RUNNING),
        # finished (SUCCESSFUL or FAILED), each sent by the backend class.
        signals = Signals(self)
        ok = t.meaning_of_life.enqueue()
        bad = t.raise_value_error.enqueue()
        burst()
        B = TaskwardBackend
        self.assertEqual(
            signals.of(ok.id),
            [("enqueued", B, READY), ("started", B, RUNNING), ("finished", B, SUCCESSFUL)],
        )
        self.assertEqual(
            signals.of(bad.id),
            [("enqueued", B, READY), ("started", B, RUNNING), ("finished", B, FAILED)],
        )
        (started,) = signals.fields(ok.id, "started")
        self.assertEqual(len(started["worker_ids"]), 1)
        self.assertIsNotNone(started["started_at"])
        self.assertIsNone(started["finished_at"])
        (finished,) = signals.fields(ok.id, "finished")
        self.assertEqual(finished["return_value"], 42)
        self.assertIsNotNone(finished["finished_at"])
        (failed,) = signals.fields(bad.id, "finished")
        self.assertEqual(failed["errors"], ["builtins.ValueError"])
        self.assertIsNotNone(failed["finished_at"])

    def test_logs(self) -> None:
        # test_immediate_backend: test_enqueue_logs, test_failed_logs
        with self.assertLogs(LOGGER, level="DEBUG") as captured:
            ok = t.noop.enqueue()
            bad = t.raise_value_error.enqueue()
            burst()

        def lines(result_id: str) -> list[str]:
            return [line for line in captured.output if f"id={result_id} " in line]

        self.assertEqual(len(lines(ok.id)), 3, captured.output)
        self.assertIn("enqueued", lines(ok.id)[0])
        self.assertIn("state=RUNNING", lines(ok.id)[1])
        self.assertIn("state=SUCCESSFUL", lines(ok.id)[2])
        self.assertEqual(len(lines(bad.id)), 3, captured.output)
        self.assertIn("state=RUNNING", lines(bad.id)[1])
        self.assertIn("state=FAILED", lines(bad.id)[2])
        self.assertTrue(lines(bad.id)[2].startswith("ERROR:"), lines(bad.id)[2])
        self.assertNotIn(
            "NoneType", "\n".join(lines(ok.id))
        )  # test_successful_task_no_none_type_in_logs

    def test_priority_order(self) -> None:
        # backport database backend: the worker takes higher priorities first. One job at a
        # time (-q default=1), so the order they ran in is the order they were claimed.
        token = uuid.uuid4().hex
        for label, priority in (
            ("low", -100),
            ("lower", -50),
            ("zero", 0),
            ("high", 100),
            ("higher", 50),
        ):
            t.record.using(priority=priority).enqueue(token, label)
        burst("-q", "default=1")
        ran = [label for tok, label in t.RUN_ORDER if tok == token]
        self.assertEqual(ran, ["high", "higher", "zero", "lower", "low"])

    def test_priorities_within_one_band(self) -> None:
        # taskward has 10 priority bands of 20 Django priorities: 1 and 19 share one, so
        # those jobs run in the order they were enqueued, not by priority.
        token = uuid.uuid4().hex
        t.record.using(priority=1).enqueue(token, "first")
        t.record.using(priority=19).enqueue(token, "second")
        burst("-q", "default=1")
        self.assertEqual([label for tok, label in t.RUN_ORDER if tok == token], ["first", "second"])

    def test_run_after(self) -> None:
        # test_tasks: test_using_run_after; backport database backend: a job whose run_after
        # is in the future is not run by a worker, one in the past is.
        later = t.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
        delayed = t.noop.using(run_after=timedelta(hours=1)).enqueue()  # taskward: a delay
        past = t.noop.using(run_after=timezone.now() - timedelta(minutes=1)).enqueue()
        burst()
        for result in (later, delayed):
            result.refresh()
            self.assertEqual(result.status, READY)
            self.assertIsNone(result.started_at)
            self.assertEqual(result.attempts, 0)
        past.refresh()
        self.assertEqual(past.status, SUCCESSFUL)

    def test_get_result_keeps_run_after(self) -> None:
        # test_dummy_backend: test_get_result, with run_after set: the result read back is the
        # enqueued one, task options included.
        run_after = timezone.now() + timedelta(hours=1)
        result = t.noop.using(run_after=run_after).enqueue()
        self.assertEqual(t.noop.get_result(result.id).task.run_after, run_after)
        self.assertEqual(t.noop.get_result(result.id), result)

    def test_retries(self) -> None:
        # TaskContext.attempt, attempts and worker_ids over two attempts (the "retrying"
        # alias allows 3); task_finished reports READY for an attempt that will be retried.
        signals = Signals(self)
        result = t.fail_first_attempt.enqueue()
        burst("--backend", "retrying")
        result.refresh()
        self.assertEqual(result.status, READY)
        self.assertIs(result.is_finished, False)
        self.assertEqual(result.attempts, 1)
        self.assertIsNone(result.finished_at)
        self.assertEqual(
            [e.exception_class_path for e in result.errors], ["shop.ported_tasks.PortedError"]
        )
        with self.assertRaisesMessage(ValueError, "Task has not finished yet"):
            _ = result.return_value
        (first_worker,) = result.worker_ids
        run_until_finished(result, "--backend", "retrying", within=10.0, pause=0.1)
        self.assertEqual(result.status, SUCCESSFUL)
        self.assertEqual(
            result.return_value,
            {"attempt": 2, "worker_ids": 2, "errors": ["shop.ported_tasks.PortedError"]},
        )
        self.assertEqual(result.attempts, 2)
        # taskward keeps only the latest attempt's worker: it stands for each attempt (Django
        # would list the first burst's worker, then the second's).
        last_worker = result.worker_ids[-1]
        self.assertNotEqual(last_worker, first_worker)  # each burst is a worker of its own
        self.assertEqual(result.worker_ids, [last_worker, last_worker])
        self.assertGreaterEqual(result.last_attempted_at, result.started_at)
        self.assertGreaterEqual(result.finished_at, result.last_attempted_at)
        B = TaskwardBackend
        self.assertEqual(
            signals.of(result.id),
            [
                ("enqueued", B, READY),
                ("started", B, RUNNING),
                ("finished", B, READY),
                ("started", B, RUNNING),
                ("finished", B, SUCCESSFUL),
            ],
        )

    def test_get_result_in_another_thread(self) -> None:
        # Django's task_backends holds one backend per thread: each knows the tasks of its
        # alias, whichever thread imported them (a request thread of a threaded server).
        # (backport test_*_backend: test_get_result_from_different_request)
        result = t.meaning_of_life.enqueue()
        main = task_backends["default"]
        seen: dict[str, Any] = {}

        def read() -> None:
            try:
                seen["status"] = t.meaning_of_life.get_result(result.id).status
            except Exception as exc:
                seen["error"] = exc
            finally:
                backend = task_backends["default"]
                if backend is not main and getattr(backend, "_manager", None) is not None:
                    backend.manager.sync.shutdown()
                connections.close_all()

        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        self.assertEqual(seen, {"status": READY})

    def test_worker_in_another_thread(self) -> None:
        # A worker started in another thread runs the tasks imported in the main one.
        result = t.meaning_of_life.enqueue()

        def work() -> None:
            try:
                burst()
            finally:
                connections.close_all()

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        result.refresh()
        self.assertEqual(result.status, SUCCESSFUL)

    def test_worker_through_thread_sensitive_sync_to_async(self) -> None:
        # A worker run from async code, await sync_to_async(call_command)(...), runs its loop
        # in asgiref's thread for sync calls: async tasks that do not touch the ORM still run.
        async def enqueue_then_work() -> Any:
            result = await t.anoop.aenqueue()
            await sync_to_async(burst)()
            await result.arefresh()
            return result

        result = async_to_sync(enqueue_then_work)()
        self.assertEqual(result.status, SUCCESSFUL)

    def test_system_exit_fails_the_task(self) -> None:
        # Django's ImmediateBackend records a task's SystemExit as a FAILED result
        # (test_immediate_backend: test_catches_exception); the worker runs on. A store of
        # its own, so that a regression (a job left RUNNING) cannot reach other tests.
        alias = "ported_isolated"
        directory = tempfile.mkdtemp(prefix="twdj-ported-")
        backend = TaskwardBackend(
            alias,
            {
                "QUEUES": ["default"],
                "OPTIONS": {"url": f"sqlite:///{directory}/isolated.db", "default_max_attempts": 1},
            },
        )
        task_backends[alias] = backend
        previous = os.environ.get(BACKEND_ENV)

        def clean_up() -> None:
            del task_backends[alias]
            if previous is None:
                os.environ.pop(BACKEND_ENV, None)
            else:
                os.environ[BACKEND_ENV] = previous
            backend.manager.sync.shutdown()
            shutil.rmtree(directory, ignore_errors=True)

        self.addCleanup(clean_up)
        result = t.raise_system_exit.using(backend=alias).enqueue()
        burst("--backend", alias)
        result.refresh()
        self.assertEqual(result.status, FAILED)
        self.assertIs(result.errors[0].exception_class, SystemExit)
        self.assertIn("SystemExit: This task failed due to SystemExit", result.errors[0].traceback)
