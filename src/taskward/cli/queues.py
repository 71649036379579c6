"""``taskward queue``: the limits every worker obeys, set at run time.

Owns ``queue configure NAME [--global-limit N | --no-global-limit] [--rate-limit 100/s |
--no-rate-limit]``, ``queue hold NAME SECONDS``, ``queue release NAME`` and ``queue limits``
(registered on ``queue_app``). Pausing and resuming stay top-level: ``taskward pause|resume``.
"""

from __future__ import annotations

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
    rate_limit: Annotated[
        str | None,
        typer.Option(
            "--rate-limit",
            help="At most that many jobs start per fixed window, across every node: "
            "100/s, 5000/m, 2/h, 10/5s.",
        ),
    ] = None,
    no_rate_limit: Annotated[
        bool, typer.Option("--no-rate-limit", help="Remove the queue's rate limit.")
    ] = False,
    partition_by: Annotated[
        str | None,
        typer.Option(
            "--partition-by",
            help="Split the queue by a key: a kwarg name (tenant_id) or an args position (0); "
            "the limits then apply to each key, and keys take turns.",
        ),
    ] = None,
    no_partition_by: Annotated[
        bool, typer.Option("--no-partition-by", help="Stop splitting the queue by key.")
    ] = False,
    as_json: JsonOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Set or clear a queue's limits; running workers obey them at their next claim.

    A limit not named keeps its value.
    """
    if global_limit is not None and no_global_limit:
        usage_error("give either --global-limit N or --no-global-limit, not both")
    if rate_limit is not None and no_rate_limit:
        usage_error("give either --rate-limit RATE or --no-rate-limit, not both")
    if partition_by is not None and no_partition_by:
        usage_error("give either --partition-by KWARG|POSITION or --no-partition-by, not both")
    changes: dict[str, Any] = {}
    if global_limit is not None or no_global_limit:
        changes["global_limit"] = global_limit
    if rate_limit is not None or no_rate_limit:
        changes["rate_limit"] = rate_limit
    if partition_by is not None or no_partition_by:
        rule = partition_by
        changes["partition_by"] = int(rule) if rule is not None and rule.isdigit() else rule
    if not changes:
        usage_error(
            "give --global-limit N, --no-global-limit, --rate-limit RATE, --no-rate-limit, "
            "--partition-by KWARG|POSITION or --no-partition-by"
        )
    manager = load_manager(app_path, url)
    limits = run(manager, lambda m: m.configure_queue(name, **changes))
    if as_json:
        print_json({"queue": name, **limits_json(limits)})
        return
    print_line("queue {}: {}", name, _describe(limits))


@queue_app.command("hold")
def queue_hold(
    name: Annotated[str, typer.Argument(help="The queue.")],
    seconds: Annotated[float, typer.Argument(help="How long no job of the queue starts.")],
    key: Annotated[
        str | None, typer.Option("--key", help="Hold only this key of a partitioned queue.")
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Hold a queue back on every node for SECONDS, as a job raising RateLimited does.

    A hold only grows: a shorter one than the hold in place changes nothing.
    """
    run(load_manager(app_path, url), lambda m: m.hold_queue(name, seconds=seconds, key=key))
    what = name if key is None else f"{name} key {key!r}"
    print_line("queue {}: held back for {} s (or longer if already held)", what, f"{seconds:g}")


@queue_app.command("release")
def queue_release(
    name: Annotated[str, typer.Argument(help="The queue.")],
    key: Annotated[
        str | None, typer.Option("--key", help="Release only this key of a partitioned queue.")
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """End a queue's hold (or one key's) now."""
    run(load_manager(app_path, url), lambda m: m.hold_queue(name, seconds=None, key=key))
    print_line("queue {}: released", name if key is None else f"{name} key {key!r}")


@queue_app.command("limits")
def queue_limits(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """List the queues that have limits, with how many of their jobs run now."""

    async def work(m: TaskManager) -> list[dict[str, Any]]:
        flows = await m.queue_flow()
        now = m.clock.now()
        counts = (await m.get_statistics())["queues"] if flows else {}
        rows = []
        for queue in sorted(flows):
            flow = flows[queue]
            held = flow.held_until if flow.held_until and flow.held_until > now else None
            if flow.limits.is_empty and held is None:
                continue  # a hold that ended: nothing left to show
            rate = flow.limits.rate_limit
            started = None if rate is None else flow.used_in(rate.window_of(now))
            rows.append(
                {
                    "queue": queue,
                    **limits_json(flow.limits),
                    "running": counts.get(queue, {}).get(JobState.RUNNING.value, 0),
                    "started_in_window": started,
                    "held_until": None if held is None else held.isoformat(),
                    "waits": {r: n for r, n in sorted(flow.waits.items()) if n},
                }
            )
        return rows

    rows = run(load_manager(app_path, url), work)
    if as_json:
        print_json(rows)
        return
    if not rows:
        core.console.print("no queue has limits")
        return
    table = Table(title="queue limits")
    columns = ("queue", "partition by", "global limit", "running", "rate limit", "started")
    for col in (*columns, "held until", "held back"):
        table.add_column(col, justify="right" if col in columns[2:] else "left")
    for row in rows:
        table.add_row(
            plain(row["queue"]),
            plain(row["partition_by"] or "-"),
            _number(row["global_limit"]),
            str(row["running"]),
            row["rate_limit"] or "-",
            _number(row["started_in_window"]),
            row["held_until"] or "-",
            ", ".join(f"{n:,} by {r.replace('_', ' ')}" for r, n in row["waits"].items()) or "-",
        )
    core.console.print(table)


def limits_json(limits: QueueLimits) -> dict[str, Any]:
    """A queue's limits as JSON: the rate as its text (``"100/s"``), the rule as ``kwarg:x``."""
    rate, rule = limits.rate_limit, limits.partition_by
    return {
        "global_limit": limits.global_limit,
        "rate_limit": None if rate is None else str(rate),
        "partition_by": None if rule is None else str(rule),
    }


def _describe(limits: QueueLimits) -> str:
    parts = []
    if limits.global_limit is None:
        parts.append("no global limit")
    else:
        n = limits.global_limit
        parts.append(f"global limit {n} (at most {n} of its jobs run at once, across every worker)")
    if limits.rate_limit is None:
        parts.append("no rate limit")
    else:
        rate = limits.rate_limit
        parts.append(
            f"rate limit {rate} (at most {rate.count} of its jobs start per {rate.seconds:g} s "
            "window, across every worker)"
        )
    if limits.partition_by is not None:
        parts.append(f"partitioned by {limits.partition_by} (the limits apply to each key)")
    return "; ".join(parts)


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)
