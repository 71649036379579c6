"""What every ``taskward`` command shares: the typer apps, options, consoles and exit codes.

Owns the ``app``, ``cron_app`` and ``queue_app`` typer apps the command modules register on,
the options they share (``--app``, ``--url``, ``--json``), :func:`load_manager`, :func:`run`
(which turns a :class:`TaskwardError` into exit code 1 and one ``error:`` line on stderr),
:func:`usage_error` (one ``error:`` line, exit code 2), and the two
consoles: ``console`` (stdout) and ``err`` (stderr).

The consoles are read as ``core.console`` / ``core.err`` at each call, never imported by
name into a command module: one object per stream, so whatever replaces it (a test forcing a
terminal) reaches every command.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from taskward.errors import TaskwardError
from taskward.manager import TaskManager
from taskward.terminal import json_text, say

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
queue_app = typer.Typer(
    help="Queue limits that every worker obeys (pause and resume: taskward pause|resume).",
    no_args_is_help=True,
)
app.add_typer(queue_app, name="queue")
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
        try:
            return TaskManager(url)
        except TaskwardError as exc:  # a bad URL: one line, exit 1, as every other error
            print_line("[red]error:[/red] {}", exc, to=err)
            raise typer.Exit(1) from None
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
        print_line("[red]error:[/red] {}", exc, to=err)  # the message may quote stored text
        raise typer.Exit(1) from None


def print_line(template: str, *values: object, to: Console | None = None) -> None:
    """Print one line of our markup with stored values as plain text (see :func:`say`).

    ``to`` defaults to ``console`` (stdout); pass ``err`` for stderr.
    """
    say(to or console, template, *values)


def usage_error(message: str) -> NoReturn:
    """Print ``message`` as one ``error:`` line on stderr and exit 2 (a usage error)."""
    print_line("[red]error:[/red] {}", message, to=err)
    raise typer.Exit(2)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, with what a terminal acts on escaped."""
    console.print(json_text(data), soft_wrap=True)


def main() -> None:
    """Entry point of the ``taskward`` console script."""
    app()
