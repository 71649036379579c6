"""The queue commands: pause and resume, and the limits every worker obeys, set at run time.

Owns ``taskward pause|resume QUEUE`` (top-level, on ``app``) and, on ``queue_app``, ``queue
configure NAME [--global-limit N | --no-global-limit] [--rate-limit 100/s |
--no-rate-limit]``, ``queue hold NAME SECONDS``, ``queue release NAME`` and ``queue limits``.

A queue name is free text, so a typo would pause (or hold, or release) a queue no job will
ever use, and report success. Pause, resume, hold and release therefore refuse a queue that
taskward does not know (:func:`queue_known`): no registered task of ``--app`` uses it, and
the store has no job, live worker, schedule, pause or limit of it. ``--force`` acts anyway
(preparing a queue before its first job). ``queue configure`` needs no ``--force``: storing a
queue's limits ahead of its first job is what it is for, and it prints them back in full.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from taskward.cli import core
from taskward.cli.core import (
    AppOpt,
    JsonOpt,
    UrlOpt,
    app,
    fail,
    load_manager,
    print_json,
    print_line,
    queue_app,
    require_store,
    run,
    usage_error,
)
from taskward.jobs import JobState, validate_queue_name, validate_seconds
from taskward.limits import QueueLimits
from taskward.manager import TaskManager
from taskward.terminal import plain

QueueArg = Annotated[str, typer.Argument(metavar="QUEUE", help="The queue's name.")]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Act on a queue taskward does not know yet (no task, job, worker or setting of it).",
    ),
]


@app.command()
def pause(
    queue: QueueArg, force: ForceOpt = False, app_path: AppOpt = None, url: UrlOpt = None
) -> None:
    """Pause a queue on every worker: none of its jobs starts until it is resumed.

    Running jobs finish. A queue taskward does not know is refused unless --force.

    Example: taskward pause emails
    """
    manager = _manager_for(queue, force, app_path, url)

    async def work(m: TaskManager) -> tuple[bool, bool]:
        known, paused = await _queue_facts(m, queue)
        if not (known or force):
            return False, False
        if queue not in paused:
            await m.pause_queue(queue)
        return True, queue in paused

    known, was_paused = run(manager, work)
    if not known:
        _refuse_unknown(queue, "pause", app_path)
    print_line("queue {} was already paused" if was_paused else "queue {} paused", queue)


@app.command()
def resume(
    queue: QueueArg, force: ForceOpt = False, app_path: AppOpt = None, url: UrlOpt = None
) -> None:
    """Resume a paused queue: workers start its jobs again.

    A queue taskward does not know is refused unless --force; a known queue that is not
    paused is left as it is (exit 0, saying so).

    Example: taskward resume emails
    """
    manager = _manager_for(queue, force, app_path, url)

    async def work(m: TaskManager) -> tuple[bool, bool]:
        known, paused = await _queue_facts(m, queue)
        if not (known or force):
            return False, False
        if queue in paused:
            await m.resume_queue(queue)
        return True, queue in paused

    known, was_paused = run(manager, work)
    if not known:
        _refuse_unknown(queue, "resume", app_path)
    print_line("queue {} resumed" if was_paused else "queue {} was not paused", queue)


def _manager_for(queue: str, force: bool, app_path: str | None, url: str | None) -> TaskManager:
    """The manager of a command on ``queue``, refusing a bad name or a missing store first.

    Without ``--force``, a queue none of the app's tasks uses must be known to the store:
    a SQLite file that does not exist knows nothing, and is refused rather than created.
    """
    validate_queue_name(queue)
    manager = load_manager(app_path, url)
    if not force and queue not in registered_queues(manager):
        require_store(manager)
    return manager


def registered_queues(manager: TaskManager) -> set[str]:
    """The queues the registered tasks of ``manager`` put their jobs on."""
    default = manager.settings.default_queue
    return {task.options.queue or default for task in manager.registry}


async def _queue_facts(manager: TaskManager, queue: str) -> tuple[bool, set[str]]:
    """Whether taskward knows ``queue`` (:func:`queue_known`), and the paused queues."""
    stats = await manager.get_statistics()
    return await queue_known(manager, queue, stats=stats), set(stats["paused"])


async def queue_known(
    manager: TaskManager, queue: str, *, stats: dict[str, Any] | None = None
) -> bool:
    """True when something taskward knows uses ``queue``.

    A registered task of ``manager`` puts jobs on it, or the store has one of its jobs (any
    state), a live worker serving it, a schedule enqueuing on it, or a pause, limit or hold
    of it. ``stats``: :meth:`TaskManager.get_statistics`, when the caller has it already.
    """
    if queue in registered_queues(manager):
        return True
    if stats is None:
        stats = await manager.get_statistics()
    if queue in stats["queues"] or queue in stats["paused"] or queue in stats["limits"]:
        return True
    if any(queue in node["queues"] for node in stats["workers"]["nodes"]):
        return True
    if queue in await manager.queue_flow():  # a hold, or limits, even past ones
        return True
    return any(s.queue == queue for s in await manager.list_recurring_tasks())


def _refuse_unknown(queue: str, verb: str, app_path: str | None) -> NoReturn:
    """Exit 1: ``queue`` is unknown, so ``verb`` would act on nothing (a typo, most likely)."""
    hint = "" if app_path else "; pass --app so that your tasks' queues count"
    fail(
        f"unknown queue {queue!r}: no registered task uses it, and the store has no job, "
        f"worker, schedule or setting of it (check the name{hint}; or give --force to "
        f"{verb} it anyway)"
    )


@queue_app.command("configure")
def queue_configure(
    name: QueueArg,
    global_limit: Annotated[
        int | None,
        typer.Option(
            "--global-limit",
            metavar="N",
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
            metavar="RATE",
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
            metavar="KWARG|POSITION",
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

    A limit not named keeps its value. The queue needs no job yet: limits may be set first.

    Example: taskward queue configure emails --global-limit 5 --rate-limit 100/m
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
    name: QueueArg,
    seconds: Annotated[
        float, typer.Argument(metavar="SECONDS", help="How long no job of the queue starts.")
    ],
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="KEY", help="Hold only this key of a partitioned queue."),
    ] = None,
    force: ForceOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Hold a queue back on every node for SECONDS, as a job raising RateLimited does.

    A hold only grows: a shorter one than the hold in place changes nothing. A queue
    taskward does not know is refused unless --force.

    Example: taskward queue hold api 600
    """
    validate_seconds("seconds", seconds)  # bad input first: before the store is looked at
    manager = _manager_for(name, force, app_path, url)

    async def work(m: TaskManager) -> bool:
        if not (force or await queue_known(m, name)):
            return False
        await m.hold_queue(name, seconds=seconds, key=key)
        return True

    if not run(manager, work):
        _refuse_unknown(name, "hold", app_path)
    what = name if key is None else f"{name} key {key!r}"
    print_line("queue {}: held back for {} s (or longer if already held)", what, f"{seconds:g}")


@queue_app.command("release")
def queue_release(
    name: QueueArg,
    key: Annotated[
        str | None,
        typer.Option("--key", metavar="KEY", help="Release only this key of a partitioned queue."),
    ] = None,
    force: ForceOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """End a queue's hold (or one key's) now.

    A queue taskward does not know is refused unless --force.

    Example: taskward queue release api
    """
    manager = _manager_for(name, force, app_path, url)

    async def work(m: TaskManager) -> bool:
        if not (force or await queue_known(m, name)):
            return False
        await m.hold_queue(name, seconds=None, key=key)
        return True

    if not run(manager, work):
        _refuse_unknown(name, "release", app_path)
    print_line("queue {}: released", name if key is None else f"{name} key {key!r}")


@queue_app.command("limits")
def queue_limits(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """List the queues that have limits, with how many of their jobs run now.

    Example: taskward queue limits --json
    """

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

    rows = run(load_manager(app_path, url, must_exist=True), work)
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
