"""``taskward worker``: run a worker in this process, on the event loop the operator chose.

Owns the command, its ``--queue NAME=CONCURRENCY`` parsing and the ``--loop`` choice
(:func:`loop_factory`: uvloop where installed, or asyncio's own loop).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Annotated, cast

import typer

from taskward.cli import core
from taskward.cli.core import AppOpt, UrlOpt, app, load_manager, run

LOOPS = ("auto", "asyncio", "uvloop")


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
        core.console.print(f"burst done: {result.counts}")
        return
    run(manager, lambda m: m.run_worker(queues, wait_for_backend=wait_for_backend), factory)


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


def _parse_queues(specs: list[str]) -> dict[str, int]:
    queues: dict[str, int] = {}
    for spec in specs:
        name, _, n = spec.partition("=")
        try:
            queues[name] = int(n) if n else 10
        except ValueError:
            raise typer.BadParameter(f"{spec!r}: use NAME or NAME=CONCURRENCY") from None
    return queues
