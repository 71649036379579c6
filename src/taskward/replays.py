"""Replaying dead letters with edits: validating an operator's changes, one job or many.

Owns what ``TaskManager.retry_task`` does with changes (:func:`build_edit`: new arguments,
queue, priority, a note), and the bulk replay of the dead letters matching a filter
(:class:`DeadLetterFilter`, :func:`matching_dead_letters`, :class:`ReplayReport`). The store
applies a :class:`~taskward.jobs.JobEdit` atomically with the retry; what is recorded in the
job is :mod:`taskward.edits`'s.

Rules (README "Dead letters: edit and replay"):

- New arguments are validated as at enqueue: JSON, ``max_payload_bytes``, the task's
  signature when this process has registered the task (a workflow step counts what it
  receives), and the task's ``partition_key`` function runs on them. Nothing is written when
  one is bad (``InvalidJob``).
- A value shown as ``"***"`` (a sensitive one, see ``taskward.tasks.redact``) and sent back as
  ``"***"`` keeps the stored value: an operator edits the other arguments without ever seeing
  or retyping a secret.
- The unique key is kept: the job stays the one producers were deduplicated against.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from taskward.building import call_key_function
from taskward.errors import InvalidJob, InvalidOptions, JobNotFound
from taskward.graph import WORKFLOW_META_KEY
from taskward.jobs import (
    DEAD_STATES,
    RETRIABLE_BY_OPERATOR,
    EncodedPayload,
    Job,
    JobEdit,
    JobState,
    Page,
    validate_priority,
    validate_queue_name,
)
from taskward.registry import TaskRegistry
from taskward.sealing import still_sealed
from taskward.serialize import encode_payload
from taskward.tasks import REDACTED, redact

__all__ = [
    "MAX_BULK_EXAMINED",
    "MAX_BULK_REPLAY",
    "MAX_NOTE_CHARS",
    "DeadLetterFilter",
    "ReplayReport",
    "build_edit",
    "check_bulk_options",
    "matches",
    "replay_dead_letters",
    "restore_hidden",
]

MAX_NOTE_CHARS: Final = 2000
"""The longest operator note (and operator name: 200) a replay records."""
MAX_BULK_REPLAY: Final = 10_000
"""Jobs one bulk replay retries at most: run it again for more."""
MAX_BULK_EXAMINED: Final = 50_000
"""Dead letters one bulk replay reads at most to find its matches (``error_kind`` and
``since`` are checked on each job read): past it the report is ``capped``; narrow the filter
by ``task`` or ``queue`` (which the store filters) to reach the rest."""
_PAGE_SIZE: Final = 500


def build_edit(
    job: Job,
    registry: TaskRegistry,
    *,
    max_payload_bytes: int,
    at: datetime,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    note: str | None = None,
    by: str | None = None,
    seal: Callable[[EncodedPayload], EncodedPayload] | None = None,
) -> JobEdit:
    """Validate an operator's changes to ``job`` (as just read); raise ``InvalidJob``.

    ``job`` with its arguments opened if they are encrypted at rest; ``seal``: how to store
    new arguments of such a job (``taskward.sealing.seal_payload`` with the manager's keys):
    the envelope holds args and kwargs together, so both are replaced.
    """
    if job.state not in RETRIABLE_BY_OPERATOR:
        raise InvalidJob(not_retriable(job))
    replay = {
        # Tells this replay's record from another's made at the same time with the same note.
        "id": secrets.token_hex(6),
        "at": at.isoformat(),
        "by": _text("by", by, 200),
        "note": _text("note", note),
    }
    new_args, new_kwargs, payload = None, None, None
    if args is not None or kwargs is not None:
        if isinstance(args, str | bytes) or isinstance(kwargs, str | bytes):
            raise InvalidOptions("args must be a JSON list and kwargs a JSON object")
        new_args, new_kwargs = restore_hidden(job, args, kwargs)
        payload = encode_payload(
            job.args if new_args is None else new_args,
            job.kwargs if new_kwargs is None else new_kwargs,
            max_bytes=max_payload_bytes,
        )
    task = registry.get(job.task)
    key = None
    if payload is not None and task is not None:
        if task.parameters is not None:
            task.parameters.check(job.task, payload.args, payload.kwargs, received=_received(job))
        if task.options.partition_key is not None:
            key = call_key_function(task.options.partition_key, payload.args, payload.kwargs)
    elif queue is not None and task is not None and task.options.partition_key is not None:
        if still_sealed(job):
            # The args are the envelope here (no key opens it in this process): the task's
            # function would run on ciphertext and fail or give a wrong key. Keep the key the
            # producer computed from the clear arguments.
            key = job.partition_key
        else:
            key = call_key_function(task.options.partition_key, job.args, job.kwargs)
    if payload is not None and seal is not None:
        payload = seal(payload)
        new_args, new_kwargs = payload.args, payload.kwargs
    return JobEdit(
        replay=replay,
        args=None if new_args is None or payload is None else payload.args,
        kwargs=None if new_kwargs is None or payload is None else payload.kwargs,
        args_json=None if new_args is None or payload is None else payload.args_json,
        kwargs_json=None if new_kwargs is None or payload is None else payload.kwargs_json,
        queue=None if queue is None else validate_queue_name(queue),
        priority=None if priority is None else validate_priority(priority),
        partition_key=key,
    )


def not_retriable(job: Job) -> str:
    """Why ``job`` cannot be retried (it is not failed, discarded or cancelled)."""
    return (
        f"job {job.id} is {job.state.value}: only a failed, discarded or cancelled job can be "
        "retried"
    )


def restore_hidden(
    job: Job, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None
) -> tuple[list[Any] | None, dict[str, Any] | None]:
    """The new arguments with each ``"***"`` where the job shows a hidden value put back.

    Only where ``taskward.tasks.redact`` hides a value of the stored job: a ``"***"`` typed
    anywhere else is an argument like any other.
    """
    shown_args, shown_kwargs = redact(job.args, job.kwargs, job.meta)
    new_args = None if args is None else _restore(list(args), shown_args, job.args)
    new_kwargs = None if kwargs is None else _restore(dict(kwargs), shown_kwargs, job.kwargs)
    return new_args, new_kwargs


def _restore(new: Any, shown: Any, stored: Any) -> Any:
    if new == REDACTED and shown == REDACTED and stored != REDACTED:
        return copy.deepcopy(stored)
    if isinstance(new, dict) and isinstance(shown, dict) and isinstance(stored, dict):
        return {
            k: _restore(v, shown[k], stored[k]) if k in shown and k in stored else v
            for k, v in new.items()
        }
    if isinstance(new, list) and isinstance(shown, list) and isinstance(stored, list):
        return [
            _restore(v, shown[i], stored[i]) if i < len(shown) and i < len(stored) else v
            for i, v in enumerate(new)
        ]
    return new


def _received(job: Job) -> int:
    """How many values a workflow step receives before its args (see ``taskward.graph``)."""
    marker = job.meta.get(WORKFLOW_META_KEY)
    if isinstance(marker, Mapping) and marker.get("pass", "none") != "none":
        return 1
    return 0


def _text(name: str, value: str | None, limit: int = MAX_NOTE_CHARS) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidOptions(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidOptions(f"{name} must be at most {limit} characters, got {len(value)}")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidOptions(f"{name} holds a lone surrogate, which no store can keep") from None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterFilter:
    """Which dead letters a bulk replay takes: failed ones (discarded too when asked)."""

    include_discarded: bool = False
    task: str | None = None
    queue: str | None = None
    error_kind: str | None = None
    """Only jobs whose last error is of this kind (``ErrorRecord.kind``)."""
    since: datetime | None = None
    """Only jobs that ended at or after this time."""

    def __post_init__(self) -> None:
        if self.since is not None and self.since.tzinfo is None:
            raise InvalidOptions("since must be timezone-aware (e.g. datetime.now(UTC))")

    @property
    def states(self) -> frozenset[JobState]:
        """The states listed: failed, and discarded when asked."""
        return DEAD_STATES if self.include_discarded else frozenset({JobState.FAILED})


def matches(job: Job, flt: DeadLetterFilter) -> bool:
    """True when ``job`` is a dead letter ``flt`` takes (what the store's listing cannot ask)."""
    if job.state not in flt.states:
        return False
    if flt.error_kind is not None:
        last = job.last_error
        if last is None or last.kind != flt.error_kind:
            return False
    if flt.since is not None:
        ended = job.completed_at or job.discarded_at or job.cancelled_at
        if ended is None and job.last_error is not None:
            ended = job.last_error.at
        if ended is None or ended < flt.since:
            return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """What a bulk replay did: the jobs retried, and each refused one with the reason."""

    matched: int
    retried: tuple[int, ...] = ()
    refused: dict[int, str] = field(default_factory=dict)
    capped: bool = False
    """True when more jobs matched than the limit (:data:`MAX_BULK_REPLAY` at most), or when
    :data:`MAX_BULK_EXAMINED` dead letters were read before the end of the listing: more
    may match. Run it again for the rest (or narrow it by task or queue)."""


class Replayer(Protocol):
    """What a bulk replay needs of the manager (a Protocol: this module never imports it)."""

    async def list_tasks(
        self, *, state: Any, queue: str | None, task: Any, page: int, per_page: int, sort_by: str
    ) -> Page[Job]:
        """One page of jobs."""
        ...

    async def get_task_status(self, job_id: int) -> Job:
        """One job."""
        ...

    async def retry_task(
        self,
        job_id: int,
        *,
        kwargs: Mapping[str, Any] | None,
        queue: str | None,
        priority: int | None,
        note: str | None,
        by: str | None,
    ) -> Job:
        """Retry one job with changes."""
        ...


async def replay_dead_letters(
    manager: Replayer,
    flt: DeadLetterFilter,
    *,
    note: str | None,
    queue: str | None,
    priority: int | None,
    set_kwargs: Mapping[str, Any] | None,
    by: str | None,
    dry_run: bool,
    limit: int,
) -> ReplayReport:
    """``TaskManager.retry_dead_letters``: list the matching ids, then replay each on its own."""
    limit = check_bulk_options(note=note, queue=queue, priority=priority, by=by, limit=limit)
    if set_kwargs is not None and not isinstance(set_kwargs, Mapping):
        raise InvalidOptions("set_kwargs must be a JSON object")
    ids, capped = await _dead_letter_ids(manager, flt, limit)
    if dry_run:
        return ReplayReport(matched=len(ids), capped=capped)
    retried: list[int] = []
    refused: dict[int, str] = {}
    for job_id in ids:
        try:
            kwargs = None
            if set_kwargs:
                kwargs = {**(await manager.get_task_status(job_id)).kwargs, **set_kwargs}
            await manager.retry_task(
                job_id, kwargs=kwargs, queue=queue, priority=priority, note=note, by=by
            )
        except (InvalidJob, JobNotFound) as exc:  # this job only: the others proceed
            refused[job_id] = str(exc)
        else:
            retried.append(job_id)
    return ReplayReport(matched=len(ids), retried=tuple(retried), refused=refused, capped=capped)


def check_bulk_options(
    *, note: str | None, queue: str | None, priority: int | None, by: str | None, limit: int
) -> int:
    """Validate a bulk replay's options once, before any job; return the effective limit.

    The same for every job, so a bad one is one ``InvalidOptions`` up front rather than the
    same refusal repeated for each matching job. ``limit`` past :data:`MAX_BULK_REPLAY` is
    lowered to it; below 1 it is refused (a replay of nothing is a mistake, not a request).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidOptions(f"limit must be a whole number >= 1, got {limit!r}")
    if queue is not None:
        validate_queue_name(queue)
    if priority is not None:
        validate_priority(priority)
    _text("note", note)
    _text("by", by, 200)
    return min(limit, MAX_BULK_REPLAY)


async def _dead_letter_ids(
    manager: Replayer, flt: DeadLetterFilter, limit: int
) -> tuple[list[int], bool]:
    """The ids of the dead letters ``flt`` matches, by id, at most ``limit``; and ``capped``.

    All listed before any is changed: a replayed job leaves the listing, which would shift
    the pages under a loop that changed as it listed. ``error_kind`` and ``since`` are checked
    here, on each job read, so the work is bounded by the rows *read*
    (:data:`MAX_BULK_EXAMINED`), not by the matches: a filter matching little must not page
    through the whole dead-letter history. The listing pages by number (OFFSET), so a job
    another process adds or removes meanwhile shifts the pages: an id read twice is taken once,
    and when the total shrank (rows before the page may have left, moving unread ones back
    into the page just read) the previous page is read again.
    """
    ids: list[int] = []
    seen: set[int] = set()
    examined = 0
    page = 1
    total: int | None = None
    while True:
        found = await manager.list_tasks(
            state=sorted(flt.states),
            queue=flt.queue,
            task=flt.task,
            page=page,
            per_page=_PAGE_SIZE,
            sort_by="id",
        )
        examined += len(found.items)
        for job in found.items:
            if job.id in seen:
                continue
            seen.add(job.id)
            if matches(job, flt):
                if len(ids) == limit:
                    return ids, True
                ids.append(job.id)
        if len(found.items) < _PAGE_SIZE:
            return ids, False  # the last page
        if examined >= MAX_BULK_EXAMINED:
            return ids, True
        shrank = total is not None and found.total_entries < total
        total = found.total_entries
        page = page - 1 if shrank and page > 1 else page + 1
