"""``taskward cron``: list and cancel recurring schedules.

Owns the ``cron list`` and ``cron cancel`` commands (registered on ``cron_app``; both refuse
a SQLite store that does not exist) and how a schedule's next fire time is shown when its
stored cron or time zone cannot fire.
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
from taskward.jobs import Schedule
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
         "next": _next_fire(manager, s)}
        for s in schedules
    ]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    table = Table(title="recurring schedules")
    for col in ("name", "task", "cron", "timezone", "next"):
        table.add_column(col)
    for row in rows:
        shown = {**row, "next": row["next"] or "never (invalid cron or time zone)"}
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


@cron_app.command("cancel")
def cron_cancel(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The schedule's name (taskward cron list).")
    ],
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Delete a recurring schedule.

    Example: taskward cron cancel nightly-report
    """
    # A missing schedule raises ScheduleNotFound: one error line, exit 1 (TaskwardGroup).
    run(load_manager(app_path, url, must_exist=True), lambda m: m.cancel_recurring_task(name))
    print_line("recurring schedule {} cancelled", name)
