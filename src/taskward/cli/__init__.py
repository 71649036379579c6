r"""The ``taskward`` command: one thin function per subcommand over the TaskManager API.

Point it at your manager with ``--app module:attribute`` (or ``TASKWARD_APP``); admin commands
also work without one, on ``--url`` / ``TASKWARD_URL`` (default ``sqlite:///./taskward.db``).

Exit codes: 0 done; 1 an error, printed as one ``error:`` line on stderr (any
:class:`~taskward.errors.TaskwardError`, a bad backend URL included, and every refusal: an
unknown queue, a job that cannot be retried or cancelled, a missing store); 2 a usage error
(a bad option or argument, an ``--app`` that cannot be loaded). ``taskward audit`` has its own
(see its ``--help``), and ``taskward health`` adds 3 (degraded) and 4 (failing).
A traceback means a bug in taskward (or in the code ``--app`` imports).

Commands that only read or change what is stored (jobs, status, stats, why, workflow, retry,
cancel, cleanup, cron, queue limits…) never create a store: on SQLite a missing file is an
error. enqueue, worker, migrate, dashboard and demo create it.

Everything read from the store (task and queue names, error messages, tracebacks, arguments,
results, tags, worker ids) is printed as inert text: never as rich markup, and with control
characters shown escaped (``\x1b``), so that a stored string can neither crash a command nor
drive the operator's terminal.

This package only assembles the command: :mod:`~taskward.cli.core` (the apps, shared options,
consoles, exit codes, ``--version``), and the command modules, which register on ``app`` when
imported: :mod:`~taskward.cli.starter` (``init``), :mod:`~taskward.cli.worker`,
:mod:`~taskward.cli.jobs`, :mod:`~taskward.cli.replay` (``retry-all``),
:mod:`~taskward.cli.why`, :mod:`~taskward.cli.workflows`, :mod:`~taskward.cli.waits`
(``wait``, whose exit codes tell how the job ended),
:mod:`~taskward.cli.queues` (pause, resume and ``queue``), :mod:`~taskward.cli.health`
(``health``, whose exit codes tell the verdict), :mod:`~taskward.cli.schedules` and
:mod:`~taskward.cli.launchers`. Inert printing and the statistics table live in
:mod:`taskward.terminal`.
"""

# The command modules register in import order, which is the order ``taskward --help`` lists
# them in: keep it (isort would sort them alphabetically).
# isort: off
from taskward.cli import starter  # noqa: F401
from taskward.cli import worker  # noqa: F401
from taskward.cli import jobs  # noqa: F401
from taskward.cli import replay  # noqa: F401
from taskward.cli import why  # noqa: F401
from taskward.cli import workflows  # noqa: F401
from taskward.cli import queues  # noqa: F401
from taskward.cli import health  # noqa: F401
from taskward.cli import schedules  # noqa: F401
from taskward.cli import launchers  # noqa: F401
from taskward.cli import keys  # noqa: F401
from taskward.cli import waits  # noqa: F401

# isort: on
from taskward.cli.core import app, main
from taskward.terminal import stats_table

__all__ = ["app", "main", "stats_table"]
