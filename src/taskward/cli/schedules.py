"""``taskward cron``: list, pause, resume and cancel schedules, and show their fire history.

Owns the ``cron list``, ``cron pause``, ``cron resume``, ``cron cancel`` and ``cron history``
commands (registered on
``cron_app``; each refuses a SQLite store that does not exist) and how a schedule's next fire
time is shown when its stored cron or time zone cannot fire.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from taskward.cli import core
from taskward.cli.core import (
    AppOpt,
    JsonOpt,
    UrlOpt,
    cron_app,
    load_manager,
    print_json,
    print_line,
    run,
)
from taskward.errors import TaskwardError
from taskward.jobs import CRON_HISTORY_KEEP, CronFire, Schedule
from taskward.manager import TaskManager
from taskward.terminal import plain


@cron_app.command("list")
def cron_list(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """List recurring schedules with their next fire time.

    Example: taskward cron list --json
    """
    manager = load_manager(app_path, url, must_exist=True)
    schedules = run(manager, lambda m: m.list_recurring_tasks())
    rows = [
        {"name": s.name, "task": s.task, "cron": s.cron, "timezone": s.timezone,
         "catch_up": str(s.catch_up), "overlap": str(s.overlap), "paused": s.paused,
         "next": _next_fire(manager, s)}
        for s in schedules
    ]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    table = Table(title="recurring schedules")
    for col in ("name", "task", "cron", "timezone", "catch_up", "overlap", "paused", "next"):
        table.add_column(col)
    for row in rows:
        shown = {
            **row,
            "paused": "paused" if row["paused"] else "",
            "next": row["next"] or "never (invalid cron or time zone)",
        }
        table.add_row(*(plain(value) for value in shown.values()))
    core.console.print(table)


def _next_fire(manager: TaskManager, schedule: Schedule) -> str | None:
    """The next fire time of ``schedule`` (ISO 8601), or None if its cron cannot fire.

    The cron and time zone were read from the store, where they may have been changed behind
    taskward's back: one bad row is shown as such rather than failing the whole listing.
    """
    try:
        return manager.next_fire(schedule).isoformat()
    except (TaskwardError, ValueError):
        return None


ScheduleName = Annotated[
    str, typer.Argument(metavar="NAME", help="The schedule's name (taskward cron list).")
]
"""The NAME argument of the commands that act on one schedule."""


@cron_app.command("cancel")
def cron_cancel(
    name: ScheduleName,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Delete a recurring schedule.

    Example: taskward cron cancel nightly-report
    """
    # A missing schedule raises ScheduleNotFound: one error line, exit 1 (TaskwardGroup).
    run(load_manager(app_path, url, must_exist=True), lambda m: m.cancel_recurring_task(name))
    print_line("recurring schedule {} cancelled", name)


@cron_app.command("pause")
def cron_pause(
    name: ScheduleName,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Stop a recurring schedule firing until it is resumed (kept across restarts).

    Example: taskward cron pause nightly-report
    """
    # A missing schedule raises ScheduleNotFound: one error line, exit 1 (TaskwardGroup).
    run(load_manager(app_path, url, must_exist=True), lambda m: m.pause_schedule(name))
    print_line("recurring schedule {} paused", name)


@cron_app.command("resume")
def cron_resume(
    name: ScheduleName,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Let a paused schedule fire again from its next fire time.

    Fire times that passed while it was paused are not caught up: its history records them
    as one skipped entry.

    Example: taskward cron resume nightly-report
    """
    manager = load_manager(app_path, url, must_exist=True)
    schedule = run(manager, lambda m: m.resume_schedule(name))
    upcoming = _next_fire(manager, schedule) or "never (invalid cron or time zone)"
    print_line("recurring schedule {} resumed; next run {}", name, upcoming)


@cron_app.command("history")
def cron_history(
    name: ScheduleName,
    limit: Annotated[
        int,
        typer.Option(
            min=1,
            max=CRON_HISTORY_KEEP,
            metavar="N",
            help=f"Show the newest N records (1-{CRON_HISTORY_KEEP}).",
        ),
    ] = 20,
    as_json: JsonOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show what the schedulers did with each fire time of a schedule, newest first.

    Each row: the planned time, the outcome (inserted, caught_up or skipped), the job id if
    one was inserted, how many fire times a row stands for, and why it was skipped.

    Example: taskward cron history nightly-report --limit 5
    """
    # A missing schedule raises ScheduleNotFound: one error line, exit 1 (TaskwardGroup).
    manager = load_manager(app_path, url, must_exist=True)
    records = run(manager, lambda m: m.cron_history(name, limit=limit))
    rows = [_history_row(record) for record in records]
    if as_json:
        print_json(rows)
        return
    table = Table(title=plain(f"fire history of {name}"))
    for col in ("planned", "outcome", "job", "count", "reason"):
        table.add_column(col)
    for row in rows:
        job = "" if row["job_id"] is None else str(row["job_id"])
        cells = (row["planned_at"], row["outcome"], job, str(row["count"]), row["reason"])
        table.add_row(*(plain(cell) for cell in cells))
    core.console.print(table)
    if not rows:
        print_line("no fire time handled yet")


def _history_row(record: CronFire) -> dict[str, object]:
    return {
        "planned_at": record.planned_at.isoformat(),
        "outcome": str(record.outcome),
        "job_id": record.job_id,
        "count": record.count,
        "reason": record.reason,
        "recorded_at": None if record.recorded_at is None else record.recorded_at.isoformat(),
    }
