"""``taskward init``: a first ``tasks.py`` in the current folder, and how to run it.

Owns the command and the file it writes: a :class:`~taskward.TaskManager` on a SQLite file
beside it, with one task. It never overwrites a file, and prints the two commands that
enqueue a job and run a worker (``tests/integration/test_cli_first_use.py`` runs them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from taskward.cli import core
from taskward.cli.core import app, fail, print_line

MODULE: Final = "tasks"
"""The module ``taskward init`` writes: ``tasks.py``, loaded with ``--app tasks``."""

NEXT_COMMANDS: Final = (
    f"taskward enqueue {MODULE}:add --args '[2, 3]' --app {MODULE}",
    f"taskward worker --app {MODULE}",
)
"""What to run next, from the folder of ``tasks.py``: enqueue a job, then run a worker."""

STARTER: Final = f'''"""Your tasks: functions registered on ``tw`` run as durable jobs.

From this folder, enqueue a job, then run a worker (add --burst to stop once none is due):

    {NEXT_COMMANDS[0]}
    {NEXT_COMMANDS[1]}

Then ``taskward jobs`` lists the jobs, and ``taskward status 1`` shows the first one.
"""

from pathlib import Path

from taskward import TaskManager

# The store is the file taskward.db beside this one, wherever the command runs from.
tw = TaskManager(f"sqlite:///{{Path(__file__).resolve().with_name('taskward.db')}}")


@tw.task
def add(a: int, b: int) -> int:
    """Add two numbers; the job stores what it returns (see ``taskward status ID``)."""
    return a + b
'''
"""The text of the ``tasks.py`` that ``taskward init`` writes."""


@app.command()
def init() -> None:
    """Write a first tasks.py here (a TaskManager on SQLite, one task), never overwriting.

    Then run the two commands it prints: one enqueues a job, one starts a worker.

    Example: taskward init
    """
    target = Path.cwd() / f"{MODULE}.py"
    if (Path.cwd() / MODULE).is_dir():
        fail(f"{target.parent / MODULE} is a folder: --app {MODULE} would import it, not {target}")
    try:
        # "x": create, or fail if it exists, in one step (no check-then-write race).
        with target.open("x", encoding="utf-8") as file:
            file.write(STARTER)
    except FileExistsError:
        fail(f"{target} exists already: taskward init never overwrites a file")
    print_line("wrote {}: a TaskManager on SQLite (taskward.db beside it) with one task", target)
    core.console.print("Run from this folder: enqueue a job, then start a worker (Ctrl-C stops it)")
    for command in NEXT_COMMANDS:
        print_line("  {}", command)
