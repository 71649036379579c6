"""Dead letters replayed with edits over HTTP: the request bodies and what they do.

Owns the optional JSON body of ``POST /api/jobs/{id}/retry`` (:class:`RetryIn`: new args,
kwargs, queue, priority, a note), the replay fields of ``POST /api/jobs/bulk/retry``
(:class:`BulkRetryIn`: the dead-letter filter, a note, a kwargs merge, a queue or priority
change; answered with each refused job and why), and who the operator is (the basic-auth
user name; a bearer token names nobody). Auth and CSRF are the routes' (``Access.write``),
exactly as for every other change. The rules are ``TaskManager.retry_task``'s
(:mod:`taskward.replays`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field

from taskward.errors import InvalidOptions
from taskward.jobs import JobState
from taskward.manager import TaskManager
from taskward.replays import MAX_NOTE_CHARS, DeadLetterFilter
from taskward.web.auth import Access
from taskward.web.models import BulkIn, BulkOut
from taskward.web.queries import parse_states

__all__ = ["BulkRetryIn", "RetryIn", "operator", "replay_bulk", "retry_one"]


class RetryIn(BaseModel):
    """The changes a retry makes (every field optional; none: a plain retry).

    A value the job shows as ``"***"`` (sensitive) and sent back as ``"***"`` keeps the
    stored one.
    """

    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    queue: str | None = None
    priority: int | None = None
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)


class BulkRetryIn(BulkIn):
    """A bulk retry; with any replay field it replays the matching dead letters.

    Replay fields: ``note``, ``set_kwargs`` (merged into each job's kwargs, each job checked
    on its own), ``to_queue``, ``priority``, ``error_kind`` (the last error's kind) and
    ``since`` (ended at or after). Their filter is ``state`` (failed by default; ``dead`` or a
    list with ``discarded`` includes discarded jobs), ``queue`` and ``task``; no text search.
    """

    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)
    set_kwargs: dict[str, Any] | None = None
    to_queue: str | None = None
    priority: int | None = None
    error_kind: str | None = None
    since: datetime | None = None

    @property
    def replays(self) -> bool:
        """True when the body asks for a replay (any replay field given)."""
        fields = (self.note, self.set_kwargs, self.to_queue, self.priority, self.error_kind)
        return any(value is not None for value in (*fields, self.since))


def operator(access: Access, request: Request) -> str | None:
    """Who makes this change, as the replay record names them: the basic-auth user, or None."""
    auth = access.auth
    if auth is not None and access.scheme(request) == "basic":
        return auth.username
    return None


async def retry_one(tw: TaskManager, job_id: int, body: RetryIn | None, by: str | None) -> Any:
    """Retry job ``job_id`` with ``body``'s changes (a plain retry without any)."""
    if body is None or not body.model_fields_set:
        return await tw.retry_task(job_id)
    return await tw.retry_task(
        job_id,
        args=body.args,
        kwargs=body.kwargs,
        queue=body.queue,
        priority=body.priority,
        note=body.note,
        by=by,
    )


async def replay_bulk(tw: TaskManager, body: BulkRetryIn, by: str | None) -> BulkOut:
    """Replay the dead letters ``body`` matches, each on its own."""
    if body.q:
        raise InvalidOptions("a replay takes no text search (q): filter by task, queue, error")
    states = parse_states(body.state) or frozenset({JobState.FAILED})
    if not states <= {JobState.FAILED, JobState.DISCARDED}:
        raise InvalidOptions("a replay takes dead letters only: state failed, discarded or dead")
    flt = DeadLetterFilter(
        include_discarded=JobState.DISCARDED in states,
        task=body.task or None,
        queue=body.queue or None,
        error_kind=body.error_kind or None,
        since=body.since,
    )
    report = await tw.retry_dead_letters(
        flt,
        note=body.note,
        queue=body.to_queue,
        priority=body.priority,
        set_kwargs=body.set_kwargs,
        by=by,
        limit=body.limit,
    )
    return BulkOut(matched=report.matched, changed=list(report.retried), refused=report.refused)
