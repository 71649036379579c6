"""``taskward worker``: run a worker, or a supervisor of several worker processes.

Owns the command, its ``--queue NAME=CONCURRENCY`` parsing, the ``--loop`` choice
(:func:`loop_factory`: uvloop where installed, or asyncio's own loop) and the choice between
one plain worker in this process (the default) and :class:`~taskward.runtime.supervisor.
Supervisor` (``--processes`` above 1, or a recycling option). The supervisor starts each child
by running this same command line again (``sys.orig_argv``), marked by
``TASKWARD_SUPERVISED_CHILD``: the child runs one plain worker, whatever ``--processes`` says.

Exit codes: 0 stopped cleanly; 1 an error (one ``error:`` line), including children that kept
failing at start-up or did not stop cleanly; 2 a usage error; 75 (only a supervised child)
stopped to be recycled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, NoReturn, cast

import typer

from taskward.cli import core
from taskward.cli.core import AppOpt, UrlOpt, app, load_manager, print_line, run, usage_error
from taskward.manager import TaskManager
from taskward.runtime.recycle import RecycleLimits, Recycler, current_rss, parse_size
from taskward.runtime.supervised import RECYCLE_EXIT, ChildLink, supervised_index
from taskward.runtime.supervisor import Supervisor, SupervisorError

LOOPS = ("auto", "asyncio", "uvloop")


@app.command()
def worker(
    app_path: AppOpt = None,
    url: UrlOpt = None,
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="NAME[=N]",
            help="A queue to serve and its concurrency (default 10); repeatable.",
        ),
    ] = None,
    burst: Annotated[bool, typer.Option(help="Run until no job is due, then exit.")] = False,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="DEBUG, INFO, WARNING…")] = "INFO",
    wait_for_backend: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", help="Seconds to keep retrying an unreachable store at start-up."
        ),
    ] = 60.0,
    loop: Annotated[
        str,
        typer.Option(
            envvar="TASKWARD_LOOP",
            metavar="auto|asyncio|uvloop",
            help="Event loop: auto (uvloop if installed), asyncio or uvloop.",
        ),
    ] = "auto",
    processes: Annotated[
        str,
        typer.Option(
            metavar="N|auto",
            help="Worker processes: a number, or auto (one per CPU). Above 1, this process "
            "supervises them: restarts the ones that die, forwards SIGINT/SIGTERM.",
        ),
    ] = "1",
    max_jobs_per_process: Annotated[
        int | None,
        typer.Option(
            metavar="K",
            help="Replace a worker process after it ran K jobs (it finishes its running jobs "
            "first). Supervises even one process.",
        ),
    ] = None,
    max_memory_per_process: Annotated[
        str | None,
        typer.Option(
            metavar="SIZE",
            help="Replace a worker process once its resident memory reaches SIZE: bytes, or "
            "500MB, 1.5GiB, 512M (KB/MB/GB: powers of 1000; K/M/G, KiB/MiB/GiB: of 1024).",
        ),
    ] = None,
) -> None:
    """Run a worker until SIGINT/SIGTERM (graceful: running jobs finish or are released).

    With --processes N (or a --max-*-per-process option) this process supervises N worker
    processes: a child that dies is restarted (0.5 s doubling to 30 s), a recycled one is
    replaced at once; the first SIGINT/SIGTERM stops them gracefully, a second kills them.

    Example: taskward worker --app myapp.tasks:tw --processes 2 -q default=10 -q emails=5
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    factory = loop_factory(loop.lower())
    queues = _parse_queues(queue or []) or None
    limits = _recycle_limits(max_jobs_per_process, max_memory_per_process)
    count = _process_count(processes)
    child = supervised_index()
    if child is None and (count > 1 or limits.active):
        if burst:
            usage_error("--burst runs in this process: drop --processes and --max-*-per-process")
        _supervise(count)
    manager = load_manager(app_path, url)
    if burst:
        # One worker drains them all: at the largest concurrency asked (-q emails=1 runs one
        # job at a time, strictly in priority order).
        concurrency = max(queues.values()) if queues else None
        result = run(
            manager,
            lambda m: m.drain(list(queues) if queues else None, concurrency=concurrency),
            factory,
        )
        core.console.print(f"burst done: {result.counts}")
        return
    recycle = limits if child is not None and limits.active else None
    recycled = run(manager, lambda m: _run_worker(m, queues, wait_for_backend, recycle), factory)
    if recycled:
        raise typer.Exit(RECYCLE_EXIT)


async def _run_worker(
    manager: TaskManager,
    queues: Mapping[str, int] | None,
    wait_for_backend: float,
    recycle: RecycleLimits | None,
) -> bool:
    """Run one worker until it stops; True if it stopped to be recycled."""
    worker = manager.make_worker(queues)
    if recycle is not None:
        worker.recycler = Recycler(recycle)
        _warn_if_too_small(recycle)
    link = ChildLink.from_env()
    watch = asyncio.ensure_future(link.serve(worker.started, worker.stop)) if link else None
    try:
        await manager.run_worker(worker=worker, wait_for_backend=wait_for_backend)
    finally:
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        if link is not None:
            link.close()
    return worker.recycled is not None


def _supervise(processes: int) -> NoReturn:
    """Run the supervisor of ``processes`` children (this command line, re-run); exit."""
    if sys.platform == "win32":
        usage_error("--processes and --max-*-per-process need a POSIX system")
    # The interpreter as this process runs it, then the operator's own arguments: works for
    # `python -m taskward`, the `taskward` script and a management command forwarding here.
    command = [sys.executable, *sys.orig_argv[1:]]
    try:
        Supervisor(command, processes).run()
    except SupervisorError as exc:
        print_line("[red]error:[/red] {}", exc, to=core.err)
        raise typer.Exit(1) from None
    raise typer.Exit(0)


def _process_count(text: str) -> int:
    if text.strip().lower() == "auto":
        # The CPUs this process may run on (taskset, cpusets), not the machine's count.
        affinity = getattr(os, "sched_getaffinity", None)
        return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    with contextlib.suppress(ValueError):
        if (count := int(text)) >= 1:
            return count
    usage_error(f"--processes {text!r}: use a number of processes (1 or more) or auto")


def _recycle_limits(max_jobs: int | None, max_memory: str | None) -> RecycleLimits:
    if max_jobs is not None and max_jobs < 1:
        usage_error(f"--max-jobs-per-process {max_jobs}: use 1 or more")
    try:
        max_rss = parse_size(max_memory) if max_memory is not None else None
    except ValueError as exc:
        usage_error(f"--max-memory-per-process: {exc}")
    return RecycleLimits(max_jobs=max_jobs, max_rss=max_rss)


def _warn_if_too_small(limits: RecycleLimits) -> None:
    rss = current_rss()
    if limits.max_rss is not None and rss is not None and rss >= limits.max_rss:
        logging.getLogger("taskward.worker").warning(
            "--max-memory-per-process %d bytes is below this process's size at start (%d "
            "bytes): it is replaced after every job",
            limits.max_rss,
            rss,
        )


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
