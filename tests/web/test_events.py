"""Events, the audit trail and the dead-letter notifier, driven by a real manager and worker."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from taskward import Discard, FrozenClock, JobState, TaskManager
from taskward.observe.events import Event, EventBus
from taskward.observe.history import job_history
from taskward.observe.notify import DeadLetterNotifier
from taskward.runtime.maintenance import Rescuer
from taskward.runtime.scheduler import CronScheduler


async def test_job_lifecycle_events_in_order(tw: TaskManager) -> None:
    seen: list[tuple[str, int | None, Any]] = []
    tw.on("*", lambda e: seen.append((e.name, e.job_id, e.data.get("state"))))
    calls = {"n": 0}

    @tw.task(max_attempts=3, backoff=0)
    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    job = await flaky.enqueue()
    await tw.drain(with_scheduled=True, timeout=10)
    names = [name for name, job_id, _ in seen if job_id == job.id]
    assert names == [
        "job.enqueued",
        "job.started",
        "job.failed_attempt",
        "job.started",
        "job.completed",
    ]
    assert ("job.completed", job.id, "completed") in seen


async def test_async_hooks_run_and_raising_hooks_break_nothing(
    tw: TaskManager, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[str] = []

    async def async_hook(event: Event) -> None:
        got.append(event.name)

    def bad_sync(event: Event) -> None:
        raise ValueError("sync hook bug")

    async def bad_async(event: Event) -> None:
        raise ValueError("async hook bug")

    for hook in (bad_sync, bad_async, async_hook):
        tw.on("job.enqueued", hook)
        tw.on("job.completed", hook)

    @tw.task
    def work() -> int:
        return 1

    with caplog.at_level(logging.ERROR, logger="taskward.observe.events"):
        job = await work.enqueue()  # the raising hooks must not break the enqueue
        await tw.drain(timeout=10)  # nor the worker
        await tw.events.wait_idle()
    assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED
    assert got == ["job.enqueued", "job.completed"]
    assert tw.events.hook_failures == 4
    assert "sync hook bug" in caplog.text
    assert "async hook bug" in caplog.text


async def test_operator_and_queue_events(tw: TaskManager) -> None:
    seen: list[str] = []
    tw.on("*", lambda e: seen.append(e.name))

    @tw.task(max_attempts=1)
    def boom() -> None:
        raise RuntimeError("boom")

    job = await boom.enqueue()
    await tw.drain(timeout=10)
    await tw.retry_task(job.id)
    await tw.cancel_task(job.id)
    await tw.pause_queue("default")
    await tw.resume_queue("default")
    assert seen[-6:] == [
        "job.started",
        "job.failed",
        "job.retried",
        "job.cancelled",
        "queue.paused",
        "queue.resumed",
    ]


def test_unknown_event_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event"):
        EventBus().on("job.complete", print)


async def test_history_merges_row_and_live_events(tw: TaskManager) -> None:
    @tw.task(max_attempts=2, backoff=0)
    def always_fails() -> None:
        raise RuntimeError("disk on fire")

    job = await always_fails.enqueue()
    await tw.drain(with_scheduled=True, timeout=10)
    await tw.retry_task(job.id)
    stored = await tw.get_task_status(job.id)
    history = job_history(stored, tw.recent_events.recent(job_id=job.id))
    kinds = [h.kind for h in history]
    assert kinds[0] == "enqueued"
    assert kinds.count("failed_attempt") == 2
    assert kinds[-1] == "retried"  # only the live event remembers an operator retry
    tracebacks = [h.traceback for h in history if h.traceback]
    assert len(tracebacks) == 2
    assert "disk on fire" in tracebacks[0]
    # Row-only history (a process that saw nothing) still shows both failed attempts.
    assert [h.kind for h in job_history(stored)].count("failed_attempt") == 2


async def test_dead_letter_callback_for_failed_and_discarded(tw: TaskManager) -> None:
    letters: list[dict[str, Any]] = []

    async def collect(payload: dict[str, Any]) -> None:
        letters.append(payload)

    DeadLetterNotifier(callback=collect).attach(tw.events)

    @tw.task(max_attempts=1)
    def fails() -> None:
        raise RuntimeError("nope")

    @tw.task
    def discards() -> None:
        raise Discard("bad input")

    @tw.task
    def fine() -> None:
        return None

    a, b, _ = await fails.enqueue(), await discards.enqueue(), await fine.enqueue()
    await tw.drain(timeout=10)
    await tw.events.wait_idle()
    by_id = {p["job_id"]: p for p in letters}
    assert set(by_id) == {a.id, b.id}
    assert by_id[a.id]["state"] == "failed"
    assert "RuntimeError: nope" in by_id[a.id]["error"]
    assert by_id[b.id]["state"] == "discarded"


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(
            {"body": json.loads(body), "auth": self.headers.get("Authorization")}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Hook,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


async def test_dead_letter_webhook_posts_json(
    webhook: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    url, received = webhook
    tw = TaskManager("memory://")
    notifier = DeadLetterNotifier(webhook_url=url, headers={"Authorization": "Bearer s3cret"})
    notifier.attach(tw.events)
    broken = DeadLetterNotifier(webhook_url="http://127.0.0.1:9/unreachable").attach(tw.events)

    @tw.task(max_attempts=1)
    def fails(n: int) -> None:
        raise RuntimeError(f"failure {n}")

    job = await fails.enqueue(7)
    with caplog.at_level(logging.ERROR, logger="taskward.observe.notify"):
        await tw.drain(timeout=10)
        notifier.join(5)
        broken.join(5)
    assert len(received) == 1
    assert received[0]["auth"] == "Bearer s3cret"
    body = received[0]["body"]
    assert body["job_id"] == job.id
    assert body["state"] == "failed"
    assert "failure 7" in body["error"]
    assert "args" not in body
    assert "dead-letter webhook http://127.0.0.1:9/*** failed" in caplog.text
    await tw.close()


async def test_rescued_job_emits_rescued_and_dead_letter(clock: FrozenClock) -> None:
    tw = TaskManager("memory://", clock=clock, lease_seconds=5)
    letters: list[dict[str, Any]] = []
    DeadLetterNotifier(callback=letters.append).attach(tw.events)
    rescued: list[Event] = []
    tw.on("job.rescued", rescued.append)

    @tw.task(max_attempts=1)
    def lost() -> None:
        return None

    job = await lost.enqueue()
    worker = tw.make_worker({"default": 1})
    (claimed,) = await worker.fetch("default", 1)  # claimed, then the "worker" dies
    clock.advance(timedelta(seconds=10).total_seconds())
    rescuer = Rescuer(
        tw.backend,
        clock,
        1,
        leadership=None,
        resolve=tw._lookup,
        default_policy=tw.default_policy,
        events=tw.events,
    )
    await rescuer.run_once()
    assert [e.job_id for e in rescued] == [claimed.id]
    assert rescued[0].data["state"] == "failed"
    assert [p["job_id"] for p in letters] == [job.id]
    await tw.close()


async def test_cron_inserted_once_per_slot(tw: TaskManager, clock: FrozenClock) -> None:
    tw.clock = clock
    await tw.schedule_recurring_task("tick", "tests_support.jobs:add", cron="* * * * *", args=[1])
    inserted: list[Event] = []
    tw.on("cron.inserted", inserted.append)
    first = CronScheduler(tw.backend, clock, make_job=tw.schedule_job, events=tw.events)
    second = CronScheduler(tw.backend, clock, make_job=tw.schedule_job, events=tw.events)
    clock.advance(61)
    await first.run_once()
    await second.run_once()  # proposes the same slot: a duplicate, so no event
    assert len(inserted) == 1
    assert inserted[0].data["schedule"] == "tick"
    assert inserted[0].job_id == (await tw.list_tasks()).items[0].id


async def test_for_job_builds_the_same_event_as_the_constructor(tw: TaskManager) -> None:
    @tw.task(queue="mail")
    def send() -> None: ...

    job = await send.enqueue()
    now = tw.clock.now()
    fast = Event.for_job("job.started", job, now, wait=1.5)
    assert fast == Event(
        name="job.started", at=now, job=job, queue="mail", task=job.task, data={"wait": 1.5}
    )
    assert fast.job_id == job.id
