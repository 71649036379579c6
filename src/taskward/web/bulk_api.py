"""The admin API's bulk actions: change the jobs matching a filter, or exact ids, up to a limit.

``POST /api/jobs/bulk/retry``
    Failed jobs by default (discarded ones only when ``state`` names them: ``discarded`` or
    ``dead``), as the dashboard and ``taskward retry-all`` do; with a replay field (``note``,
    ``set_kwargs``, ``to_queue``, ``priority``, ``error_kind``, ``since``) a replay: see
    :mod:`taskward.web.replays`.
``POST /api/jobs/bulk/cancel``
    Waiting jobs by default (a running job named by ``state`` is asked to stop).
``POST /api/jobs/bulk/delete``
    Dead letters by default; never a running job (the store refuses it).

Each takes a filter (``state``, ``queue``, ``task``, ``q``, ``limit``) or ``ids``: at most
1,000 job ids, changed exactly, each only from a state its action takes
(:data:`taskward.web.bulk.ACTION_STATES`: a discarded job named by id is retried). ``ids``
with a filter or a replay field is a 400. The answer: ``matched`` (jobs taken), ``changed``
(the ids changed) and, for ids and deletes, ``skipped`` (id -> why it was left as it was:
it is in another state now, is discarded, is running, or no longer exists:
:data:`taskward.web.bulk.SKIP_REASONS`). Jobs are changed by id, one by one, each checked
by the store in the step that changes it (a delete too: a job retried meanwhile is kept).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from taskward.web.admin import MAX_JOB_ID, Admin, edge_errors, job_query
from taskward.web.bulk import ACTION_STATES, apply, collect_matching
from taskward.web.models import BulkIn, BulkOut
from taskward.web.queries import BULK_LIMIT, is_scan
from taskward.web.replays import BulkRetryIn, operator, replay_bulk

__all__ = ["BulkActionIn", "BulkOutcome", "BulkRetryActionIn", "bulk_routes"]

JobIds = list[Annotated[int, Field(ge=1, le=MAX_JOB_ID)]]
IDS_FIELD = Field(
    None,
    min_length=1,
    max_length=BULK_LIMIT,
    description=f"exact job ids (at most {BULK_LIMIT:,}) instead of a filter",
)
FILTER_FIELDS = frozenset({"state", "queue", "task", "q"})
REPLAY_FIELDS = frozenset({"note", "set_kwargs", "to_queue", "priority", "error_kind", "since"})


class BulkActionIn(BulkIn):
    """A bulk cancel or delete: the jobs matching a filter, or exact ``ids`` (not both)."""

    ids: JobIds | None = IDS_FIELD


class BulkRetryActionIn(BulkRetryIn):
    """A bulk retry: a filter, a replay (see ``BulkRetryIn``), or exact ``ids`` alone."""

    ids: JobIds | None = IDS_FIELD


class BulkOutcome(BulkOut):
    """How many jobs matched, the ids changed, and the ids left as they were with why."""

    skipped: dict[int, str] | None = Field(
        default=None, description="ids or deletes: id -> why the job was left as it was"
    )


def _check_ids(body: BulkActionIn | BulkRetryActionIn) -> list[int] | None:
    """The body's ids, refused (400) alongside a filter or a replay field."""
    if body.ids is None:
        return None
    mixed = sorted(body.model_fields_set & (FILTER_FIELDS | REPLAY_FIELDS))
    if mixed:
        raise HTTPException(400, f"give either ids or a filter, not both (got ids and {mixed})")
    return list(dict.fromkeys(body.ids))


def bulk_routes(router: APIRouter, admin: Admin) -> None:
    """Add the bulk routes (before ``/jobs/{id}/...``: "bulk" is not a job id)."""
    tw = admin.manager
    writer = [Depends(admin.access.write)]

    # None fields (refused, skipped) are left out: each answer has only its own.
    @router.post("/jobs/bulk/retry", dependencies=writer, response_model_exclude_none=True)
    async def bulk_retry(body: BulkRetryActionIn, request: Request) -> BulkOutcome:
        """Retry every matching dead letter (or failed/discarded/cancelled job), or ``ids``.

        With a replay field (note, set_kwargs, to_queue, priority, error_kind, since): replay
        the matching dead letters, each checked on its own (``taskward.web.replays``).
        """
        ids = _check_ids(body)
        if ids is not None:
            return await _by_ids(ids, "retry")
        if body.replays:
            async with edge_errors():
                out = await replay_bulk(tw, body, operator(admin.access, request))
            return BulkOutcome(**out.model_dump())
        return await _bulk(body, "retry")

    @router.post("/jobs/bulk/cancel", dependencies=writer, response_model_exclude_none=True)
    async def bulk_cancel(body: BulkActionIn) -> BulkOutcome:
        """Cancel every matching waiting (or running) job, up to limit, or ``ids``."""
        ids = _check_ids(body)
        return await (_bulk(body, "cancel") if ids is None else _by_ids(ids, "cancel"))

    @router.post("/jobs/bulk/delete", dependencies=writer, response_model_exclude_none=True)
    async def bulk_delete(body: BulkActionIn) -> BulkOutcome:
        """Delete every matching job (dead letters by default), or ``ids``; never a running one."""
        ids = _check_ids(body)
        if ids is not None:
            return await _by_ids(ids, "delete")
        async with edge_errors():
            query = job_query(body.state or "dead", body.queue, body.task, body.q)
            states = ACTION_STATES["delete"]
            if is_scan(query):
                async with admin.searches.slot():
                    targets = await collect_matching(tw, query, states, limit=body.limit)
            else:
                targets = await collect_matching(tw, query, states, limit=body.limit)
            result = await apply(tw, targets.ids, "delete", states)
        return BulkOutcome(matched=len(targets.ids), changed=result.changed, skipped=result.skipped)

    async def _by_ids(ids: list[int], action: str) -> BulkOutcome:
        async with edge_errors():
            result = await apply(tw, ids, action, ACTION_STATES[action])
        return BulkOutcome(matched=len(ids), changed=result.changed, skipped=result.skipped)

    async def _bulk(body: BulkIn, action: str) -> BulkOutcome:
        async with edge_errors():
            query = job_query(body.state, body.queue, body.task, body.q)
            result = await admin.bulk_action(query, action, limit=body.limit)
            return BulkOutcome(matched=result.matched, changed=result.changed)
