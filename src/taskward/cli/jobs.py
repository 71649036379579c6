"""The job and queue commands: each a thin function over one TaskManager call.

Owns enqueue, jobs, status, retry, cancel, stats, pause, resume, cleanup and migrate; how a
list of jobs is shown (a table, or JSON with ``--json``); and reading ``enqueue --from-file``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from taskward.cli import core
from taskward.cli.core import (
    AppOpt,
    JsonOpt,
    UrlOpt,
    app,
    load_manager,
    print_json,
    print_line,
    run,
)
from taskward.jobs import Job
from taskward.manager import TaskManager
from taskward.tasks import shown_job
from taskward.terminal import display_url, plain, stats_table


@app.command()
def enqueue(
    task: Annotated[str, typer.Argument(help="Registered task name or module:function.")],
    args: Annotated[str, typer.Option(help="JSON list of positional args.")] = "[]",
    kwargs: Annotated[str, typer.Option(help="JSON object of keyword args.")] = "{}",
    queue: Annotated[str | None, typer.Option()] = None,
    priority: Annotated[int | None, typer.Option()] = None,
    delay: Annotated[float | None, typer.Option(help="Seconds from now.")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="JSONL: one {args, kwargs} per line.")
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Enqueue one job (or many from a JSONL file, in bulk)."""
    manager = load_manager(app_path, url)
    try:
        parsed_args, parsed_kwargs = json.loads(args), json.loads(kwargs)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--args/--kwargs must be JSON: {exc}") from None
    opts: dict[str, Any] = {"queue": queue, "priority": priority, "delay": delay}
    if from_file is not None:
        calls = _read_jsonl(from_file)
        jobs = run(manager, lambda m: m.enqueue_many(task, calls, **opts))
        core.console.print(f"enqueued {len(jobs)} job(s)")
        return
    job = run(
        manager, lambda m: m.enqueue_task(task, args=parsed_args, kwargs=parsed_kwargs, **opts)
    )
    print_line("enqueued job {} ({}) on {}: {}", job.id, job.task, job.queue, job.state.value)


def _read_jsonl(path: Path) -> list[Any]:
    from rich.progress import track

    calls: list[Any] = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(track(lines, description="reading", console=core.err), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path}:{n}: not JSON: {exc}") from None
        calls.append(
            (item.get("args", []), item.get("kwargs", {})) if isinstance(item, dict) else item
        )
    return calls


@app.command()
def jobs(
    state: Annotated[list[str] | None, typer.Option("--state", "-s")] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    page: int = 1,
    per_page: int = 20,
    sort_by: str = "-id",
    as_json: JsonOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """List jobs with filters and pagination."""
    manager = load_manager(app_path, url)
    result = run(
        manager,
        lambda m: m.list_tasks(
            state=state or None,
            queue=queue,
            task=task,
            page=page,
            per_page=per_page,
            sort_by=sort_by,
        ),
    )
    total = f"{'about ' if result.total_is_estimate else ''}{result.total_entries}"
    footer = f"page {result.page_number}/{result.total_pages} · {total} job(s)"
    _print_jobs(list(result.items), as_json, footer)


@app.command()
def status(
    job_id: int, as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None
) -> None:
    """Show one job with its errors."""
    job = run(load_manager(app_path, url), lambda m: m.get_task_status(job_id))
    if as_json:
        print_json(shown_job(job))
        return
    _print_jobs([job], False)
    for e in job.errors:
        print_line(
            f"[yellow]attempt {e.attempt}[/yellow] {_dt(e.at)} {{}}: {{}}", e.kind, e.message
        )
        if e.traceback:
            core.console.print(plain(e.traceback, lines=True), soft_wrap=True)
    if job.result is not None:
        print_line("result: {}", json.dumps(job.result))


@app.command()
def retry(job_id: int, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Move a failed, discarded or cancelled job back to pending."""
    job = run(load_manager(app_path, url), lambda m: m.retry_task(job_id))
    core.console.print(f"job {job.id}: {job.state.value}")


@app.command()
def cancel(
    job_id: int,
    reason: str = "cancelled from the CLI",
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Cancel a waiting job, or ask the worker running it to stop."""
    job = run(load_manager(app_path, url), lambda m: m.cancel_task(job_id, reason=reason))
    note = " (cancel requested)" if job.cancel_requested else ""
    core.console.print(f"job {job.id}: {job.state.value}{note}")


@app.command()
def stats(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Show job counts per queue and state, and live workers."""
    data = run(load_manager(app_path, url), lambda m: m.get_statistics())
    if as_json:
        print_json(data)
        return
    core.console.print(stats_table(data))


@app.command()
def pause(queue: str, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Pause a queue on every worker."""
    run(load_manager(app_path, url), lambda m: m.pause_queue(queue))
    print_line("queue {} paused", queue)


@app.command()
def resume(queue: str, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Resume a paused queue."""
    run(load_manager(app_path, url), lambda m: m.resume_queue(queue))
    print_line("queue {} resumed", queue)


@app.command()
def cleanup(
    completed_days: float | None = None,
    failed_days: float | None = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Delete finished jobs past their retention."""
    n = run(
        load_manager(app_path, url),
        lambda m: m.cleanup_old_tasks(completed_days=completed_days, failed_days=failed_days),
    )
    core.console.print(f"deleted {n} job(s)")


@app.command()
def migrate(app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Create or upgrade the backend's schema."""
    manager = load_manager(app_path, url)

    async def work(m: TaskManager) -> None:
        await m.backend.open()
        await m.backend.migrate()

    run(manager, work)
    print_line("schema of {} is up to date", display_url(manager.backend.url))


def _print_jobs(jobs: list[Job], as_json: bool, footer: str = "") -> None:
    if as_json:
        print_json([shown_job(j) for j in jobs])
        return
    table = Table(title=footer or None)
    for col in ("id", "task", "queue", "state", "pri", "attempt", "scheduled", "last error"):
        table.add_column(col, overflow="fold")
    for j in jobs:
        error = j.last_error.message[:60] if j.last_error else ""
        table.add_row(
            str(j.id), plain(j.task), plain(j.queue), j.state.value, str(j.priority),
            f"{j.attempt}/{j.max_attempts}", _dt(j.scheduled_at), plain(error),
        )  # fmt: skip
    core.console.print(table)


def _dt(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""
