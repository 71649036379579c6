"""``taskward health [--json] [--queue Q]``: the store's SLO health, with an exit code per verdict.

The report is :meth:`TaskManager.health`'s (the thresholds of ``--app``'s manager, else the
defaults), the same as ``GET /health/jobs`` serves. Exit codes, distinct from the CLI's own 1
(an error, such as an unreachable store) and 2 (a usage error), so that a script or a
Kubernetes ``exec`` probe can tell them apart: 0 ok, 3 degraded, 4 failing.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer
from rich.table import Table
from rich.text import Text

from taskward.cli import core
from taskward.cli.core import AppOpt, JsonOpt, UrlOpt, app, load_manager, print_json, run
from taskward.durations import run_time
from taskward.health import HealthReport, HealthVerdict, QueueHealth
from taskward.jobs import validate_queue_name
from taskward.terminal import plain

__all__ = ["EXIT_DEGRADED", "EXIT_FAILING", "exit_code", "health_tables"]

EXIT_DEGRADED: Final = 3
"""Exit code of ``taskward health`` when the verdict is degraded."""
EXIT_FAILING: Final = 4
"""Exit code of ``taskward health`` when the verdict is failing."""

_STYLE = {HealthVerdict.OK: "green", HealthVerdict.DEGRADED: "yellow", HealthVerdict.FAILING: "red"}


def exit_code(verdict: HealthVerdict) -> int:
    """0 for ok, :data:`EXIT_DEGRADED`, :data:`EXIT_FAILING`."""
    return {HealthVerdict.OK: 0, HealthVerdict.DEGRADED: EXIT_DEGRADED}.get(verdict, EXIT_FAILING)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _rate(runs: int, failures: int) -> str:
    return "-" if not runs else f"{failures:,}/{runs:,} ({failures / runs:.0%})"


def _queue_row(queue: QueueHealth) -> list[Text | str]:
    verdict = queue.verdict
    stuck = f"{queue.stuck:,}"
    if queue.stuck_ids:
        stuck += " (" + ", ".join(f"#{i}" for i in queue.stuck_ids[:3])
        stuck += ", …)" if len(queue.stuck_ids) > 3 else ")"
    return [
        plain(queue.queue),
        f"[{_STYLE[verdict]}]{verdict.value}[/]",
        _age(queue.oldest_due_age),
        f"{queue.backlog:,}",
        f"{queue.running:,}",
        stuck,
        f"{queue.workers:,}",
        "yes" if queue.paused else "",
    ]


def health_tables(report: HealthReport) -> list[Table]:
    """The report as a queue table and, when tasks ran in the last hour, a task table."""
    verdict = report.verdict
    queues = Table(title=f"taskward health: [{_STYLE[verdict]}]{verdict.value}[/]")
    for name in ("queue", "verdict", "oldest due", "backlog", "running", "stuck", "workers"):
        queues.add_column(name, justify="left" if name in ("queue", "verdict") else "right")
    queues.add_column("paused")
    for queue in report.queues:
        queues.add_row(*_queue_row(queue))
    queues.caption = f"workers alive: {report.workers_alive:,}"
    tables = [queues]
    rows = [(q.queue, t) for q in report.queues for t in q.tasks]
    if rows:
        tasks = Table(title="failures and run times per task")
        for name in ("queue", "task", "last 5 min", "last 60 min", "p50", "p95"):
            tasks.add_column(name, justify="left" if name in ("queue", "task") else "right")
        for name, task in rows:
            tasks.add_row(
                plain(name),
                plain(task.task),
                _rate(task.last_5m.runs, task.last_5m.failures),
                _rate(task.last_60m.runs, task.last_60m.failures),
                run_time(task.p50_seconds),
                run_time(task.p95_seconds),
            )
        tables.append(tasks)
    return tables


@app.command()
def health(
    as_json: JsonOpt = False,
    queue: Annotated[
        str | None,
        typer.Option("--queue", "-q", metavar="QUEUE", help="Judge this queue alone."),
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Judge the store's health: per queue ok, degraded or failing, and why.

    Per queue: how long the oldest due job has waited, the backlog, running and stuck jobs,
    live workers; per task, failures over the last 5 and 60 minutes. The thresholds are
    --app's manager's (health_thresholds), else the defaults.

    Exit code: 0 ok, 3 degraded, 4 failing (1 an error, 2 a usage error).

    Example: taskward health --queue emails --json
    """
    if queue is not None:
        validate_queue_name(queue)  # an error line, exit 1, before the store is opened
    report = run(load_manager(app_path, url, must_exist=True), lambda m: m.health())
    if queue is not None:
        report = report.only(queue)
    if as_json:
        print_json(report.as_json())
    else:
        for table in health_tables(report):
            core.console.print(table)
        for reason in report.reasons:
            core.print_line(
                f"[{_STYLE[reason.level]}]{reason.level.value}:[/] {{}}", reason.message
            )
        if queue is not None and not report.queues:
            core.print_line("queue {} has no due, running or recently ended jobs", queue)
    code = exit_code(report.verdict)
    if code:
        raise typer.Exit(code)
