"""Unit tests of taskward.aio on a real event loop; synchronised with events, not sleeps."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
import warnings
import weakref
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from taskward import aio
from taskward.aio import (
    TaskSupervisor,
    cancel_background_tasks,
    drain_background_tasks,
    fire_and_forget,
    get_default_supervisor,
    get_task_failure_counts,
    get_total_failures,
    reset_task_failure_counts,
    safe_create_task,
    safe_gather,
    schedule_with_delay,
)
from taskward.observe.metrics import register_background_failures


@pytest.fixture(autouse=True)
async def _isolated() -> AsyncIterator[None]:
    reset_task_failure_counts()
    yield
    # Tasks a test left behind belong to this test's loop: stop them before it closes.
    await cancel_background_tasks()
    reset_task_failure_counts()


class Boom(Exception):
    pass


async def succeed(value: int) -> int:
    return value


async def explode(message: str = "boom") -> int:
    raise Boom(message)


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "taskward.aio" and r.levelno == logging.ERROR]


# --- safe_create_task --------------------------------------------------------------------------


async def test_success_returns_result_and_counts_nothing() -> None:
    task = safe_create_task(succeed(7), name="ok")

    assert await task == 7
    assert get_task_failure_counts() == {}
    assert get_total_failures() == 0


async def test_failure_is_logged_with_traceback_and_extras(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="taskward.aio")

    result = await safe_create_task(explode("kaput"), name="emails.send")

    assert result is None
    [record] = error_records(caplog)
    assert record.task_name == "emails.send"  # type: ignore[attr-defined]
    assert record.error_type == "Boom"  # type: ignore[attr-defined]
    assert record.total_failures == 1  # type: ignore[attr-defined]
    assert record.task_failures == 1  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert record.exc_info[0] is Boom
    assert "kaput" in record.getMessage()
    assert "Traceback" in caplog.text
    assert "in explode" in caplog.text


async def test_on_error_receives_the_exception() -> None:
    seen: list[Exception] = []

    await safe_create_task(explode("x"), on_error=seen.append)

    assert len(seen) == 1
    assert isinstance(seen[0], Boom)
    assert str(seen[0]) == "x"


async def test_on_error_that_raises_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="taskward.aio")

    def broken_handler(exc: Exception) -> None:
        raise RuntimeError("handler broke")

    result = await safe_create_task(explode(), name="t", on_error=broken_handler)

    assert result is None
    messages = [r.getMessage() for r in error_records(caplog)]
    assert any("on_error callback" in m for m in messages)
    assert "handler broke" in caplog.text
    assert get_task_failure_counts() == {"t": 1}  # the handler's failure is not a task failure


async def test_async_on_error_is_awaited() -> None:
    handled = asyncio.Event()
    seen: list[Exception] = []

    async def handler(exc: Exception) -> None:
        await asyncio.sleep(0)  # a real suspension: proves the callback is awaited
        seen.append(exc)
        handled.set()

    await safe_create_task(explode(), on_error=handler)

    assert handled.is_set()
    assert isinstance(seen[0], Boom)


async def test_async_on_error_that_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="taskward.aio")

    async def handler(exc: Exception) -> None:
        raise RuntimeError("async handler broke")

    assert await safe_create_task(explode(), on_error=handler) is None
    assert "async handler broke" in caplog.text


async def test_repeated_failures_are_counted_per_name() -> None:
    for _ in range(3):
        await safe_create_task(explode(), name="a")
    await safe_create_task(explode(), name="b")

    assert get_task_failure_counts() == {"a": 3, "b": 1}
    assert get_total_failures() == 4


async def test_default_name_is_the_coroutine_qualname(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="taskward.aio")

    task = safe_create_task(explode())
    await task

    assert task.get_name() == "explode"
    assert get_task_failure_counts() == {"explode": 1}
    assert error_records(caplog)[0].task_name == "explode"  # type: ignore[attr-defined]


async def test_task_name_is_the_given_name() -> None:
    task = safe_create_task(succeed(1), name="reports.build")
    assert task.get_name() == "reports.build"
    await task


async def test_counts_are_a_copy() -> None:
    await safe_create_task(explode(), name="a")
    counts = get_task_failure_counts()
    counts["a"] = 100
    assert get_task_failure_counts() == {"a": 1}


async def test_reset_clears_counters() -> None:
    await safe_create_task(explode(), name="a")
    reset_task_failure_counts()
    assert get_task_failure_counts() == {}
    assert get_total_failures() == 0


async def test_non_coroutine_is_rejected() -> None:
    with pytest.raises(TypeError, match="coroutine"):
        safe_create_task(succeed)  # type: ignore[arg-type]


def test_without_running_loop_raises_and_closes_the_coroutine() -> None:
    coro = succeed(1)
    with pytest.raises(RuntimeError, match="no running loop"):
        safe_create_task(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


# --- cancellation and garbage collection -------------------------------------------------------


async def test_cancellation_propagates_and_is_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="taskward.aio")
    started = asyncio.Event()
    errors: list[Exception] = []

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = safe_create_task(wait_forever(), on_error=errors.append)
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert get_total_failures() == 0
    assert errors == []
    assert error_records(caplog) == []


async def test_cancel_before_first_step_closes_the_coroutine() -> None:
    coro = succeed(1)
    task = safe_create_task(coro)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_running_task_survives_garbage_collection() -> None:
    # The task waits on a future that only the task itself references, so without the
    # supervisor's strong reference the pair is unreachable and gc.collect() destroys it.
    # (Waiting on a test-held Event would keep the task reachable and prove nothing.)
    waiting: list[weakref.ref[asyncio.Future[None]]] = []
    suspended = asyncio.Event()
    finished = asyncio.Event()

    async def job() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting.append(weakref.ref(future))
        suspended.set()
        await future
        finished.set()

    task_ref = weakref.ref(safe_create_task(job(), name="orphan"))
    await suspended.wait()
    gc.collect()

    assert task_ref() is not None
    future = waiting[0]()
    assert future is not None
    future.set_result(None)
    await asyncio.wait_for(finished.wait(), timeout=5)


async def test_tasks_run_in_parallel() -> None:
    # Each task waits for all the others to start: this only finishes if they overlap.
    arrived = 0
    all_started = asyncio.Event()

    async def rendezvous(n: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == 5:
            all_started.set()
        await all_started.wait()
        return n

    tasks = [safe_create_task(rendezvous(i)) for i in range(5)]
    assert await asyncio.wait_for(asyncio.gather(*tasks), timeout=5) == [0, 1, 2, 3, 4]


# --- fire_and_forget ---------------------------------------------------------------------------


async def test_decorator_returns_a_task_and_keeps_metadata() -> None:
    @fire_and_forget(name="emails.welcome")
    async def send_welcome(user_id: int) -> int:
        """Send the welcome email."""
        return user_id * 2

    task = send_welcome(21)

    assert isinstance(task, asyncio.Task)
    assert task.get_name() == "emails.welcome"
    assert await task == 42
    assert send_welcome.__name__ == "send_welcome"
    assert send_welcome.__doc__ == "Send the welcome email."
    assert inspect.unwrap(send_welcome).__name__ == "send_welcome"


async def test_bare_decorator_uses_qualname_and_counts_failures() -> None:
    @fire_and_forget
    async def flaky() -> int:
        raise Boom("flaky")

    task = flaky()

    assert await task is None
    assert task.get_name() == flaky.__qualname__
    assert get_task_failure_counts() == {flaky.__qualname__: 1}


async def test_decorator_on_error() -> None:
    seen: list[Exception] = []

    @fire_and_forget(on_error=seen.append)
    async def flaky() -> None:
        raise Boom("flaky")

    await flaky()
    assert isinstance(seen[0], Boom)


def test_decorator_rejects_sync_function() -> None:
    def not_async() -> None:
        pass

    with pytest.raises(TypeError, match="async def"):
        fire_and_forget(not_async)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def"):
        fire_and_forget(name="x")(not_async)  # type: ignore[arg-type]


# --- schedule_with_delay -----------------------------------------------------------------------


async def test_delay_runs_after_the_delay() -> None:
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    ran_at: list[float] = []

    async def job() -> str:
        ran_at.append(loop.time())
        return "done"

    task = schedule_with_delay(job(), 0.05, name="later")

    assert task.get_name() == "later"
    assert await task == "done"
    assert ran_at[0] - started_at >= 0.049  # asyncio may fire a timer a clock tick early


async def test_delayed_failure_is_reported() -> None:
    seen: list[Exception] = []
    assert await schedule_with_delay(explode(), 0.01, name="d", on_error=seen.append) is None
    assert get_task_failure_counts() == {"d": 1}
    assert isinstance(seen[0], Boom)


@pytest.mark.parametrize("let_it_start", [True, False])
async def test_cancel_during_delay_closes_the_coroutine(let_it_start: bool) -> None:
    ran = False

    async def job() -> None:
        nonlocal ran
        ran = True

    coro = job()
    task = schedule_with_delay(coro, 60)
    if let_it_start:
        await asyncio.sleep(0)  # one step: the task is now sleeping through its delay
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert not ran
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    assert get_total_failures() == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del coro
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_negative_delay_is_rejected_and_closes_the_coroutine() -> None:
    coro = succeed(1)
    with pytest.raises(ValueError, match="delay_seconds"):
        schedule_with_delay(coro, -1)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


# --- safe_gather -------------------------------------------------------------------------------


async def test_safe_gather_keeps_positions_and_isolates_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="taskward.aio")

    results = await safe_gather(succeed(1), explode(), succeed(3))

    assert results == [1, None, 3]
    assert get_task_failure_counts() == {"explode": 1}
    assert len(error_records(caplog)) == 1


async def test_safe_gather_runs_concurrently() -> None:
    first_started = asyncio.Event()

    async def waits_for_second() -> str:
        await first_started.wait()
        return "second"

    async def starts_first() -> str:
        first_started.set()
        return "first"

    results = await asyncio.wait_for(safe_gather(waits_for_second(), starts_first()), timeout=5)
    assert results == ["second", "first"]


async def test_safe_gather_without_return_exceptions_reraises_after_all_finish() -> None:
    finished: list[str] = []

    async def slow_ok() -> str:
        await asyncio.sleep(0.01)
        finished.append("slow_ok")
        return "ok"

    with pytest.raises(Boom, match="first"):
        await safe_gather(explode("first"), slow_ok(), explode("second"), return_exceptions=False)

    assert finished == ["slow_ok"]
    assert get_task_failure_counts() == {"explode": 2}


async def test_safe_gather_of_nothing() -> None:
    assert await safe_gather() == []


async def test_safe_gather_rejects_non_coroutines_and_closes_the_rest() -> None:
    coro = succeed(1)
    with pytest.raises(TypeError):
        await safe_gather(coro, 42)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


# --- supervisor --------------------------------------------------------------------------------


async def test_drain_waits_for_tasks_including_ones_spawned_while_draining() -> None:
    sup = TaskSupervisor()
    release = asyncio.Event()
    done: list[str] = []

    async def child() -> None:
        done.append("child")

    async def parent() -> None:
        await release.wait()
        sup.create_task(child())  # spawned while drain() is already waiting
        done.append("parent")

    sup.create_task(parent())
    assert sup.in_flight == 1
    drain = asyncio.ensure_future(sup.drain())
    await asyncio.sleep(0)
    release.set()

    assert await drain is True
    assert sorted(done) == ["child", "parent"]
    assert sup.in_flight == 0
    assert sup.tasks == frozenset()


async def test_drain_timeout_cancels_stragglers() -> None:
    sup = TaskSupervisor()
    cancelled = asyncio.Event()

    async def straggler() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    quick = sup.create_task(succeed(1))
    slow = sup.create_task(straggler())

    assert await sup.drain(timeout=0.05) is False
    assert cancelled.is_set()
    assert slow.cancelled()
    assert await quick == 1
    assert sup.in_flight == 0
    assert get_total_failures() == 0


async def test_drain_rejects_negative_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        await TaskSupervisor().drain(timeout=-1)


async def test_drain_called_from_a_supervised_task_does_not_wait_for_itself() -> None:
    sup = TaskSupervisor()

    async def drainer() -> bool:
        return await sup.drain(timeout=5)

    assert await asyncio.wait_for(sup.create_task(drainer()), timeout=5) is True


async def test_cancel_all() -> None:
    sup = TaskSupervisor()
    tasks = [sup.create_task(asyncio.Event().wait()) for _ in range(3)]
    await asyncio.sleep(0)

    await sup.cancel_all()

    assert all(t.cancelled() for t in tasks)
    assert sup.in_flight == 0


async def test_supervisor_context_manager_drains_on_exit() -> None:
    release = asyncio.Event()
    done: list[int] = []

    async def job(n: int) -> None:
        await release.wait()
        done.append(n)

    async with TaskSupervisor() as sup:
        for n in range(3):
            sup.create_task(job(n))
        release.set()

    assert sorted(done) == [0, 1, 2]


async def test_supervisor_context_manager_cancels_on_error() -> None:
    started: list[asyncio.Task[object]] = []

    async def body_that_fails() -> None:
        async with TaskSupervisor() as sup:
            started.append(sup.create_task(asyncio.Event().wait()))
            raise Boom("body failed")

    with pytest.raises(Boom):
        await body_that_fails()
    assert started[0].cancelled()


async def test_module_level_drain_and_cancel() -> None:
    release = asyncio.Event()
    finished = safe_create_task(release.wait())
    assert get_default_supervisor().in_flight == 1
    release.set()
    assert await drain_background_tasks(timeout=5) is True
    assert finished.done()

    stuck = safe_create_task(asyncio.Event().wait())
    await cancel_background_tasks()
    assert stuck.cancelled()


# --- threads and Prometheus --------------------------------------------------------------------


async def test_counters_can_be_read_from_another_thread_while_tasks_fail() -> None:
    stop = threading.Event()
    seen_totals: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                counts = get_task_failure_counts()
                seen_totals.append(get_total_failures())
                assert sum(counts.values()) <= seen_totals[-1]
        except BaseException as exc:  # surface anything the thread hit
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for batch in range(20):
            await safe_gather(*(explode() for _ in range(10)))
            await safe_create_task(explode(), name=f"named-{batch % 3}")
    finally:
        stop.set()
        thread.join(timeout=5)

    assert errors == []
    assert seen_totals == sorted(seen_totals)  # never goes backwards
    assert get_total_failures() == 220
    assert get_task_failure_counts() == {"explode": 200, "named-0": 7, "named-1": 7, "named-2": 6}


async def test_prometheus_counter_on_a_fresh_registry() -> None:
    registry = CollectorRegistry()
    assert register_background_failures(get_task_failure_counts, registry=registry) is True
    assert register_background_failures(get_task_failure_counts, registry=registry) is True

    await safe_create_task(explode(), name="emails.welcome")
    await safe_create_task(explode(), name="emails.welcome")

    text = generate_latest(registry).decode()
    assert "# TYPE taskward_background_task_failures_total counter" in text
    assert 'taskward_background_task_failures_total{task="emails.welcome"} 2.0' in text


async def test_prometheus_counter_is_registered_in_the_default_registry() -> None:
    from prometheus_client import REGISTRY

    await safe_create_task(explode(), name="default.registry")

    assert (
        REGISTRY.get_sample_value(
            "taskward_background_task_failures_total", {"task": "default.registry"}
        )
        == 1.0
    )
    # aio registers at import time; registering again (e.g. a module reload) must not raise.
    assert register_background_failures(aio.get_task_failure_counts) is True


async def test_prometheus_name_clash_returns_false() -> None:
    from prometheus_client import Counter

    registry = CollectorRegistry()
    Counter("taskward_background_task_failures", "someone else's", registry=registry)

    assert register_background_failures(get_task_failure_counts, registry=registry) is False
