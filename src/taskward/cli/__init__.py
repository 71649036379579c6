r"""The ``taskward`` command: one thin function per subcommand over the TaskManager API.

Point it at your manager with ``--app module:attribute`` (or ``TASKWARD_APP``); admin commands
also work without one, on ``--url`` / ``TASKWARD_URL`` (default ``sqlite:///./taskward.db``).

Exit codes: 0 done; 1 an error, printed as one ``error:`` line on stderr; 2 a usage error (a bad
option or argument). ``taskward audit`` has its own (see its ``--help``).

Everything read from the store (task and queue names, error messages, tracebacks, arguments,
results, tags, worker ids) is printed as inert text: never as rich markup, and with control
characters shown escaped (``\x1b``), so that a stored string can neither crash a command nor
drive the operator's terminal.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

from taskward.cli.output import display_url, json_text, plain, say
from taskward.errors import TaskwardError
from taskward.jobs import Job, JobState, Schedule
from taskward.manager import TaskManager
from taskward.tasks import shown_job

T = TypeVar("T")
app = typer.Typer(
    name="taskward",
    help="Background work that never fails silently: durable jobs and safe asyncio tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cron_app = typer.Typer(help="Recurring schedules.", no_args_is_help=True)
app.add_typer(cron_app, name="cron")
# Tables are wide: off a terminal (pipes, CI logs) give them room instead of folding cells.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

AppOpt = Annotated[
    str | None,
    typer.Option("--app", "-a", envvar="TASKWARD_APP", help="Your manager, as module:attribute."),
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="TASKWARD_URL", help="Backend URL (when --app is not given)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def load_manager(app_path: str | None, url: str | None) -> TaskManager:
    """Import ``module:attribute`` (adding the cwd to sys.path), or build a manager from url."""
    if not app_path:
        return TaskManager(url)
    module_name, _, attr = app_path.partition(":")
    sys.path.insert(0, str(Path.cwd()))
    try:
        obj: Any = importlib.import_module(module_name)
        for part in (attr or "app").split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise typer.BadParameter(f"cannot load {app_path!r}: {exc}", param_hint="--app") from exc
    if not isinstance(obj, TaskManager):
        raise typer.BadParameter(f"{app_path!r} is not a TaskManager", param_hint="--app")
    return obj


LOOPS = ("auto", "asyncio", "uvloop")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a command runs on: ``uvloop`` where installed (``auto``), or as named.

    uvloop runs the same worker on less CPU per job (its callbacks and socket I/O are C):
    pgqueuer's and uvicorn's runners pick it up the same way. None means asyncio's own loop.
    """
    if name not in LOOPS:
        raise typer.BadParameter(f"{name!r}: choose from {', '.join(LOOPS)}", param_hint="--loop")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            hint = (
                "no uvloop on Windows"
                if sys.platform == "win32"
                else "pip install 'taskward[uvloop]'"
            )
            raise typer.BadParameter(
                f"uvloop is not installed ({hint})", param_hint="--loop"
            ) from None
        return None
    return cast("Callable[[], asyncio.AbstractEventLoop]", uvloop.new_event_loop)


def run(
    manager: TaskManager,
    work: Callable[[TaskManager], Awaitable[T]],
    loop: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run ``work(manager)`` in a fresh event loop, closing the manager after; errors exit 1.

    ``loop`` makes the loop (default: asyncio's own).
    """

    async def main() -> T:
        try:
            return await work(manager)
        finally:
            await manager.close()

    try:
        with asyncio.Runner(loop_factory=loop) as runner:
            return runner.run(main())
    except TaskwardError as exc:
        _say("[red]error:[/red] {}", exc, to=err)  # the message may quote stored text
        raise typer.Exit(1) from None


def _dt(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _say(template: str, *values: object, to: Console | None = None) -> None:
    """Print one line of our markup with stored values as plain text (see :func:`say`)."""
    say(to or console, template, *values)


def _print_json(data: Any) -> None:
    console.print(json_text(data), soft_wrap=True)


def _print_jobs(jobs: list[Job], as_json: bool, footer: str = "") -> None:
    if as_json:
        _print_json([shown_job(j) for j in jobs])
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
    console.print(table)


def _parse_queues(specs: list[str]) -> dict[str, int]:
    queues: dict[str, int] = {}
    for spec in specs:
        name, _, n = spec.partition("=")
        try:
            queues[name] = int(n) if n else 10
        except ValueError:
            raise typer.BadParameter(f"{spec!r}: use NAME or NAME=CONCURRENCY") from None
    return queues


@app.command()
def worker(
    app_path: AppOpt = None,
    url: UrlOpt = None,
    queue: Annotated[
        list[str] | None, typer.Option("--queue", "-q", help="NAME=CONCURRENCY (repeatable).")
    ] = None,
    burst: Annotated[bool, typer.Option(help="Run until no job is due, then exit.")] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING…")] = "INFO",
    wait_for_backend: Annotated[
        float, typer.Option(help="Seconds to keep retrying an unreachable store at start-up.")
    ] = 60.0,
    loop: Annotated[
        str,
        typer.Option(
            envvar="TASKWARD_LOOP",
            help="Event loop: auto (uvloop if installed), asyncio or uvloop.",
        ),
    ] = "auto",
) -> None:
    """Run a worker until SIGINT/SIGTERM (graceful: running jobs finish or are released)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    factory = loop_factory(loop.lower())
    manager = load_manager(app_path, url)
    queues = _parse_queues(queue or []) or None
    if burst:
        result = run(manager, lambda m: m.drain(list(queues) if queues else None), factory)
        console.print(f"burst done: {result.counts}")
        return
    run(manager, lambda m: m.run_worker(queues, wait_for_backend=wait_for_backend), factory)


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
        console.print(f"enqueued {len(jobs)} job(s)")
        return
    job = run(
        manager, lambda m: m.enqueue_task(task, args=parsed_args, kwargs=parsed_kwargs, **opts)
    )
    _say("enqueued job {} ({}) on {}: {}", job.id, job.task, job.queue, job.state.value)


def _read_jsonl(path: Path) -> list[Any]:
    from rich.progress import track

    calls: list[Any] = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(track(lines, description="reading", console=err), 1):
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
        _print_json(shown_job(job))
        return
    _print_jobs([job], False)
    for e in job.errors:
        _say(f"[yellow]attempt {e.attempt}[/yellow] {_dt(e.at)} {{}}: {{}}", e.kind, e.message)
        if e.traceback:
            console.print(plain(e.traceback, lines=True), soft_wrap=True)
    if job.result is not None:
        _say("result: {}", json.dumps(job.result))


@app.command()
def retry(job_id: int, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Move a failed, discarded or cancelled job back to pending."""
    job = run(load_manager(app_path, url), lambda m: m.retry_task(job_id))
    console.print(f"job {job.id}: {job.state.value}")


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
    console.print(f"job {job.id}: {job.state.value}{note}")


@app.command()
def stats(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Show job counts per queue and state, and live workers."""
    data = run(load_manager(app_path, url), lambda m: m.get_statistics())
    if as_json:
        _print_json(data)
        return
    console.print(stats_table(data))


def stats_table(data: dict[str, Any]) -> Table:
    """Render ``get_statistics()`` as a table; an estimated count reads "~N".

    Queue names are shown as plain text (see :func:`plain`): they come from the store.
    """
    table = Table(title="taskward statistics")
    table.add_column("queue")
    for s in JobState:
        table.add_column(s.value, justify="right")
    estimated: dict[str, list[str]] = data.get("estimated", {})
    for queue, counts in data["queues"].items():
        label = f"{queue} (paused)" if queue in data["paused"] else queue
        guessed = estimated.get(queue, [])
        table.add_row(
            plain(label),
            *(f"{'~' if s.value in guessed else ''}{counts[s.value]}" for s in JobState),
        )
    w = data["workers"]
    caption = f"workers: {w['total']} · busy slots {w['busy_slots']}/{w['total_slots']}"
    if estimated:
        caption += "\n~ estimated: past 10,000 finished jobs of a queue in one state"
    table.caption = caption
    return table


@app.command()
def pause(queue: str, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Pause a queue on every worker."""
    run(load_manager(app_path, url), lambda m: m.pause_queue(queue))
    _say("queue {} paused", queue)


@app.command()
def resume(queue: str, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Resume a paused queue."""
    run(load_manager(app_path, url), lambda m: m.resume_queue(queue))
    _say("queue {} resumed", queue)


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
    console.print(f"deleted {n} job(s)")


@app.command()
def migrate(app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Create or upgrade the backend's schema."""
    manager = load_manager(app_path, url)

    async def work(m: TaskManager) -> None:
        await m.backend.open()
        await m.backend.migrate()

    run(manager, work)
    _say("schema of {} is up to date", display_url(manager.backend.url))


@cron_app.command("list")
def cron_list(as_json: JsonOpt = False, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """List recurring schedules with their next fire time."""
    manager = load_manager(app_path, url)
    schedules = run(manager, lambda m: m.list_recurring_tasks())
    rows = [
        {"name": s.name, "task": s.task, "cron": s.cron, "timezone": s.timezone,
         "next": _next_fire(manager, s)}
        for s in schedules
    ]  # fmt: skip
    if as_json:
        _print_json(rows)
        return
    table = Table(title="recurring schedules")
    for col in ("name", "task", "cron", "timezone", "next"):
        table.add_column(col)
    for row in rows:
        shown = {**row, "next": row["next"] or "never (invalid cron or time zone)"}
        table.add_row(*(plain(value) for value in shown.values()))
    console.print(table)


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
def cron_cancel(name: str, app_path: AppOpt = None, url: UrlOpt = None) -> None:
    """Delete a recurring schedule."""
    if not run(load_manager(app_path, url), lambda m: m.cancel_recurring_task(name)):
        _say("[red]error:[/red] no recurring schedule named {}", repr(name), to=err)
        raise typer.Exit(1)
    _say("recurring schedule {} cancelled", name)


@app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],  # --help goes to the audit's own parser
    }
)
def audit(ctx: typer.Context) -> None:
    """Find bare asyncio.create_task / ensure_future calls (see `taskward audit --help`)."""
    from taskward.audit import main as audit_main

    raise typer.Exit(audit_main(ctx.args))


@app.command()
def dashboard(
    ctx: typer.Context,
    app_path: AppOpt = None,
    url: UrlOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TASKWARD_ADMIN_TOKEN",
            help="Bearer token for the admin API. Prefer TASKWARD_ADMIN_TOKEN: a value given "
            "here is visible to other users of the machine (ps, /proc).",
        ),
    ] = None,
    user: Annotated[
        str, typer.Option(envvar="TASKWARD_ADMIN_USER", help="Basic-auth user name.")
    ] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            envvar="TASKWARD_ADMIN_PASSWORD",
            help="Basic-auth password (dashboard buttons). Prefer TASKWARD_ADMIN_PASSWORD: a "
            "value given here is visible to other users of the machine (ps, /proc).",
        ),
    ] = None,
    read_only: Annotated[bool, typer.Option(help="Refuse every change.")] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING…")] = "INFO",
) -> None:
    """Serve the dashboard, admin API, /metrics and /health (needs the web extra).

    Without --token or --password everything is read-only. Give them in the environment
    (TASKWARD_ADMIN_TOKEN, TASKWARD_ADMIN_PASSWORD): a command line is public on the machine.
    """
    _warn_secrets_on_command_line(ctx, "token", "password")
    import uvicorn

    from taskward.web import AdminAuth, create_app

    manager = load_manager(app_path, url)
    auth = None
    if token or password:
        auth = AdminAuth(token=token, username=user if password else None, password=password)
    elif not read_only:
        err.print("no --token/--password given: the dashboard is read-only")
    web_app = create_app(manager, auth=auth, read_only=read_only)
    where = display_url(manager.backend.url)
    _say("taskward dashboard on http://{}:{}/dashboard ({})", host, port, where)
    uvicorn.run(web_app, host=host, port=port, log_level=log_level.lower())


def _warn_secrets_on_command_line(ctx: typer.Context, *names: str) -> None:
    """Warn, in one stderr line, about secret options given on the command line.

    Any user of the machine can read a process's arguments (``ps``, ``/proc/PID/cmdline``),
    and shells keep them in their history; its environment only its own user and root can.
    """
    given = [
        param
        for param in ctx.command.params
        if param.name in names
        # By name: typer may bring its own copy of click, with its own ParameterSource enum.
        and getattr(ctx.get_parameter_source(param.name), "name", None) == "COMMANDLINE"
    ]
    if not given:
        return
    options = " and ".join(param.opts[0] for param in given)
    variables = " and ".join(str(param.envvar) for param in given)
    _say(
        "[yellow]warning:[/yellow] {} on the command line {} visible to other users of this "
        "machine (ps, /proc) and in shell history; set {} instead",
        options,
        "are" if len(given) > 1 else "is",
        variables,
        to=err,
    )


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="Where the demo's jobs live.")] = "sqlite:///./demo.db",
) -> None:
    """Run the demo: a realistic mix of jobs on SQLite, with a live view."""
    from taskward.demo import run_demo

    raise typer.Exit(run_demo(url))


def main() -> None:
    """Entry point of the ``taskward`` console script."""
    app()
