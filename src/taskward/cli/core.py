"""What every ``taskward`` command shares: the typer apps, options, consoles and exit codes.

Owns the ``app``, ``cron_app`` and ``queue_app`` typer apps the command modules register on,
and :class:`TaskwardGroup`, the class of all three: a :class:`TaskwardError` raised anywhere in
a command becomes one ``error:`` line on stderr and exit code 1 (:data:`EXIT_ERROR`), and
``--help`` shows option names, never type tags. Also the options the commands share
(``--app``, ``--url``, ``--json``, a job id), :func:`load_manager` (which resolves ``--app``
and, for a command that only reads, refuses a SQLite store that does not exist:
:func:`require_store`), :func:`run`, :func:`fail` and :func:`usage_error` (one ``error:``
line, exit 1 or 2), ``taskward --version``, and the two consoles: ``console`` (stdout) and
``err`` (stderr).

The consoles are read as ``core.console`` / ``core.err`` at each call, never imported by
name into a command module: one object per stream, so whatever replaces it (a test forcing a
terminal) reaches every command.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Final, NoReturn, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from taskward.backends.base import Capability
from taskward.errors import InvalidOptions, TaskwardError
from taskward.manager import TaskManager
from taskward.terminal import json_text, say
from taskward.version import __version__

T = TypeVar("T")

EXIT_ERROR: Final = 1
"""Exit code of a command that failed: any :class:`TaskwardError` (bad input, an unknown job,
queue or schedule, a refused change, a store that is missing or unreachable)."""
EXIT_USAGE: Final = 2
"""Exit code of a usage error: a bad option or argument, an ``--app`` that cannot be loaded."""
MAX_ID: Final = 2**63 - 1
"""The largest job or workflow id any store hands out (a signed 64-bit integer)."""


class TaskwardGroup(TyperGroup):
    """The command groups of ``taskward``: one ``error:`` line per error, readable help.

    A :class:`TaskwardError` raised anywhere in a command (loading ``--app``, building the
    manager from ``--url``, talking to the store, printing the result) is printed as one
    ``error:`` line on stderr and exits :data:`EXIT_ERROR`: never a traceback, whichever
    command raised it. Anything else is a bug and keeps its traceback.

    Help: typer shows an option without a metavar by its Python type (``<list[str]>``,
    ``<bool>``); here a flag shows nothing after its name, and any other option its name in
    capitals, unless the command names a metavar of its own (``STATE``, ``NAME=CONCURRENCY``).
    """

    def invoke(self, ctx: Any) -> Any:
        """Run the command; a :class:`TaskwardError` becomes one line and exit code 1."""
        try:
            return super().invoke(ctx)
        except TaskwardError as exc:
            fail(str(exc))

    def get_params(self, ctx: Any) -> Any:
        """The group's own options (``--help``, ``--version``), with readable metavars."""
        params = super().get_params(ctx)
        _readable_metavars(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command ``cmd_name``, its options' metavars made readable for its help."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _readable_metavars(command.get_params(ctx))
        return command


def _readable_metavars(params: Iterable[Any]) -> None:
    """Give each option without a metavar one a reader understands (see TaskwardGroup)."""
    for param in params:
        if getattr(param, "param_type_name", None) != "option" or param.metavar is not None:
            continue
        param.metavar = "" if getattr(param, "is_flag", False) else str(param.name).upper()


app = typer.Typer(
    name="taskward",
    help="Background work that never fails silently: durable jobs and safe asyncio tasks.",
    epilog="Example: taskward init, then the two commands it prints.",
    cls=TaskwardGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cron_app = typer.Typer(
    help="Recurring schedules.",
    epilog="Example: taskward cron list",
    cls=TaskwardGroup,
    no_args_is_help=True,
)
app.add_typer(cron_app, name="cron")
queue_app = typer.Typer(
    help="Queue limits that every worker obeys (pause and resume: taskward pause|resume).",
    epilog="Example: taskward queue configure emails --global-limit 5",
    cls=TaskwardGroup,
    no_args_is_help=True,
)
app.add_typer(queue_app, name="queue")
# Tables are wide: off a terminal (pipes, CI logs) give them room instead of folding cells.
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app",
        "-a",
        envvar="TASKWARD_APP",
        metavar="MODULE[:ATTR]",
        help="Your manager: module:attribute, or a module holding one TaskManager.",
    ),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TASKWARD_URL",
        metavar="URL",
        help="Backend URL when --app is not given (default: sqlite:///./taskward.db).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def id_in_range(value: int) -> int:
    """Refuse (a usage error) an id no store can hold: SQLite would overflow on it."""
    if not 1 <= value <= MAX_ID:
        raise typer.BadParameter(f"{value} is not an id: ids are whole numbers from 1")
    return value


JobIdArg = Annotated[
    int,
    typer.Argument(
        metavar="ID", help="The job's id (taskward jobs lists them).", callback=id_in_range
    ),
]


def _print_version(value: bool) -> None:
    if value:
        console.print(f"taskward {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print taskward's version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """The options of ``taskward`` itself, before any command (``--version``)."""


def load_manager(app_path: str | None, url: str | None, *, must_exist: bool = False) -> TaskManager:
    """The manager named by ``--app`` (see :func:`import_manager`), or one built from ``url``.

    ``must_exist``: the command only reads or changes what is stored, so a SQLite file that
    does not exist is refused (:func:`require_store`) instead of created empty.
    """
    manager = import_manager(app_path) if app_path else _manager_for(url)
    if must_exist:
        require_store(manager)
    return manager


def _manager_for(url: str | None) -> TaskManager:
    """A manager on ``url``; a URL its backend cannot parse raises one :class:`TaskwardError`."""
    try:
        return TaskManager(url)
    except TaskwardError:
        raise
    except ValueError as exc:
        # A backend's URL parser may fail inside urllib ("Invalid IPv6 URL"): still the
        # operator's input, so one error line. The URL itself is left out: it may hold a
        # password, and the text that failed to parse cannot be masked reliably.
        raise InvalidOptions(
            f"invalid backend URL ({exc}): use sqlite:///path, postgresql://user@host/db, "
            "redis://host:port/db or memory://"
        ) from None


def import_manager(app_path: str) -> TaskManager:
    """Import the manager of ``--app``: ``module:attribute`` or ``module``.

    The current folder comes first on ``sys.path``, so ``--app tasks`` finds ``./tasks.py``.
    A bare module must hold exactly one :class:`TaskManager` at its top level (under any
    name: ``tw``, ``app``…); with several, or none, it is refused, naming what it found.
    """
    module_name, _, attr = app_path.partition(":")
    if not module_name:
        usage_error(f"--app {app_path}: give a module, as module:attribute or module")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        usage_error(f"cannot import {module_name} (--app {app_path}): {exc}")
    if attr:
        return _named_manager(module, attr)
    return _only_manager(module)


def _named_manager(module: ModuleType, attr: str) -> TaskManager:
    """``module``'s TaskManager at the dotted path ``attr``."""
    obj: Any = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        usage_error(
            f"{module.__name__} has no TaskManager named {attr!r} (use --app module:attribute)"
        )
    if not isinstance(obj, TaskManager):
        usage_error(
            f"{module.__name__}:{attr} is not a TaskManager (its type is "
            f"{type(obj).__name__}; use --app module:attribute)"
        )
    return obj


def _only_manager(module: ModuleType) -> TaskManager:
    """The one TaskManager at ``module``'s top level (one object, whatever its names)."""
    found: dict[int, tuple[str, TaskManager]] = {}
    for name, value in vars(module).items():
        if isinstance(value, TaskManager):
            found.setdefault(id(value), (name, value))
    if len(found) == 1:
        (_, manager), *_ = found.values()
        return manager
    if not found:
        usage_error(f"{module.__name__} has no TaskManager (use --app module:attribute)")
    names = ", ".join(name for name, _ in found.values())
    first = next(iter(found.values()))[0]
    usage_error(
        f"{module.__name__} has {len(found)} TaskManagers ({names}): name one, as in "
        f"--app {module.__name__}:{first}"
    )


def require_store(manager: TaskManager) -> None:
    """Refuse (exit 1) when ``manager``'s store holds no taskward tables yet.

    Opening it would create them (the manager migrates on open): a command run from the
    wrong folder would report an empty store and leave a stray ``taskward.db`` behind, and a
    wrong URL would put taskward's tables into another application's database. A store that
    has them is opened as usual (and upgraded, if this taskward is newer). SQLite and
    PostgreSQL are checked; a Redis store is a set of keys, created by nothing but writes.
    """
    from taskward.backends.sqlite import SqliteBackend
    from taskward.terminal import display_url

    backend = manager.backend
    if isinstance(backend, SqliteBackend) and Capability.PERSISTENT in backend.capabilities:
        where = backend.path
        exists = os.path.exists(where) and _sqlite_has_jobs(where)
    elif backend.url.lower().startswith(("postgresql:", "postgres:")):  # psycopg is there
        where = display_url(backend.url)
        exists = _postgres_has_jobs(backend)
    else:
        return
    if not exists:
        fail(
            f"no store at {where} (set --url or TASKWARD_URL, or run from the folder that has "
            "it; `taskward migrate` creates one)"
        )


def _sqlite_has_jobs(path: str) -> bool:
    """True when the SQLite file at ``path`` has taskward's jobs table (read-only look)."""
    import sqlite3

    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        ) as con:
            found = con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'taskward_jobs'"
            ).fetchone()
    except sqlite3.DatabaseError:
        return True  # not readable this way (locked, encrypted…): let the open report it
    return found is not None


def _postgres_has_jobs(backend: Any) -> bool:
    """True when the PostgreSQL store's schema has taskward's jobs table."""
    import psycopg

    try:
        with psycopg.connect(backend.config.conninfo, connect_timeout=10) as con:
            row = con.execute(
                "SELECT to_regclass(%s)", (f"{backend.config.schema}.taskward_jobs",)
            ).fetchone()
    except psycopg.Error:
        return True  # unreachable now: the open reports it, as one line
    return row is not None and row[0] is not None


def run(
    manager: TaskManager,
    work: Callable[[TaskManager], Awaitable[T]],
    loop: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> T:
    """Run ``work(manager)`` in a fresh event loop, closing the manager after.

    ``loop`` makes the loop (default: asyncio's own). A :class:`TaskwardError` goes up to
    :class:`TaskwardGroup`, which prints it as one line and exits 1.
    """

    async def main() -> T:
        try:
            return await work(manager)
        finally:
            await manager.close()

    with asyncio.Runner(loop_factory=loop) as runner:
        return runner.run(main())


def print_line(template: str, *values: object, to: Console | None = None) -> None:
    """Print one line of our markup with stored values as plain text (see :func:`say`).

    ``to`` defaults to ``console`` (stdout); pass ``err`` for stderr.
    """
    say(to or console, template, *values)


def fail(message: str, *, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``message`` as one ``error:`` line on stderr and exit ``code`` (1: an error).

    The message is printed as inert text: it may quote stored strings.
    """
    print_line("[red]error:[/red] {}", message, to=err)
    raise typer.Exit(code)


def usage_error(message: str) -> NoReturn:
    """Print ``message`` as one ``error:`` line on stderr and exit 2 (a usage error)."""
    fail(message, code=EXIT_USAGE)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, with what a terminal acts on escaped."""
    console.print(json_text(data), soft_wrap=True)


def main() -> None:
    """Entry point of the ``taskward`` console script."""
    app()
