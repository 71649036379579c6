"""``manage.py taskward …`` and ``manage.py taskward_worker``: taskward's CLI inside Django.

Both hand their command line to taskward's own CLI (one set of options, one ``--help``),
with ``--app`` pointing at the manager of a ``TASKS`` alias (``--backend ALIAS``, default
``default``) for every command that takes one. ``manage.py`` has set Django up, and
``taskward.contrib.django`` imported each app's tasks module, before the command runs. A
worker without ``-q`` serves the alias's ``QUEUES``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TextIO

from taskward.contrib.django.worker import BACKEND_ENV, backend_for
from taskward.errors import TaskwardError

__all__ = ["APP_PATH", "django_args", "forward"]

APP_PATH = "taskward.contrib.django.worker:manager"
# Handled by manage.py itself before the command runs; never forwarded to taskward.
_DJANGO_VALUED = ("--settings", "--pythonpath")
_DJANGO_FLAGS = ("--traceback", "--no-color", "--force-color")


def forward(
    args: Sequence[str],
    prog: str,
    *,
    standalone: bool,
    stderr: TextIO,
    named: Sequence[str] = (),
) -> int:
    """Run ``taskward NAMED ARGS`` for a ``TASKS`` alias; return its exit status.

    ``named``: the command ``prog`` already names (``("worker",)`` for ``taskward_worker``:
    its usage line then reads ``manage.py taskward_worker [OPTIONS]``). ``standalone``: as a
    program (click exits the process, as ``manage.py`` expects); else the status is returned
    (``call_command``).
    """
    import typer
    from django.core.exceptions import ImproperlyConfigured

    from taskward.cli import app

    alias, rest = _pop_backend(django_args(args))
    os.environ[BACKEND_ENV] = alias  # the --app attribute reads it; children inherit it
    try:
        rest = _with_app([*named, *rest], alias)
    except (ImproperlyConfigured, TaskwardError) as exc:
        stderr.write(f"error: {exc}\n")
        if standalone:
            raise SystemExit(1) from None
        return 1
    command: Any = typer.main.get_command(app)
    for name in named:
        command, rest = command.commands[name], rest[1:]
    if standalone:
        command.main(args=rest, prog_name=prog, standalone_mode=True)
        return 0
    try:
        command.main(args=rest, prog_name=prog, standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def django_args(argv: Sequence[str]) -> list[str]:
    """The command line without the options ``manage.py`` already applied."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _DJANGO_VALUED:
            skip = True
        elif arg.startswith(tuple(f"{name}=" for name in _DJANGO_VALUED)) or arg in _DJANGO_FLAGS:
            continue
        else:
            out.append(arg)
    return out


def _with_app(args: list[str], alias: str) -> list[str]:
    """``args`` with ``--app`` after the command's name, when the command takes one."""
    import typer

    from taskward.cli import app

    group: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while rest and rest[0] in getattr(group, "commands", {}):
        path.append(rest.pop(0))
        group = group.commands[path[-1]]
    if "--help" in rest or "-h" in rest or not path:
        return [*path, *rest]
    names = {param.name for param in group.params}
    extra: list[str] = []
    if "app_path" in names and not _has(rest, "--app"):
        extra = ["--app", APP_PATH]
    if path == ["worker"] and not _has(rest, "--queue", "-q"):
        for queue in sorted(backend_for(alias).queues) or ["default"]:
            extra += ["-q", queue]
    elif "app_path" in names:
        backend_for(alias)  # a clear error now for an alias that is not taskward's
    return [*path, *extra, *rest]


def _has(args: list[str], *names: str) -> bool:
    return any(a in names or a.startswith(tuple(f"{n}=" for n in names)) for a in args) or (
        "-q" in names and any(a.startswith("-q") for a in args)
    )


def _pop_backend(args: list[str]) -> tuple[str, list[str]]:
    alias = "default"
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--backend":
            alias = next(it, alias)
        elif arg.startswith("--backend="):
            alias = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return alias, rest
