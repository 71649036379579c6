"""The job commands: each a thin function over one TaskManager call.

Owns enqueue, jobs, status, retry, cancel, stats, cleanup and migrate; how a list of jobs is
shown (a table, or JSON with ``--json``); and reading ``enqueue --from-file``. Only enqueue
and migrate create a store that does not exist yet; the others refuse a missing SQLite file
(``must_exist``). Retry and cancel refuse a job they cannot change instead of printing it
unchanged.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from taskward.backends.base import MigrationReport
from taskward.cli import core
from taskward.cli.core import (
    AppOpt,
    JobIdArg,
    JsonOpt,
    UrlOpt,
    app,
    fail,
    load_manager,
    print_json,
    print_line,
    run,
    usage_error,
)
from taskward.edits import CHANGED, replays_of
from taskward.jobs import FINISHED_STATES, RETRIABLE_BY_OPERATOR, Job
from taskward.manager import TaskManager
from taskward.tasks import shown_job
from taskward.terminal import display_url, plain, stats_table


@app.command()
def enqueue(
    task: Annotated[
        str,
        typer.Argument(metavar="TASK", help="Registered task name, or module:function."),
    ],
    args: Annotated[
        str, typer.Option(metavar="JSON", help="The positional arguments, as a JSON list.")
    ] = "[]",
    kwargs: Annotated[
        str, typer.Option(metavar="JSON", help="The keyword arguments, as a JSON object.")
    ] = "{}",
    queue: Annotated[
        str | None,
        typer.Option(metavar="QUEUE", help="Queue to put the job on (default: the task's)."),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(metavar="0-9", help="0 runs first, 9 last (default: the task's, else 5)."),
    ] = None,
    delay: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="Run no sooner than this from now.")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help='JSON lines, one {"args": [...], "kwargs": {...}} per job, enqueued in bulk.',
        ),
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Enqueue one job (or many from a JSONL file, in bulk); creates the store if needed.

    Example: taskward enqueue tasks:add --args '[2, 3]' --app tasks
    """
    manager = load_manager(app_path, url)
    try:
        parsed_args, parsed_kwargs = json.loads(args), json.loads(kwargs)
    except json.JSONDecodeError as exc:
        usage_error(f"--args/--kwargs must be JSON: {exc}")
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
            usage_error(f"{path}:{n}: not JSON: {exc}")
        calls.append(
            (item.get("args", []), item.get("kwargs", {})) if isinstance(item, dict) else item
        )
    return calls


@app.command()
def jobs(
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            "-s",
            metavar="STATE",
            help="Only jobs in this state (repeat for several): blocked, scheduled, pending, "
            "running, retryable, completed, failed, discarded or cancelled.",
        ),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", metavar="QUEUE", help="Only jobs of this queue.")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task", "-t", metavar="TASK", help="Only jobs of this task (its registered name)."
        ),
    ] = None,
    page: Annotated[int, typer.Option(metavar="N", help="Which page to show, from 1.")] = 1,
    per_page: Annotated[int, typer.Option(metavar="N", help="Jobs per page.")] = 20,
    sort_by: Annotated[
        str,
        typer.Option(
            metavar="FIELD",
            help="Order by id, inserted_at, scheduled_at, attempted_at, completed_at, priority "
            "or attempt; a leading - sorts descending.",
        ),
    ] = "-id",
    as_json: JsonOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """List jobs with filters and pagination, newest first.

    Example: taskward jobs --state failed --queue emails
    """
    manager = load_manager(app_path, url, must_exist=True)
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
    job_id: JobIdArg, as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None
) -> None:
    """Show one job with its errors (and its result once completed).

    Example: taskward status 42 --json
    """
    job = run(load_manager(app_path, url, must_exist=True), lambda m: m.get_task_status(job_id))
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
    for r in replays_of(job.meta):  # recorded already redacted (taskward.edits)
        was = {k: v for k, v in r.items() if k in CHANGED or k.endswith("_omitted_bytes")}
        print_line(
            "[cyan]replayed[/cyan] {} from {} by {}: {}{}",
            r.get("at"),
            r.get("state"),
            r.get("by") or "?",
            r.get("note") or "(no note)",
            f" (was {json.dumps(was)})" if was else "",
        )


@app.command()
def retry(
    job_id: JobIdArg,
    args: Annotated[
        str | None,
        typer.Option(metavar="JSON", help="Replace the positional arguments (a JSON list)."),
    ] = None,
    kwargs: Annotated[
        str | None,
        typer.Option(metavar="JSON", help="Replace the keyword arguments (a JSON object)."),
    ] = None,
    queue: Annotated[
        str | None, typer.Option(metavar="QUEUE", help="Move the job to this queue.")
    ] = None,
    priority: Annotated[
        int | None, typer.Option(metavar="0-9", help="Give the job this priority.")
    ] = None,
    note: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="Why: kept in the job's history with what changed."),
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Move a failed, discarded or cancelled job back to pending, optionally edited.

    New arguments are checked as at enqueue (against the task's signature with --app); the
    values they replace, the note and the time stay in the job's history. A hidden
    (sensitive) value given as "***" keeps the stored one. Any other job is refused (exit 1):
    it is still waiting, running, or it completed. Bad JSON is a usage error (exit 2).

    Example: taskward retry 42 --kwargs '{"to": "ada@example.com"}' --note "typo"
    """
    new_args, new_kwargs = (
        json_option("--args", args, list),
        json_option("--kwargs", kwargs, dict),
    )
    changes = (new_args, new_kwargs, queue, priority, note)

    async def work(m: TaskManager) -> tuple[Job, bool]:
        job = await m.get_task_status(job_id)
        # Checked here: the store answers a job it cannot retry unchanged, which would
        # otherwise print as a success.
        if job.state not in RETRIABLE_BY_OPERATOR:
            return job, False
        if all(change is None for change in changes):
            return await m.retry_task(job_id), True
        edited = await m.retry_task(
            job_id,
            args=new_args,
            kwargs=new_kwargs,
            queue=queue,
            priority=priority,
            note=note,
            by=operator_name(),
        )
        return edited, True

    job, retried = run(load_manager(app_path, url, must_exist=True), work)
    if not retried:
        fail(
            f"job {job.id} is {job.state.value}: only a failed, discarded or cancelled job can "
            "be retried"
        )
    if queue is None:
        print_line("job {}: {}", job.id, job.state.value)
    else:  # moved: say where it waits now
        print_line("job {}: {} on {}", job.id, job.state.value, job.queue)


def operator_name() -> str | None:
    """Who runs this command (the login name), for a replay's record; None if unknown."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (a bare container)
        return None


def json_option(name: str, text: str | None, kind: type) -> Any:
    """The value of a JSON option (None when not given); a usage error unless ``kind``."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        usage_error(f"{name} must be JSON: {exc}")
    if not isinstance(value, kind):
        usage_error(f"{name} must be a JSON {'list' if kind is list else 'object'}")
    return value


@app.command()
def cancel(
    job_id: JobIdArg,
    reason: Annotated[
        str, typer.Option(metavar="TEXT", help="Why, recorded on the job.")
    ] = "cancelled from the CLI",
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Cancel a waiting job, or ask the worker running it to stop.

    A job that has finished is refused (exit 1): there is nothing left to cancel.

    Example: taskward cancel 42 --reason "sent by hand"
    """

    async def work(m: TaskManager) -> tuple[Job, bool]:
        job = await m.get_task_status(job_id)
        if job.state in FINISHED_STATES:
            return job, False
        return await m.cancel_task(job_id, reason=reason), True

    job, cancelled = run(load_manager(app_path, url, must_exist=True), work)
    if not cancelled:
        fail(f"job {job.id} has already finished ({job.state.value}): nothing to cancel")
    note = " (cancel requested)" if job.cancel_requested else ""
    core.console.print(f"job {job.id}: {job.state.value}{note}")


@app.command()
def stats(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Show job counts per queue and state, and live workers.

    Example: taskward stats --json
    """
    data = run(load_manager(app_path, url, must_exist=True), lambda m: m.get_statistics())
    if as_json:
        print_json(data)
        return
    core.console.print(stats_table(data))


@app.command()
def cleanup(
    completed_days: Annotated[
        float | None,
        typer.Option(
            metavar="DAYS",
            help="Delete completed jobs finished longer ago than this (default: the "
            "manager's retention_completed_days, 7).",
        ),
    ] = None,
    failed_days: Annotated[
        float | None,
        typer.Option(
            metavar="DAYS",
            help="Delete failed, discarded and cancelled jobs finished longer ago than this "
            "(default: the manager's retention_failed_days, 30).",
        ),
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Delete finished jobs past their retention.

    Example: taskward cleanup --completed-days 1
    """
    n = run(
        load_manager(app_path, url, must_exist=True),
        lambda m: m.cleanup_old_tasks(completed_days=completed_days, failed_days=failed_days),
    )
    core.console.print(f"deleted {n} job(s)")


@app.command()
def migrate(app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Create or upgrade the backend's schema, and say which migrations it applied.

    Example: taskward migrate --url postgresql://app@db.internal/jobs
    """
    manager = load_manager(app_path, url)

    async def work(m: TaskManager) -> MigrationReport:
        # The backend itself, not m.open(): that would migrate first (migrate_on_start),
        # leaving nothing for this call to report.
        await m.backend.open()
        try:
            return await m.backend.migrate()
        finally:
            await m.backend.close()

    report = run(manager, work)
    where = display_url(manager.backend.url)
    if report.applied:
        n, versions = len(report.applied), ", ".join(f"{v:04d}" for v in report.applied)
        print_line(
            "applied {} migration{} to {}: {} (now at version {})",
            n,
            "" if n == 1 else "s",
            where,
            versions,
            report.version,
        )
    elif report.version is None:
        print_line("{} keeps no schema: nothing to migrate", where)
    else:
        print_line("schema of {} is up to date (version {})", where, report.version)


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
