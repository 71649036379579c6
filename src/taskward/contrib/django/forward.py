"""``manage.py taskward …`` and ``manage.py taskward_worker``: taskward's CLI inside Django.

Both hand their command line to taskward's own CLI (one set of options, one ``--help``),
with ``--app`` pointing at the manager of a ``TASKS`` alias (``--backend ALIAS``, default
``default``) for every command that takes one (unless ``--app`` or ``--url`` is given).
``manage.py`` has set Django up, and ``taskward.contrib.django`` imported each app's tasks
module, before the command runs. A worker without ``-q`` serves the alias's ``QUEUES``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TextIO

from taskward.contrib.django.worker import app_path, backend_for
from taskward.errors import InvalidOptions, TaskwardError

__all__ = ["django_args", "forward"]
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

    from taskward.cli import app

    alias, rest = _pop_backend(django_args(args))
    try:
        rest = _with_app([*named, *rest], alias)
    except TaskwardError as exc:
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
        # As a program, so that click reports every error as the CLI does, then exits.
        command.main(args=rest, prog_name=prog, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    return code if isinstance(code, int) else (0 if code is None else 1)


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
    if "app_path" in names and not _has(rest, "--app", "--url", "-a"):
        extra = ["--app", app_path(alias)]
        backend = backend_for(alias)  # a clear error now for an alias that is not taskward's
        if path == ["worker"] and not _has(rest, "--queue", "-q"):
            if not backend.queues:
                raise InvalidOptions(
                    f"TASKS[{alias!r}]['QUEUES'] is empty (any queue): name the queues this "
                    "worker serves with -q NAME"
                )
            for queue in sorted(backend.queues):
                extra += ["-q", queue]
    return [*path, *extra, *rest]


def _has(args: list[str], *names: str) -> bool:
    """True when ``args`` gives one of the options ``names`` (``-qNAME`` included)."""
    for arg in args:
        for name in names:
            if arg == name or arg.startswith(f"{name}="):
                return True
            if len(name) == 2 and arg.startswith(name):  # -qNAME: a short option glued on
                return True
    return False


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
