"""``TaskwardBackend``: Django's tasks framework (``django.tasks``) with taskward as its store.

One class serves Django ≥ 6 and the ``django-tasks`` backport (see ``compat``). Each Django
``Task`` is registered with taskward under its module path when Django validates it (at
decoration), so a worker runs only functions its own process imported: a name read from the
store never chooses what is imported. The store is opened lazily, on the first enqueue, result
or worker, so a backend built at import time (``@task`` builds it) touches no database.

Sync callers (``enqueue``, ``get_result``) use one manager per process, whose inserts run in
the calling thread; on PostgreSQL, inside ``transaction.atomic()`` of the configured Django
database, the job is written through Django's own connection, in its transaction. Async
callers (``aenqueue``, ``aget_result``) use a manager of their own event loop, closed when
that loop shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import sync_to_async

from taskward.contrib.django.compat import (
    AnyTask,
    BaseTaskBackend,
    InvalidTask,
    TaskResultDoesNotExist,
    task_enqueued,
)
from taskward.contrib.django.options import BackendOptions, postgres_url
from taskward.contrib.django.results import (
    PRIORITY_META_KEY,
    RUN_AFTER_META_KEY,
    job_priority,
    replace_unchecked,
    task_as_enqueued,
    task_result,
)
from taskward.contrib.django.runner import make_runner
from taskward.contrib.django.state import forget_loop, lock, register_task, shared_state, tasks
from taskward.contrib.django.transactions import (
    database_errors,
    django_connection,
    shares_database,
)
from taskward.errors import JobNotFound, TaskwardError
from taskward.jobs import Job
from taskward.manager import TaskManager

__all__ = ["TaskwardBackend"]

if TYPE_CHECKING:
    from taskward.backends.postgres import PostgresBackend


class TaskwardBackend(BaseTaskBackend):
    """A ``TASKS`` backend that stores tasks durably in taskward and runs them in its workers.

    ``OPTIONS``: ``url`` (the store; default: the ``database`` when it is PostgreSQL, else
    ``TASKWARD_URL`` or ``sqlite:///./taskward.db``), ``database`` (the Django alias whose
    transactions an enqueue joins, default ``"default"``), ``schema`` (PostgreSQL schema of
    taskward's tables in that database) and any ``TaskManager`` setting by name
    (``default_max_attempts``, ``default_timeout``, ``lease_seconds``…).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        try:
            self.config = BackendOptions.parse(self.options)
        except TaskwardError as exc:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"TASKS[{alias!r}]['OPTIONS']: {exc}") from exc
        self._shared = shared_state(alias, params)

    # -- tasks ---------------------------------------------------------------------------
    def validate_task(self, task: AnyTask) -> None:
        """Django's checks (a ``timedelta`` ``run_after`` is accepted too), then register it."""
        run_after: Any = task.run_after  # Django types it datetime; a timedelta is accepted
        if isinstance(run_after, timedelta):
            if run_after < timedelta(0):
                raise InvalidTask("run_after must not be a negative timedelta.")
            super().validate_task(replace_unchecked(task, run_after=None))
        else:
            super().validate_task(task)
        register_task(task_name(task), task, _register)

    @property
    def tasks(self) -> dict[str, AnyTask]:
        """The Django tasks registered in this process, by taskward name (every alias)."""
        return tasks()

    # -- managers ------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        """The store's URL (None: taskward's default, ``TASKWARD_URL`` or ./taskward.db)."""
        explicit = self.config.settings.get("url")
        if explicit:
            return str(explicit)
        from django.db import connections

        # Read when the first manager is built, not at import: Django's test runner renames
        # the database (test_…) after the task modules were imported.
        return postgres_url(connections[self.config.database], self.config.schema)

    @property
    def explicit_url(self) -> bool:
        """True when ``OPTIONS`` names the store: it is then never the Django database."""
        return bool(self.config.settings.get("url"))

    def shares_database(self) -> bool:
        """True when the store is the Django database (see ``transactions``)."""
        return shares_database(self.config.database, self.explicit_url, self.manager)

    @property
    def manager(self) -> TaskManager:
        """The process's manager for sync calls (``enqueue``, ``get_result``)."""
        with lock():
            if self._shared.manager is None:
                self._shared.manager = self._new_manager()
            return self._shared.manager

    def new_manager(self) -> TaskManager:
        """A new manager for one command (``taskward_worker``, ``taskward …``), closed after it.

        Not :attr:`manager`: that one's connections serve this process's sync calls, and a
        worker opens its own on its own event loop.
        """
        return self._new_manager()

    def _new_manager(self) -> TaskManager:
        settings = {k: v for k, v in self.config.settings.items() if k != "url"}
        try:
            manager = TaskManager(self.url, **settings)
        except TaskwardError as exc:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(f"TASKS[{self.alias!r}]: {exc}") from exc
        for task in tasks().values():
            _register(manager, task, self.alias)
        return manager

    async def loop_manager(self) -> TaskManager:
        """The manager of the running event loop (opened here; closed when the loop ends).

        A manager's connections belong to the loop that opened them, and an ASGI server, a
        test's ``async_to_sync`` and a worker each run their own loop.
        """
        loop = asyncio.get_running_loop()
        with lock():
            entry = self._shared.loop_managers.get(loop)
            if entry is None:
                manager = self._new_manager()
                closer = _close_with_loop(manager, lambda: forget_loop(self._shared, loop))
                self._shared.loop_managers[loop] = (manager, closer)
            else:
                manager, closer = entry
        if entry is None:
            await closer.__anext__()  # started, so the loop finalizes it at shutdown
        return manager

    # -- enqueue -------------------------------------------------------------------------
    def enqueue(self, task: AnyTask, args: Any, kwargs: Any) -> Any:
        """Store a job for ``task`` and return its ``TaskResult`` (status READY).

        Inside ``transaction.atomic()`` on the configured PostgreSQL database (the store),
        the job is written in that transaction: it exists if, and only if, it commits.
        """
        self.validate_task(task)
        options = self._job_options(task)
        manager = self.manager
        connection = django_connection(self.config.database, self.explicit_url, manager)
        if connection is None:
            job = manager.enqueue_task_blocking(
                task_name(task), args=list(args), kwargs=dict(kwargs), **options
            )
        else:
            with database_errors(self.config.database):
                job = manager.enqueue_task_blocking(
                    task_name(task),
                    args=list(args),
                    kwargs=dict(kwargs),
                    connection=connection,
                    **options,
                )
            _leave_no_session(manager)
        return self._enqueued(task, job)

    async def aenqueue(self, task: AnyTask, args: Any, kwargs: Any) -> Any:
        """Async :meth:`enqueue`: natively async, on the running loop's own connections.

        When the store is the Django database, through Django's connection instead, as
        Django's async ORM reaches it (in its thread-sensitive thread): the job then shares
        the connection, and the transaction, of the ORM calls around it.
        """
        self.validate_task(task)
        if self.shares_database():
            return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)
        options = self._job_options(task)
        manager = await self.loop_manager()
        job = await manager.enqueue_task(
            task_name(task), args=list(args), kwargs=dict(kwargs), **options
        )
        return self._enqueued(task, job)

    def _job_options(self, task: AnyTask) -> dict[str, Any]:
        options: dict[str, Any] = {
            "queue": task.queue_name,
            "priority": job_priority(int(task.priority)),
            "meta": {PRIORITY_META_KEY: task.priority},
        }
        run_after: Any = task.run_after
        if isinstance(run_after, timedelta):
            options["delay"] = run_after.total_seconds()
            options["meta"][RUN_AFTER_META_KEY] = run_after.total_seconds()
        elif isinstance(run_after, datetime):
            from django.utils import timezone

            # Django allows a naive time only with USE_TZ = False: it is then local time.
            options["at"] = (
                run_after if timezone.is_aware(run_after) else (timezone.make_aware(run_after))
            )
            options["meta"][RUN_AFTER_META_KEY] = run_after.isoformat()
        return options

    def _enqueued(self, task: AnyTask, job: Job) -> Any:
        result = task_result(task, job, backend=self.alias)
        task_enqueued.send(type(self), task_result=result)
        return result

    # -- results -------------------------------------------------------------------------
    def get_result(self, result_id: str) -> Any:
        """The ``TaskResult`` of job ``result_id``; ``TaskResultDoesNotExist`` if none."""
        job_id = _job_id(result_id)
        manager = self.manager
        connection = django_connection(self.config.database, self.explicit_url, manager)
        try:
            if connection is not None:
                if not manager.opened:
                    manager.open_blocking()  # migrates a new store
                    _leave_no_session(manager)
                with database_errors(self.config.database):
                    stored = cast("PostgresBackend", manager.backend).get_blocking(
                        job_id, connection=connection
                    )
                job = manager.unsealed(stored)
            else:
                job = manager.sync.get_task_status(job_id)
        except JobNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        return self._result(result_id, job)

    async def aget_result(self, result_id: str) -> Any:
        """Async :meth:`get_result`, on the running loop's own connections (or Django's)."""
        if self.shares_database():
            return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)
        job_id = _job_id(result_id)
        manager = await self.loop_manager()
        try:
            job = await manager.get_task_status(job_id)
        except JobNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        return self._result(result_id, job)

    def _result(self, result_id: str, job: Job) -> Any:
        task = tasks().get(job.task)
        if task is None:
            # The job is not a run of a Django task this process imported: Task objects are
            # never rebuilt from a name read from the store.
            raise TaskResultDoesNotExist(
                f"{result_id}: task {job.task!r} is not registered in this process (import "
                "its module, e.g. from an app's tasks.py, which taskward.contrib.django "
                "imports at start-up)"
            )
        return task_result(task_as_enqueued(task, job, self.alias), job, backend=self.alias)

    # -- checks --------------------------------------------------------------------------
    def check(self, **kwargs: Any) -> Iterable[Any]:
        """Django system checks: the app is installed, and what an enqueue in atomic() does."""
        from taskward.contrib.django.checks import backend_checks

        yield from super().check(**kwargs)
        yield from backend_checks(self)


def _leave_no_session(manager: TaskManager) -> None:
    """Close what the store's migration opened: Django's connection does the sync work now.

    Idle sessions of ours would outlive Django's own, which Django closes after each request
    and before its test runner drops the test database (which fails while any is open).
    """
    cast("PostgresBackend", manager.backend).close_blocking()


def task_name(task: AnyTask) -> str:
    """The name a Django task has in taskward: its module path (``myapp.tasks.send_mail``)."""
    return str(task.module_path)


def _register(manager: TaskManager, task: AnyTask, alias: str) -> None:
    """Register ``task`` with ``manager`` (of ``alias``), wrapped by its runner."""
    name = task_name(task)
    if name not in manager.registry:
        runner = make_runner(task, backend=alias, sender=TaskwardBackend)
        manager.task(name=name)(runner)


_MAX_ID = 2**63 - 1  # the stores' job ids are 64-bit


def _job_id(result_id: Any) -> int:
    """The job id a result id names; ``TaskResultDoesNotExist`` for anything else."""
    text = str(result_id)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 0 < int(text) <= _MAX_ID:
        raise TaskResultDoesNotExist(result_id)
    return int(text)


async def _close_with_loop(manager: TaskManager, forget: Callable[[], None]) -> AsyncIterator[None]:
    """Suspend until the event loop shuts its async generators down, then close ``manager``.

    asyncio has no "loop closing" callback, but ``asyncio.run`` (and asgiref's
    ``async_to_sync``, and uvicorn) finalize every async generator the loop started: this one
    then closes the manager on its own loop, while its connections can still be closed.
    """
    try:
        yield  # suspended here until the loop finalizes the generator (never resumed)
    finally:
        forget()
        # The loop is going away: nothing is left to report a failed close to.
        with contextlib.suppress(Exception):
            await manager.close()
