"""``taskward keys generate|rotate``: encryption keys for sealed jobs (``taskward.sealing``).

``generate`` prints a new key. ``rotate`` seals every stored encrypted value again with the
first key of the manager's ``encryption_keys`` (``--app``, or ``TASKWARD_ENCRYPTION_KEYS`` with
``--url``), in batches, pass after pass until no job changed under it (at most
:data:`MAX_PASSES`). Exit 0 when every sealed job is on the first key; 1 (one ``error:`` line)
when some job opens with no listed key, or jobs kept changing.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer

from taskward.cli.core import (
    AppOpt,
    TaskwardGroup,
    UrlOpt,
    app,
    fail,
    load_manager,
    print_line,
    run,
)
from taskward.encryption import generate_key
from taskward.manager import TaskManager
from taskward.rotation import MAX_BATCH, RotationReport

MAX_PASSES: Final = 5

keys_app = typer.Typer(
    help="Encryption keys of sealed jobs (tasks with encrypted=True).",
    epilog="Example: taskward keys generate",
    cls=TaskwardGroup,
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command()
def generate() -> None:
    """Print a new random key (base64 of 32 bytes) for encryption_keys.

    Example: taskward keys generate
    """
    typer.echo(generate_key())


@keys_app.command()
def rotate(
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, max=MAX_BATCH, metavar="N", help="Jobs read and written at once."
        ),
    ] = 500,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Seal every encrypted job again with the first key (keep the old keys after it).

    Example: TASKWARD_ENCRYPTION_KEYS=NEW,OLD taskward keys rotate --url sqlite:///jobs.db
    """
    manager = load_manager(app_path, url, must_exist=True)
    if manager.keyring is None:
        fail("no encryption keys: set TASKWARD_ENCRYPTION_KEYS (the new key first) or use --app")

    async def passes(m: TaskManager) -> list[RotationReport]:
        reports: list[RotationReport] = []
        while len(reports) < MAX_PASSES and not (reports and _final(reports[-1])):
            reports.append(await m.rotate_encryption_keys(batch_size=batch_size))
        return reports

    reports = run(manager, passes)
    for report in reports:
        print_line(
            "examined {} jobs, {} sealed: {} sealed again with the first key, {} changed meanwhile",
            report.examined,
            report.sealed,
            report.resealed,
            report.changed,
        )
    last = reports[-1]
    if last.unreadable:
        shown = ", ".join(map(str, last.unreadable[:10]))
        fail(
            f"{len(last.unreadable)} sealed jobs open with none of the listed keys "
            f"(first ids: {shown}): add the key they were sealed with"
        )
    if not last.done:
        fail(f"jobs kept changing during {MAX_PASSES} passes: run taskward keys rotate again")
    print_line("every sealed job is on the first key: older keys may be removed")


def _final(report: RotationReport) -> bool:
    return report.done or bool(report.unreadable)
