"""What a workflow step receives besides its stored arguments: results of its dependencies.

Read from the store when the step starts (``graph.PassResult``): its one dependency's result,
the list of its dependencies' results in order (read by id: ``Backend.get_jobs``), or (a
finalizer) the workflow's outcome. The
value is prepended to the job's arguments for this run only; nothing is written back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from taskward.backends.base import Backend
from taskward.errors import JobNotFound
from taskward.graph import step_marker
from taskward.jobs import Job

__all__ = ["with_inputs"]


async def with_inputs(backend: Backend, job: Job) -> Job:
    """``job`` with what its step receives prepended to its args (itself when nothing)."""
    marker = step_marker(job.meta)
    if marker is None:
        return job
    mode = marker.get("pass")
    if mode in (None, "none"):
        return job
    value: Any
    if mode == "one" and job.depends_on:
        try:
            value = (await backend.get(job.depends_on[0])).result
        except JobNotFound:
            value = None  # pruned since: its result is gone
    elif mode == "all":
        # Only the dependencies, not the whole workflow (a chord's callback in a big one).
        results = {d.id: d.result for d in await backend.get_jobs(job.depends_on)}
        value = [results.get(d) for d in job.depends_on]  # pruned since: None
    elif mode == "outcome":
        value = (await backend.get_workflow(int(marker["id"]))).outcome()
    else:
        return job
    return replace(job, args=[value, *job.args])
