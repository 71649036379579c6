"""The commands that hand over to another part of taskward: audit, dashboard and demo.

Owns ``taskward audit`` (its arguments go untouched to :mod:`taskward.audit`), ``taskward
dashboard`` (:mod:`taskward.web` under uvicorn, with the warning when a secret was given on
the command line) and ``taskward demo`` (:mod:`taskward.demo`). Each imports its part only
when run, so ``taskward --help`` loads none of them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from taskward.cli import core
from taskward.cli.core import AppOpt, UrlOpt, app, load_manager, print_line
from taskward.terminal import display_url


@app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],  # --help goes to the audit's own parser
    }
)
def audit(ctx: typer.Context) -> None:
    """Find bare asyncio.create_task / ensure_future calls (see `taskward audit --help`).

    Example: taskward audit src/
    """
    from taskward.audit import main as audit_main

    raise typer.Exit(audit_main(ctx.args))


@app.command()
def dashboard(
    ctx: typer.Context,
    app_path: AppOpt = None,
    url: UrlOpt = None,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TASKWARD_ADMIN_TOKEN",
            metavar="TOKEN",
            help="Bearer token for the admin API. Prefer TASKWARD_ADMIN_TOKEN: a value given "
            "here is visible to other users of the machine (ps, /proc).",
        ),
    ] = None,
    user: Annotated[
        str,
        typer.Option(envvar="TASKWARD_ADMIN_USER", metavar="NAME", help="Basic-auth user name."),
    ] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            envvar="TASKWARD_ADMIN_PASSWORD",
            metavar="PASSWORD",
            help="Basic-auth password (dashboard buttons). Prefer TASKWARD_ADMIN_PASSWORD: a "
            "value given here is visible to other users of the machine (ps, /proc).",
        ),
    ] = None,
    read_only: Annotated[bool, typer.Option(help="Refuse every change.")] = False,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="DEBUG, INFO, WARNING…")] = "INFO",
) -> None:
    """Serve the dashboard, admin API, /metrics and /health (needs the web extra).

    Without --token or --password everything is read-only. Give them in the environment
    (TASKWARD_ADMIN_TOKEN, TASKWARD_ADMIN_PASSWORD): a command line is public on the machine.
    Like the worker, it creates a SQLite store that does not exist yet (either may start
    first).

    Example: TASKWARD_ADMIN_PASSWORD=s3cret taskward dashboard --app tasks --port 8000
    """
    _warn_secrets_on_command_line(ctx, "token", "password")
    import uvicorn

    from taskward.web import AdminAuth, create_app

    manager = load_manager(app_path, url)
    auth = None
    if token or password:
        auth = AdminAuth(token=token, username=user if password else None, password=password)
    elif not read_only:
        core.err.print("no --token/--password given: the dashboard is read-only")
    web_app = create_app(manager, auth=auth, read_only=read_only)
    where = display_url(manager.backend.url)
    print_line("taskward dashboard on http://{}:{}/dashboard ({})", host, port, where)
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
    print_line(
        "[yellow]warning:[/yellow] {} on the command line {} visible to other users of this "
        "machine (ps, /proc) and in shell history; set {} instead",
        options,
        "are" if len(given) > 1 else "is",
        variables,
        to=core.err,
    )


@app.command()
def demo(
    url: Annotated[
        str, typer.Option(metavar="URL", help="Where the demo's jobs live.")
    ] = "sqlite:///./demo.db",
) -> None:
    """Run the demo: a realistic mix of jobs on SQLite, with a live view.

    Example: taskward demo
    """
    from taskward.demo import run_demo

    raise typer.Exit(run_demo(url))
