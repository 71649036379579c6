"""``taskward queue``: the limits every worker obeys, set at run time.

Owns ``queue configure NAME --global-limit N | --no-global-limit`` and ``queue limits``
(registered on ``queue_app``). Pausing and resuming stay top-level: ``taskward pause|resume``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from taskward.cli import core
from taskward.cli.core import (
    AppOpt,
    JsonOpt,
    UrlOpt,
    load_manager,
    print_json,
    print_line,
    queue_app,
    run,
    usage_error,
)
from taskward.jobs import JobState
from taskward.limits import QueueLimits
from taskward.manager import TaskManager
from taskward.terminal import plain


@queue_app.command("configure")
def queue_configure(
    name: Annotated[str, typer.Argument(help="The queue.")],
    global_limit: Annotated[
        int | None,
        typer.Option(
            "--global-limit",
            help="At most N jobs of the queue run at once, across every worker and host.",
        ),
    ] = None,
    no_global_limit: Annotated[
        bool, typer.Option("--no-global-limit", help="Remove the queue's global limit.")
    ] = False,
    as_json: JsonOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Set or clear a queue's limits; running workers obey them at their next claim."""
    if (global_limit is None) == (not no_global_limit):
        usage_error("give either --global-limit N or --no-global-limit")
    manager = load_manager(app_path, url)
    limits = run(manager, lambda m: m.configure_queue(name, global_limit=global_limit))
    if as_json:
        print_json({"queue": name, **asdict(limits)})
        return
    print_line("queue {}: {}", name, _describe(limits))


@queue_app.command("limits")
def queue_limits(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """List the queues that have limits, with how many of their jobs run now."""

    async def work(m: TaskManager) -> list[dict[str, Any]]:
        limits = await m.queue_limits()
        counts = (await m.get_statistics())["queues"] if limits else {}
        return [
            {
                "queue": queue,
                **asdict(limits[queue]),
                "running": counts.get(queue, {}).get(JobState.RUNNING.value, 0),
            }
            for queue in sorted(limits)
        ]

    rows = run(load_manager(app_path, url), work)
    if as_json:
        print_json(rows)
        return
    if not rows:
        core.console.print("no queue has limits")
        return
    table = Table(title="queue limits")
    for col in ("queue", "global limit", "running"):
        table.add_column(col, justify="left" if col == "queue" else "right")
    for row in rows:
        table.add_row(plain(row["queue"]), _number(row["global_limit"]), str(row["running"]))
    core.console.print(table)


def _describe(limits: QueueLimits) -> str:
    if limits.global_limit is None:
        return "no global limit"
    n = limits.global_limit
    return f"global limit {n} (at most {n} of its jobs run at once, across every worker)"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)
