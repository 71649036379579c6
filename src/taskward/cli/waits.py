"""``taskward wait ID [--timeout S]``: wait until a job ends; print its result as JSON.

A thin shell over :meth:`TaskManager.wait_for`. The exit code tells how the job ended, so a
script can branch on it without parsing anything; they are distinct from the CLI's own 1 (an
error: an unreachable store, a bad URL) and 2 (a usage error):

- 0: completed; its result is printed on stdout as JSON (``null`` for none);
- 3: failed; 4: discarded; 5: cancelled: one ``error:`` line with the last error's kind and
  message on stderr (the job is not changed);
- 6: no such job (never existed, or deleted while waiting);
- 124: ``--timeout`` seconds passed first (the job is not changed), as ``timeout(1)`` exits.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer

from taskward.cli.core import (
    AppOpt,
    JobIdArg,
    UrlOpt,
    app,
    fail,
    load_manager,
    print_json,
    run,
)
from taskward.errors import JobCancelled, JobDiscarded, JobFailed, JobNotFound, WaitTimeout
from taskward.outcomes import outcome
from taskward.sealing import masked

__all__ = ["EXIT_CANCELLED", "EXIT_DISCARDED", "EXIT_FAILED", "EXIT_NOT_FOUND", "EXIT_TIMEOUT"]

EXIT_FAILED: Final = 3
"""Exit code of ``taskward wait`` for a job that ended ``failed``."""
EXIT_DISCARDED: Final = 4
"""Exit code of ``taskward wait`` for a job that ended ``discarded``."""
EXIT_CANCELLED: Final = 5
"""Exit code of ``taskward wait`` for a job that ended ``cancelled``."""
EXIT_NOT_FOUND: Final = 6
"""Exit code of ``taskward wait`` for a job that does not exist (or was deleted meanwhile)."""
EXIT_TIMEOUT: Final = 124
"""Exit code of ``taskward wait`` when ``--timeout`` passed first (as ``timeout(1)``)."""


@app.command()
def wait(
    job_id: JobIdArg,
    timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            min=0,
            help="Give up after this many seconds (exit 124); default: wait until it ends.",
        ),
    ] = None,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Wait until a job ends; print its result as JSON (exit codes tell how it ended).

    Exit codes: 0 completed, 3 failed, 4 discarded, 5 cancelled, 6 no such job, 124 timed out.

    Example: taskward wait 42 --timeout 30
    """
    manager = load_manager(app_path, url, must_exist=True)
    try:
        job = run(manager, lambda m: m.wait_for_end(job_id, timeout=timeout))
        # A result or error text no key here opens is shown as "encrypted", never as its
        # envelope (the manager of --app opened what its keys open).
        result = outcome(masked(job))
    except JobDiscarded as exc:  # before JobFailed: a subclass of it
        fail(str(exc), code=EXIT_DISCARDED)
    except JobFailed as exc:
        fail(str(exc), code=EXIT_FAILED)
    except JobCancelled as exc:
        fail(str(exc), code=EXIT_CANCELLED)
    except JobNotFound as exc:
        fail(str(exc), code=EXIT_NOT_FOUND)
    except WaitTimeout as exc:
        fail(str(exc), code=EXIT_TIMEOUT)
    print_json(result)
