"""``taskward workflow ID``: a workflow's state and each step's (or ``--json``; ``--cancel``).

Step and task names come from the store: printed as inert text.
"""

from __future__ import annotations

from typing import Annotated

import typer

from taskward.cli.core import (
    AppOpt,
    JsonOpt,
    UrlOpt,
    app,
    id_in_range,
    load_manager,
    print_json,
    print_line,
    run,
)


@app.command()
def workflow(
    workflow_id: Annotated[
        int,
        typer.Argument(
            metavar="ID", help="The workflow's id (its steps' jobs carry it).", callback=id_in_range
        ),
    ],
    cancel: Annotated[
        bool,
        typer.Option("--cancel", help="Cancel every step not ended first (finalizers still run)."),
    ] = False,
    as_json: JsonOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show a workflow: its state, and each step's job, state and dependencies.

    Example: taskward workflow 7 --json
    """
    manager = load_manager(app_path, url, must_exist=True)
    if cancel:
        record = run(manager, lambda m: m.cancel_workflow(workflow_id))
    else:
        record = run(manager, lambda m: m.get_workflow(workflow_id))
    if as_json:
        print_json(record.to_dict())
        return
    print_line(
        "workflow {} ({}): {}, {} step(s)",
        record.id,
        record.name or "unnamed",
        record.state.value,
        len(record.steps),
    )
    for step in record.steps:
        waits = ", ".join(step.depends_on) if step.depends_on else "nothing"
        role = " (finalizer)" if step.finalizer else ""
        print_line(
            "  {}{}: job {} ({}) {}, after {}",
            step.name,
            role,
            step.job.id,
            step.job.task,
            step.job.state.value,
            waits,
        )
