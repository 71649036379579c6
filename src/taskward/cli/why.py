"""``taskward why ID``: why a job is not running right now, in plain words (or ``--json``).

Owns the command; the reasons come from :meth:`TaskManager.explain` (see
:mod:`taskward.explain`). Every reason's text may quote stored strings (an error message,
a worker id): it is printed as inert text.
"""

from __future__ import annotations

from taskward.cli.core import (
    AppOpt,
    JobIdArg,
    JsonOpt,
    UrlOpt,
    app,
    load_manager,
    print_json,
    print_line,
    run,
)


@app.command()
def why(
    job_id: JobIdArg,
    as_json: JsonOpt = False,
    app_path: AppOpt = None,
    url: UrlOpt = None,
) -> None:
    """Say why a job is not running right now (or where it runs, or how it finished).

    Example: taskward why 42
    """
    explanation = run(load_manager(app_path, url, must_exist=True), lambda m: m.explain(job_id))
    if as_json:
        print_json(explanation.to_dict())
        return
    job = explanation.job
    verdict = "running" if explanation.running else "not running"
    print_line(
        "job {} ({}) on queue {}: {}, " + verdict,
        job["id"],
        job["task"],
        job["queue"],
        job["state"],
    )
    for reason in explanation.reasons:
        print_line(f"  [cyan]{reason.code}[/cyan]: {{}}", reason.text)
