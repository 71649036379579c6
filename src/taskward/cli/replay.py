"""The ``taskward retry-all`` command: replay every dead letter matching a filter.

Owns the bulk half of "dead letters: edit and replay" on the command line (the single job is
``taskward retry ID`` in :mod:`taskward.cli.jobs`): it counts what matches, prints the count,
asks for confirmation (unless ``--yes``), then retries each job through
``TaskManager.retry_dead_letters`` with the same note, queue or priority change and kwargs
merge, and prints one line per job it refused (left unchanged) with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from taskward.cli import core
from taskward.cli.core import AppOpt, UrlOpt, app, load_manager, print_line, run, usage_error
from taskward.cli.jobs import json_option, operator_name
from taskward.errors import InvalidOptions
from taskward.manager import TaskManager
from taskward.replays import (
    MAX_BULK_REPLAY,
    DeadLetterFilter,
    ReplayReport,
    check_bulk_options,
)


@app.command("retry-all")
def retry_all(
    task: Annotated[
        str | None, typer.Option("--task", "-t", metavar="TASK", help="Only jobs of this task.")
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", "-q", metavar="QUEUE", help="Only jobs of this queue."),
    ] = None,
    error_kind: Annotated[
        str | None,
        typer.Option(
            metavar="KIND", help="Only jobs whose last error is of this kind (ConnectionError)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="Only jobs that ended at or after this ISO 8601 time."),
    ] = None,
    include_discarded: Annotated[
        bool, typer.Option("--include-discarded", help="Discarded jobs too (not only failed).")
    ] = False,
    set_kwargs: Annotated[
        str | None,
        typer.Option(
            metavar="JSON", help="Merge this JSON object into each job's keyword arguments."
        ),
    ] = None,
    to_queue: Annotated[
        str | None, typer.Option(metavar="QUEUE", help="Move each job to this queue.")
    ] = None,
    priority: Annotated[
        int | None, typer.Option(metavar="0-9", help="Give each job this priority.")
    ] = None,
    note: Annotated[
        str | None, typer.Option(metavar="TEXT", help="Why: kept in each job's history.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Retry every failed job (discarded too with --include-discarded) matching the filters.

    Prints how many match and asks before changing anything (unless --yes). Each job is
    checked on its own (with --app, against its task's signature): one refused is printed
    with the reason and left unchanged, the rest are retried. Exit 1 if any was refused.

    Example: taskward retry-all --task emails:send --error-kind SMTPError --set-kwargs
    '{"relay": "backup"}' --note "primary relay down" --yes
    """
    flt = DeadLetterFilter(
        include_discarded=include_discarded,
        task=task,
        queue=queue,
        error_kind=error_kind,
        since=_since(since),
    )
    merge = json_option("--set-kwargs", set_kwargs, dict)
    try:  # before connecting: a bad option is one usage error, not a refusal per job
        check_bulk_options(
            note=note, queue=to_queue, priority=priority, by=None, limit=MAX_BULK_REPLAY
        )
    except InvalidOptions as exc:
        usage_error(str(exc))
    manager = load_manager(app_path, url, must_exist=True)
    counted = run(manager, lambda m: m.retry_dead_letters(flt, dry_run=True))
    capped = " (at most this many per run)" if counted.capped else ""
    print_line("{} dead letter(s) match{}", counted.matched, capped)
    if counted.matched == 0:
        return
    if not yes and not typer.confirm(f"Retry these {counted.matched} job(s)?", err=True):
        core.fail("nothing retried (not confirmed)")

    async def work(m: TaskManager) -> ReplayReport:
        return await m.retry_dead_letters(
            flt,
            note=note,
            queue=to_queue,
            priority=priority,
            set_kwargs=merge,
            by=operator_name(),
        )

    report = run(load_manager(app_path, url, must_exist=True), work)
    for job_id, reason in sorted(report.refused.items()):
        print_line("[yellow]job[/yellow] {} left unchanged: {}", job_id, reason, to=core.err)
    print_line("retried {} job(s), refused {}", len(report.retried), len(report.refused))
    if report.refused:
        raise typer.Exit(core.EXIT_ERROR)


def _since(text: str | None) -> datetime | None:
    """``--since`` as an aware time (a time without an offset is UTC); exit 2 if unreadable."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        usage_error(f"--since must be an ISO 8601 time (2026-01-31T08:00), got {text!r}")
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
