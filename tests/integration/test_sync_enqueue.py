"""Sync producers: ``Task.enqueue_sync`` and ``manager.sync.enqueue_task`` on each backend.

SQLite and PostgreSQL insert from the calling thread (no portal loop); other backends go
through the portal. Either way: the same validation, the same stored job, the same events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from taskward import (
    BackendUnavailable,
    JobState,
    NotSerializable,
    PortalClosed,
    TaskManager,
    UnknownTask,
)


async def test_sync_enqueue_inserts_from_the_callers_thread(store_url: str) -> None:
    async with TaskManager(store_url, poll_interval=0.05) as tw:

        @tw.task(name="double")
        def double(x: int) -> int:
            return 2 * x

        def produce() -> list[int]:
            ids = [double.enqueue_sync(n).id for n in range(3)]
            ids.append(tw.sync.enqueue_task(double, args=[10]).id)
            ids.append(double.enqueue_with_sync(args=[20], priority=3).id)
            ids.append(tw.sync.enqueue_task("double", args=[30]).id)
            return ids

        ids = await asyncio.to_thread(produce)
        # The portal's loop never started: every insert ran on the producer's thread.
        assert tw.sync.portal._loop is None
        assert (await tw.get_task_status(ids[4])).priority == 3
        result = await tw.drain()
        assert result.counts == {"completed": 6}
        results = [(await tw.get_task_status(job_id)).result for job_id in ids]
        assert results == [0, 2, 4, 20, 40, 60]


async def test_sync_enqueue_announces_on_the_portal_loop(store_url: str) -> None:
    """Hooks of job.enqueued run on the portal loop, as they did through the async twin."""
    async with TaskManager(store_url) as tw:
        announced: list[tuple[int, str]] = []
        tw.on(
            "job.enqueued", lambda e: announced.append((e.job_id, threading.current_thread().name))
        )
        finished = threading.Event()

        async def slow_hook(event: object) -> None:
            await asyncio.sleep(0.01)
            finished.set()

        tw.on("job.enqueued", slow_hook)

        @tw.task(name="noop")
        def noop() -> None: ...

        ids = await asyncio.to_thread(lambda: [noop.enqueue_sync().id for _ in range(3)])
        for _ in range(500):  # the hooks run soon after, on the portal's loop
            if len(announced) == 3 and finished.is_set():
                break
            await asyncio.sleep(0.01)
        assert [job_id for job_id, _ in announced] == ids
        assert {name for _, name in announced} == {"taskward-portal"}
        assert finished.is_set()
    tw.sync.shutdown()


async def test_sync_schedule_and_bad_input_on_the_direct_path(store_url: str) -> None:
    async with TaskManager(store_url) as tw:

        @tw.task(name="later")
        def later(x: object) -> None: ...

        def produce() -> list[str]:
            errors = []
            job = tw.sync.schedule_task(later, at=3600, args=[1])
            assert job.state is JobState.SCHEDULED
            for bad in (
                lambda: later.enqueue_sync(datetime.now()),
                lambda: tw.sync.enqueue_task("no_such_task"),
            ):
                try:
                    bad()
                except (NotSerializable, UnknownTask) as exc:
                    errors.append(type(exc).__name__)
            return errors

        assert await asyncio.to_thread(produce) == ["NotSerializable", "UnknownTask"]
        stats = await tw.get_statistics()
        assert sum(sum(by_state.values()) for by_state in stats["queues"].values()) == 1


def test_sync_enqueue_on_a_backend_without_it_goes_through_the_portal() -> None:
    tw = TaskManager("memory://")

    @tw.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    try:
        job = double.enqueue_sync(21)
        assert tw.sync.portal._loop is not None
        assert tw.sync.drain().counts == {"completed": 1}
        assert tw.sync.get_task_status(job.id).result == 42
    finally:
        tw.sync.shutdown()


def test_sync_enqueue_opens_a_manager_nobody_opened(store_url: str) -> None:
    """A sync producer migrates from its own thread: no portal loop, no async pool."""
    tw = TaskManager(store_url)

    @tw.task(name="double")
    def double(x: int) -> int:
        return 2 * x

    try:
        job = double.enqueue_sync(4)
        assert tw.sync.portal._loop is None
        if hasattr(tw.backend, "_pool"):
            assert tw.backend._pool is None  # PostgreSQL's async pool never opened
        assert double.enqueue_sync(5).id > job.id
        assert tw.sync.drain().counts == {"completed": 2}  # the async side opens on use
        assert tw.sync.get_task_status(job.id).result == 8
    finally:
        tw.sync.shutdown()


def test_bad_input_on_an_unopened_manager_opens_nothing(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    tw = TaskManager(f"sqlite:///{db}")

    @tw.task(name="later")
    def later(x: object) -> None: ...

    try:
        with pytest.raises(NotSerializable):
            later.enqueue_sync(object())
        assert not db.exists()
        assert tw.sync.portal._loop is None
    finally:
        tw.sync.shutdown()


def _fork(child: Callable[[], int]) -> int:
    """Start ``child`` in a forked process (its return value is the exit code); return its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = child()
        finally:
            os._exit(code)
    return pid


def _exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _forked(child: Callable[[], int]) -> int:
    """Run ``child`` in a forked process; return its exit code."""
    return _exit_code(_fork(child))


def test_a_forked_child_of_an_open_sqlite_manager_is_refused(tmp_path: Path) -> None:
    """SQLite's locks do not survive a fork: the child must open its own manager."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    tw = TaskManager(url)

    @tw.task(name="noop")
    def noop(n: int) -> None: ...

    try:
        parent_job = noop.enqueue_sync(1)

        def child() -> int:
            try:
                noop.enqueue_sync(2)
            except BackendUnavailable as exc:
                return 7 if "forked" in str(exc) else 8
            return 9

        assert _forked(child) == 7
        # The parent carries on with its own connections, and only its job is stored.
        assert noop.enqueue_sync(3).id > parent_job.id
        page = tw.sync.list_tasks()
        assert sorted(job.args[0] for job in page.items) == [1, 3]
    finally:
        tw.sync.shutdown()

    # A manager made (or reopened) in the child after a fork works there.
    def fresh_child() -> int:
        other = TaskManager(url)
        try:
            other.task(name="noop")(lambda n: None).enqueue_sync(4)
        finally:
            other.sync.shutdown()
        return 0

    assert _forked(fresh_child) == 0


def test_a_forked_child_gets_its_own_postgres_connections(pg_url: str) -> None:
    """Parent and child enqueue at once after a fork: every id names that process's job."""
    tw = TaskManager(pg_url)

    @tw.task(name="tagged")
    def tagged(who: str, n: int) -> None: ...

    try:
        tagged.enqueue_sync("warm-up", 0)  # the parent's sync pool is open at the fork

        def enqueue_and_check(who: str) -> bool:
            ids = {tagged.enqueue_sync(who, n).id: n for n in range(100)}
            return all(
                tw.sync.get_task_status(job_id).args == [who, n] for job_id, n in ids.items()
            )

        def child() -> int:
            other = TaskManager(pg_url)  # reads back through a manager of its own
            try:
                ids = {tagged.enqueue_sync("child", n).id: n for n in range(100)}
                ok = all(
                    other.sync.get_task_status(job_id).args == ["child", n]
                    for job_id, n in ids.items()
                )
            finally:
                other.sync.shutdown()
            return 0 if ok else 3

        pid = _fork(child)
        parent_ok = enqueue_and_check("parent")
        assert _exit_code(pid) == 0
        assert parent_ok
        assert tw.sync.list_tasks(per_page=1000).total_entries == 201
    finally:
        tw.sync.shutdown()


def test_a_forked_child_is_refused_rather_than_left_waiting(tmp_path: Path) -> None:
    """The portal's thread and the SQLite thread do not survive a fork: clear errors, no hang."""
    tw = TaskManager(f"sqlite:///{tmp_path}/jobs.db")

    @tw.task(name="noop")
    def noop() -> None: ...

    try:
        noop.enqueue_sync()
        assert tw.sync.get_task_status(1).id == 1  # the portal runs, the backend is open

        def child() -> int:
            signal.alarm(20)  # a hang would be killed by SIGALRM: never exit code 0
            try:
                tw.sync.get_task_status(1)
            except PortalClosed as exc:
                if "forked" not in str(exc):
                    return 3
            else:
                return 4

            async def direct() -> None:
                await tw.backend.get(1)

            try:
                asyncio.run(direct())
            except BackendUnavailable as exc:
                if "forked" not in str(exc):
                    return 5
            else:
                return 6
            asyncio.run(tw.backend.close())  # closes nothing of the parent's
            return 0

        assert _forked(child) == 0
        # The parent's portal, database thread and wake-up socket are intact.
        assert noop.enqueue_sync().id == 2
        assert tw.sync.get_task_status(2).state is JobState.PENDING
    finally:
        tw.sync.shutdown()


def test_shutdown_closes_what_a_sync_producer_opened(store_url: str) -> None:
    """No portal loop ever ran, yet shutdown() closes the pooled connections."""
    tw = TaskManager(store_url)

    @tw.task(name="noop")
    def noop() -> None: ...

    first = noop.enqueue_sync()
    noop.enqueue_sync()
    assert tw.sync.portal._loop is None
    backend: Any = tw.backend
    assert (
        backend._sync_pool is not None if hasattr(backend, "_sync_pool") else backend._idle_stores
    )
    tw.sync.shutdown()
    if hasattr(backend, "_sync_pool"):
        assert backend._sync_pool is None
    else:
        assert backend._idle_stores == []
    # The jobs are stored: a new manager reads them back.
    other = TaskManager(store_url)
    try:
        assert other.sync.get_task_status(first.id).state is JobState.PENDING
    finally:
        other.sync.shutdown()
