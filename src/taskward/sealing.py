"""Sealed jobs: which values of a job are encrypted at rest, and how they are sealed and opened.

A job of a task marked ``encrypted=True`` (or of any task, with ``encrypt_all``) is *sealed*:
its meta carries :data:`SEALED_META`, and the store holds

- its arguments as one envelope (``taskward.encryption``), bound to the task's name: stored
  args ``[]`` and kwargs ``{"taskward.sealed": "<envelope>"}``, so every store keeps its
  column types and a reader without the key sees at once that it cannot run the job;
- its result as an envelope string, bound to the job's id;
- each error's message and traceback as envelopes bound to the job's id (the error *kind*, an
  exception class name, stays readable: dead letters are grouped by it).

Sealed by the producer (``JobBuilder``) and by the worker as it writes an outcome; opened by
the worker before running the job and by the manager's read methods. What stays readable:
task name, queue, priority, times, states, tags, meta, progress and the partition key (a
partition rule reads the arguments in the store, which sees only the envelope: give the task
a ``partition_key`` function instead). A unique key of sealed arguments is a keyed hash.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Final

from taskward.encryption import EncryptionError, KeyRing, is_envelope
from taskward.jobs import EncodedPayload, ErrorRecord, Job, JobUpdate
from taskward.serialize import dumps, loads

__all__ = [
    "ENCRYPTED_PLACEHOLDER",
    "SEALED_KWARG",
    "SEALED_META",
    "is_sealed",
    "masked",
    "open_arguments",
    "open_job",
    "reseal",
    "seal_payload",
    "seal_update",
    "still_sealed",
]

SEALED_META: Final = "taskward.sealed"
"""Meta key of a sealed job (its value: the envelope version, 1)."""
SEALED_KWARG: Final = "taskward.sealed"
"""The one stored kwarg of a sealed job: the envelope of its arguments."""
ENCRYPTED_PLACEHOLDER: Final = "encrypted"
"""What the dashboard, the API and the CLI show for a value they hold no key to open."""


def is_sealed(job: Job) -> bool:
    """True for a job whose payload is encrypted at rest (its meta says so)."""
    # Meta a store could not read comes back as an UnreadablePayload: it says nothing.
    return isinstance(job.meta, dict) and bool(job.meta.get(SEALED_META))


def still_sealed(job: Job) -> bool:
    """True if ``job``'s arguments are still the envelope (nothing opened them here)."""
    return is_sealed(job) and not job.args and is_envelope(job.kwargs.get(SEALED_KWARG))


def seal_payload(ring: KeyRing, payload: EncodedPayload, task: str) -> EncodedPayload:
    """The payload as stored for a sealed job of ``task`` (its size stays the clear one's)."""
    clear = f"[{payload.args_json},{payload.kwargs_json}]"
    envelope = ring.seal(clear.encode(), purpose=f"args|{task}")
    kwargs = {SEALED_KWARG: envelope}
    return EncodedPayload(
        args=[],
        kwargs=kwargs,
        args_json="[]",
        kwargs_json=dumps(kwargs),
        size=payload.size,
        partition_key=payload.partition_key,
    )


def open_arguments(ring: KeyRing | None, job: Job) -> Job:
    """``job`` with its arguments opened, for running it; raise ``EncryptionError`` if not.

    A job that is not sealed, or whose arguments were opened already, comes back as is.
    """
    if not still_sealed(job):
        return job
    envelope = job.kwargs[SEALED_KWARG]
    if ring is None:
        raise EncryptionError(
            f"job {job.id}'s arguments are encrypted and this process has no encryption keys "
            "(set encryption_keys, or TASKWARD_ENCRYPTION_KEYS)"
        )
    args, kwargs = loads(ring.open(envelope, purpose=f"args|{job.task}"))
    return dataclasses.replace(job, args=args, kwargs=kwargs)


def seal_update(ring: KeyRing | None, job: Job, update: JobUpdate) -> JobUpdate:
    """The outcome of sealed ``job`` with its result and error texts sealed.

    Without a key (a worker that could not open the job) only the error is left as is: it
    says why the job could not run and holds nothing of the job's values.
    """
    if ring is None or not is_sealed(job):
        return update
    changes: dict[str, Any] = {}
    if update.result is not None:
        changes["result"] = ring.seal(dumps(update.result).encode(), purpose=_result(job.id))
    if update.error is not None:
        changes["error"] = _seal_error(ring, job.id, update.error)
    return dataclasses.replace(update, **changes) if changes else update


def open_job(ring: KeyRing | None, job: Job) -> Job:
    """``job`` with every sealed value this ``ring`` opens opened, for reading.

    Never raises: a value it cannot open stays the envelope (the display layer shows
    :data:`ENCRYPTED_PLACEHOLDER`).
    """
    if ring is None or not is_sealed(job):
        return job
    changes: dict[str, Any] = {}
    try:
        opened = open_arguments(ring, job)
    except (EncryptionError, ValueError):
        opened = job
    if opened is not job:
        changes["args"], changes["kwargs"] = opened.args, opened.kwargs
    if is_envelope(job.result):
        with contextlib.suppress(EncryptionError, ValueError):
            changes["result"] = loads(ring.open(job.result, purpose=_result(job.id)))
    if any(_error_sealed(error) for error in job.errors):
        changes["errors"] = tuple(_open_error(ring, job.id, error) for error in job.errors)
    return dataclasses.replace(job, **changes) if changes else job


def masked(job: Job) -> Job:
    """``job`` for people: its result and error texts still sealed shown as ``"encrypted"``.

    Its arguments are left as stored: :func:`still_sealed` tells a display to say they are
    encrypted (``web.queries.shown_arguments``).
    """
    if not is_sealed(job):
        return job
    changes: dict[str, Any] = {}
    if is_envelope(job.result):
        changes["result"] = ENCRYPTED_PLACEHOLDER
    if any(_error_sealed(error) for error in job.errors):
        changes["errors"] = tuple(
            dataclasses.replace(
                error,
                message=ENCRYPTED_PLACEHOLDER if is_envelope(error.message) else error.message,
                traceback=None if is_envelope(error.traceback) else error.traceback,
            )
            for error in job.errors
        )
    return dataclasses.replace(job, **changes) if changes else job


def reseal(ring: KeyRing, job: Job) -> dict[str, Any] | None:
    """The stored values of ``job`` sealed again with the ring's first key, or None.

    For key rotation: returns ``{"kwargs": …, "result": …, "errors": …}`` (only the fields
    holding an envelope of an older key) or None when every envelope is current already.
    Raises ``EncryptionError`` for an envelope no key of the ring opens.
    """
    if not is_sealed(job):
        return None
    changes: dict[str, Any] = {}
    envelope = job.kwargs.get(SEALED_KWARG)
    if is_envelope(envelope) and not job.args and not ring.is_current(envelope):
        clear = ring.open(envelope, purpose=f"args|{job.task}")
        changes["kwargs"] = {SEALED_KWARG: ring.seal(clear, purpose=f"args|{job.task}")}
    if is_envelope(job.result) and not ring.is_current(job.result):
        clear = ring.open(job.result, purpose=_result(job.id))
        changes["result"] = ring.seal(clear, purpose=_result(job.id))
    if any(_stale_error(ring, error) for error in job.errors):
        changes["errors"] = tuple(_reseal_error(ring, job.id, e) for e in job.errors)
    return changes or None


def _result(job_id: int) -> str:
    return f"result|{job_id}"


def _error(job_id: int) -> str:
    return f"error|{job_id}"


def _seal_error(ring: KeyRing, job_id: int, error: ErrorRecord) -> ErrorRecord:
    purpose = _error(job_id)
    return dataclasses.replace(
        error,
        message=ring.seal(error.message.encode(), purpose=purpose),
        traceback=None
        if error.traceback is None
        else ring.seal(error.traceback.encode(), purpose=purpose),
    )


def _error_sealed(error: ErrorRecord) -> bool:
    return is_envelope(error.message) or is_envelope(error.traceback)


def _open_text(ring: KeyRing, text: str | None, purpose: str) -> str | None:
    if text is None or not is_envelope(text):
        return text
    try:
        return ring.open(text, purpose=purpose).decode()
    except (EncryptionError, UnicodeDecodeError):
        return text


def _open_error(ring: KeyRing, job_id: int, error: ErrorRecord) -> ErrorRecord:
    purpose = _error(job_id)
    return dataclasses.replace(
        error,
        message=_open_text(ring, error.message, purpose) or "",
        traceback=_open_text(ring, error.traceback, purpose),
    )


def _stale_error(ring: KeyRing, error: ErrorRecord) -> bool:
    return any(
        is_envelope(text) and not ring.is_current(text) for text in (error.message, error.traceback)
    )


def _reseal_text(ring: KeyRing, text: str | None, purpose: str) -> str | None:
    if text is None or not is_envelope(text) or ring.is_current(text):
        return text
    return ring.seal(ring.open(text, purpose=purpose), purpose=purpose)


def _reseal_error(ring: KeyRing, job_id: int, error: ErrorRecord) -> ErrorRecord:
    purpose = _error(job_id)
    return dataclasses.replace(
        error,
        message=_reseal_text(ring, error.message, purpose) or "",
        traceback=_reseal_text(ring, error.traceback, purpose),
    )
