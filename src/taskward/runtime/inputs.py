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
from taskward.encryption import EncryptionError, KeyRing, is_envelope
from taskward.errors import JobNotFound
from taskward.graph import step_marker
from taskward.jobs import Job
from taskward.sealing import is_sealed, open_job

__all__ = ["with_inputs"]


async def with_inputs(backend: Backend, job: Job, keyring: KeyRing | None = None) -> Job:
    """``job`` with what its step receives prepended to its args (itself when nothing).

    Sealed results of dependencies are opened with ``keyring`` (``taskward.sealing``).
    """
    marker = step_marker(job.meta)
    if marker is None:
        return job
    mode = marker.get("pass")
    if mode in (None, "none"):
        return job
    value: Any
    if mode == "one" and job.depends_on:
        try:
            value = _result(keyring, await backend.get(job.depends_on[0]))
        except JobNotFound:
            value = None  # pruned since: its result is gone
    elif mode == "all":
        # Only the dependencies, not the whole workflow (a chord's callback in a big one).
        depends = await backend.get_jobs(job.depends_on)
        results = {d.id: _result(keyring, d) for d in depends}
        value = [results.get(d) for d in job.depends_on]  # pruned since: None
    elif mode == "outcome":
        value = (await backend.get_workflow(int(marker["id"]))).outcome()
    else:
        return job
    return replace(job, args=[value, *job.args])


def _result(keyring: KeyRing | None, dependency: Job) -> Any:
    """A dependency's result, opened; ``EncryptionError`` if it stays sealed here.

    A step must never receive ciphertext in place of a value (it would run on it).
    """
    opened = open_job(keyring, dependency)
    if is_sealed(opened) and is_envelope(opened.result):
        raise EncryptionError(
            f"the result of job {dependency.id} is encrypted and this worker holds no key "
            "that opens it"
        )
    return opened.result
