"""The demo behind ``make demo`` / ``taskward demo``: both halves of taskward.

First a few in-process background tasks, one of which fails and is logged, counted and
reported as ``/health/tasks`` would. Then durable jobs on SQLite: welcome emails, a video
transcode that reports progress, a flaky CRM sync that succeeds on its third attempt, a card
charge that lands in the dead letters, and a cron job, all run by a real worker while a live
table shows the queues fill and drain. It stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table

from taskward.aio import (
    background_tasks_report,
    drain_background_tasks,
    get_task_failure_counts,
    safe_create_task,
)
from taskward.errors import Discard
from taskward.jobs import FINISHED_STATES, JobState
from taskward.manager import TaskManager
from taskward.runtime.context import JobContext
from taskward.terminal import stats_table

console = Console(width=None if sys.stdout.isatty() else 110)


def build_manager(url: str) -> TaskManager:
    """Return the demo's manager with its tasks registered."""
    tw = TaskManager(url, poll_interval=0.2, lease_seconds=10, default_retry_delay=0.5)

    @tw.task(name="demo.send_welcome_email", queue="emails", priority=1)
    async def send_welcome_email(user_id: int, email: str) -> str:
        await asyncio.sleep(random.uniform(0.05, 0.3))  # the SMTP round trip
        return f"welcome mail sent to {email}"

    @tw.task(name="demo.transcode_video", queue="media", timeout=30)
    def transcode_video(ctx: JobContext, video_id: int, steps: int = 10) -> dict[str, int]:
        for step in range(1, steps + 1):
            time.sleep(0.25)  # a blocking encoder: runs in a worker thread
            ctx.report_progress_sync({"done": step, "total": steps})
        return {"video_id": video_id, "renditions": 3}

    @tw.task(name="demo.sync_crm", queue="default", max_attempts=5, backoff=0.5)
    async def sync_crm(ctx: JobContext, account: str) -> str:
        if ctx.attempt < 3:
            raise ConnectionError(f"CRM API timed out for {account} (attempt {ctx.attempt})")
        return f"{account} synced on attempt {ctx.attempt}"

    @tw.task(name="demo.charge_card", queue="default", max_attempts=3, backoff=0.3)
    async def charge_card(order_id: int, cents: int) -> None:
        if cents <= 0:
            raise Discard(f"order {order_id}: amount {cents} is not chargeable")
        raise RuntimeError(f"payment gateway declined order {order_id}")

    @tw.task(name="demo.nightly_report", queue="default")
    async def nightly_report() -> str:
        return "report built"

    return tw


async def _enqueue(tw: TaskManager) -> int:
    emails = [[i, f"user{i}@example.com"] for i in range(1, 9)]
    jobs = await tw.enqueue_many("demo.send_welcome_email", emails)
    jobs.append(await tw.enqueue_task("demo.transcode_video", args=[7]))
    jobs.append(await tw.enqueue_task("demo.sync_crm", args=["acme-corp"]))
    jobs.append(await tw.enqueue_task("demo.charge_card", args=[1001, 4999]))
    jobs.append(await tw.enqueue_task("demo.charge_card", args=[1002, 0]))
    await tw.schedule_recurring_task("nightly-report", "demo.nightly_report", cron="* * * * *")
    return len(jobs)


async def _live_until_done(tw: TaskManager, expected: int, deadline: float) -> None:
    with Live(console=console, refresh_per_second=8, transient=True) as live:
        while time.monotonic() < deadline:
            data = await tw.get_statistics()
            finished = sum(c[s.value] for c in data["queues"].values() for s in FINISHED_STATES)
            live.update(Group(stats_table(data), await _progress_line(tw)))
            if finished >= expected + 1:  # + the cron job's first run
                return
            await asyncio.sleep(0.2)


async def _progress_line(tw: TaskManager) -> str:
    page = await tw.list_tasks(task="demo.transcode_video", per_page=1)
    if not page.items or not page.items[0].progress:
        return "transcode: waiting"
    p = page.items[0].progress
    return f"transcode progress: {p['done']}/{p['total']}"


async def _safe_tasks_part() -> None:
    """Part 1: in-process background tasks whose failures are logged, counted and reported."""
    console.rule("[bold]1. safe in-process background tasks (taskward.aio)")

    async def emit_event(kind: str) -> None:
        await asyncio.sleep(0.01)

    async def save_metrics() -> None:
        raise ConnectionError("metrics store unreachable")

    for kind in ("order.created", "order.paid", "order.shipped"):
        safe_create_task(emit_event(kind), name="emit_event")
    safe_create_task(save_metrics(), name="save_metrics")
    await drain_background_tasks(timeout=5)
    console.print(f"failure counters: {get_task_failure_counts()}")
    console.print("GET /health/tasks would answer:")
    console.print_json(json.dumps(background_tasks_report()))


async def _demo(url: str) -> int:
    await _safe_tasks_part()
    console.rule("[bold]2. durable jobs on SQLite (TaskManager)")
    tw = build_manager(url)
    async with tw:
        expected = await _enqueue(tw)
        console.print(f"[bold]enqueued {expected} jobs[/bold] on {url}; starting a worker…")
        worker = tw.make_worker({"default": 4, "emails": 4, "media": 1})
        runner = asyncio.create_task(tw.run_worker(worker=worker, install_signal_handlers=False))
        try:
            await _live_until_done(tw, expected, time.monotonic() + 45)
        finally:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await _report(tw, url)
    return 0


async def _report(tw: TaskManager, url: str) -> None:
    console.print(stats_table(await tw.get_statistics()))
    dead = await tw.list_tasks(state=[JobState.FAILED, JobState.DISCARDED])
    table = Table(title=f"dead letters (retry one with: taskward retry ID --url {url})")
    for col in ("id", "task", "state", "attempts", "last error"):
        table.add_column(col)
    for job in dead.items:
        error = job.last_error
        table.add_row(
            str(job.id), job.task, job.state.value, str(job.attempt),
            f"{error.kind}: {error.message}" if error else "",
        )  # fmt: skip
    console.print(table)
    crm = (await tw.list_tasks(task="demo.sync_crm")).items[0]
    console.print(
        f"flaky CRM sync: {crm.state.value} — {crm.result!r} after {crm.attempt} attempts"
    )


def run_demo(url: str = "sqlite:///./demo.db") -> int:
    """Run the demo on a fresh database at ``url``; return the exit status."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    handler = RichHandler(console=console, show_path=False, markup=False)
    handler.addFilter(_first_line)  # the dead-letter traceback is shown once, in the table
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler])
    return asyncio.run(_demo(url))


def _first_line(record: logging.LogRecord) -> bool:
    record.msg = record.getMessage().split("\n", 1)[0]
    record.args = ()
    return True
