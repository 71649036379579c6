"""Bulk actions on an exact set of jobs: the states each action takes, collecting, applying.

A bulk action runs in two steps, so that it changes what the operator confirmed:
:func:`collect_matching` (a filter) or :func:`collect_selected` (ids picked in a list) find
the jobs the action would take, at most :data:`~taskward.web.queries.BULK_LIMIT`, and how
many matched in all; the confirmation shows that count and carries those ids; then
:func:`apply` changes those ids only, each only from a state its action takes
(:func:`action_states`). A job that moved before it is read again (retried by someone else,
finished, started running) is skipped and counted, with the reason.

Each action is checked by the store itself: retry and cancel act only from the states they
allow, and a delete is given the states it may take (``Backend.delete(states=)``, checked
in the delete's own atomic step; a running job is never deleted, ``JobRunning``). A job
retried by someone else after the confirmation is therefore kept, and counted as moved.

:func:`bulk_action` is the admin API's filter form of retry and cancel (no confirmation).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskward.errors import JobNotFound, JobRunning
from taskward.jobs import (
    DEAD_STATES,
    RETRIABLE_BY_OPERATOR,
    WAITING_STATES,
    JobState,
)
from taskward.manager import TaskManager
from taskward.web.queries import (
    BULK_LIMIT,
    SEARCH_SCAN_LIMIT,
    JobQuery,
    filtered_pages,
    is_scan,
    search_jobs,
)

__all__ = [
    "ACTIONS",
    "ACTION_STATES",
    "SKIP_REASONS",
    "Applied",
    "BulkResult",
    "Targets",
    "action_states",
    "apply",
    "bulk_action",
    "collect_matching",
    "collect_selected",
]

ACTIONS = ("retry", "cancel", "delete")
"""The bulk actions, as forms and the API name them."""
ACTION_STATES: dict[str, frozenset[JobState]] = {
    "retry": RETRIABLE_BY_OPERATOR,
    "cancel": WAITING_STATES | {JobState.RUNNING},  # a running job is asked to stop
    "delete": frozenset(JobState) - {JobState.RUNNING},  # never a running job
}
"""The states each action takes a job from: any other is left as it is."""


def action_states(action: str, *, dead: bool, include_discarded: bool) -> frozenset[JobState]:
    """The states ``action`` takes a job from, on the dead letters (``dead``) or all jobs.

    A retry leaves discarded jobs out unless asked: they were discarded because another
    attempt cannot help.
    """
    states = ACTION_STATES[action]
    if dead:
        states &= DEAD_STATES
    if action == "retry" and not include_discarded:
        states -= {JobState.DISCARDED}
    return states


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """The jobs a bulk action would take, to be confirmed.

    ``ids``: the first :data:`BULK_LIMIT` of them, by id; ``matched``: how many matched in
    all (``approximate``: an estimate of the store, or a scan that reached its cap);
    ``left_out``: jobs selected or matching in a state the action does not take, by state
    (``"gone"``: selected, but no longer stored).
    """

    ids: list[int]
    matched: int
    approximate: bool = False
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def capped(self) -> bool:
        """True when more jobs matched than the ids carried (the first ones are taken)."""
        return self.matched > len(self.ids)


async def collect_matching(
    manager: TaskManager,
    query: JobQuery,
    states: frozenset[JobState],
    *,
    limit: int = BULK_LIMIT,
) -> Targets:
    """The jobs matching ``query`` (its filters, search and error kind) in ``states``.

    A search or an error-kind filter is read by a scan of the newest
    :data:`SEARCH_SCAN_LIMIT` jobs, as the list reads it (no deadline: a bulk action takes
    every match within the scan's cap); the first ``limit`` matches by id are taken. The
    caller holds a search slot for such a scan.
    """
    wanted = states if query.states is None else query.states & states
    if not wanted:
        return Targets(ids=[], matched=0)
    scoped = dataclasses.replace(query, states=wanted, page=1, sort_by="id")
    if is_scan(query):
        ids, matched, approximate = await _scanned_ids(manager, scoped, limit)
        return Targets(ids=ids, matched=matched, approximate=approximate)
    ids = [job.id async for batch in filtered_pages(manager, scoped, limit) for job in batch]
    if len(ids) < limit:
        return Targets(ids=ids, matched=len(ids))
    counted = await manager.list_tasks(
        state=sorted(wanted),
        queue=scoped.queue,
        task=scoped.task,
        workflow=scoped.workflow,
        per_page=1,
    )
    return Targets(
        ids=ids,
        matched=max(counted.total_entries, len(ids)),
        approximate=counted.total_is_estimate,
    )


async def _scanned_ids(
    manager: TaskManager, query: JobQuery, limit: int
) -> tuple[list[int], int, bool]:
    """The first ``limit`` ids (by id) of the matches among the newest scanned jobs.

    Newest first, like the list: a search shows the newest matches, so "all matching" must
    mean those, not the oldest :data:`SEARCH_SCAN_LIMIT` jobs. Also how many matched, and
    whether the scan reached its cap (the count is then of the newest jobs only).
    """
    newest = dataclasses.replace(query, sort_by="-id")
    scan = await search_jobs(manager, newest, SEARCH_SCAN_LIMIT, seconds=None)
    ids = sorted(job.id for job in scan.matches)[:limit]
    return ids, len(scan.matches), scan.scanned >= SEARCH_SCAN_LIMIT


async def collect_selected(
    manager: TaskManager, ids: Sequence[int], states: frozenset[JobState]
) -> Targets:
    """The selected jobs the action takes (those in ``states``), and the others by state."""
    taken: list[int] = []
    left_out: Counter[str] = Counter()
    for job_id in dict.fromkeys(ids):  # each once, in the order given
        try:
            job = await manager.get_task_status(job_id)
        except JobNotFound:
            left_out["gone"] += 1
            continue
        if job.state in states:
            taken.append(job_id)
        else:
            left_out[job.state.value] += 1
    return Targets(ids=taken, matched=len(taken), left_out=dict(left_out))


SKIP_REASONS: dict[str, str] = {
    "gone": "it no longer exists",
    "discarded": "it is discarded: a retry takes discarded jobs only when asked",
    "moved": "it is in another state now",
    "running": "it is running: a running job is never deleted",
}
"""Why :func:`apply` left a job as it was, by reason (the API says the text)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What a bulk action did: the ids changed, and each skipped one with the reason.

    ``skipped``: id -> the reason's text; ``reasons``: id -> its key in :data:`SKIP_REASONS`.
    """

    changed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)

    def skip(self, job_id: int, reason: str, text: str | None = None) -> None:
        """Record ``job_id`` as skipped for ``reason`` (a key of :data:`SKIP_REASONS`)."""
        self.reasons[job_id] = reason
        self.skipped[job_id] = text or SKIP_REASONS[reason]

    def count(self, reason: str) -> int:
        """How many jobs were skipped for ``reason``."""
        return sum(why == reason for why in self.reasons.values())


async def apply(
    manager: TaskManager, ids: Sequence[int], action: str, states: frozenset[JobState]
) -> Applied:
    """Apply ``action`` to each of ``ids`` that is in one of ``states`` now; skip the rest.

    Each job is read, checked, then changed on its own, one after another. Every action
    acts only from the states it allows in the store (a delete is given ``states``, checked
    in its own atomic step), so a job that moves between the read and the change, by a
    retry say, is skipped.
    """
    if action not in ACTION_STATES:
        raise ValueError(f"unknown bulk action {action!r}; use one of {list(ACTIONS)}")
    states &= ACTION_STATES[action]
    result = Applied()
    for job_id in dict.fromkeys(ids):
        try:
            job = await manager.get_task_status(job_id)
            if job.state not in states:
                if action == "retry" and job.state is JobState.DISCARDED:
                    result.skip(job_id, "discarded")
                elif job.state is JobState.RUNNING and action == "delete":
                    result.skip(job_id, "running")
                else:
                    result.skip(job_id, "moved", f"it is {job.state.value} now")
            elif await _act(manager, job_id, action, states):
                result.changed.append(job_id)
            else:
                result.skip(job_id, "moved")
        except JobNotFound:
            result.skip(job_id, "gone")
        except JobRunning:
            result.skip(job_id, "running")
    return result


async def _act(manager: TaskManager, job_id: int, action: str, states: frozenset[JobState]) -> bool:
    """Change one job; True when it moved (the store skips a job in another state)."""
    if action == "retry":
        job = await manager.retry_task(job_id)
        return job.state in (JobState.PENDING, JobState.BLOCKED)
    if action == "cancel":
        job = await manager.cancel_task(job_id, reason="cancelled in bulk by an operator")
        return job.state is JobState.CANCELLED or job.cancel_requested
    # JobRunning for a running job; False for one that moved to another state meanwhile.
    return await manager.delete_task(job_id, states=states)


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkResult:
    """What :func:`bulk_action` did: how many jobs matched, and the ids changed."""

    matched: int
    changed: list[int] = field(default_factory=list)


async def bulk_action(
    manager: TaskManager, query: JobQuery, action: str, *, limit: int = BULK_LIMIT
) -> BulkResult:
    """Retry or cancel up to ``limit`` jobs matching ``query`` (the admin API's filter form).

    Without a state filter a retry takes the failed jobs (discarded ones only when the filter
    names them: another attempt cannot help them), a cancel the waiting ones. A search scans
    the newest jobs, as the list does (:func:`collect_matching`).

    Jobs are collected first, then changed one by one: a job that moved meanwhile is skipped
    by the store (retry and cancel only act on the states they allow).
    """
    allowed = RETRIABLE_BY_OPERATOR if action == "retry" else WAITING_STATES | {JobState.RUNNING}
    default = frozenset({JobState.FAILED}) if action == "retry" else WAITING_STATES
    states = (query.states or default) & allowed
    if not states:
        return BulkResult(matched=0)
    scoped = JobQuery(
        states=states, queue=query.queue, task=query.task, search=query.search, sort_by="id"
    )
    targets = (await collect_matching(manager, scoped, states, limit=limit)).ids
    changed: list[int] = []
    for job_id in targets:
        if action == "retry":
            job = await manager.retry_task(job_id)
            moved = job.state is JobState.PENDING
        else:
            job = await manager.cancel_task(job_id, reason="cancelled in bulk by an operator")
            moved = job.state is JobState.CANCELLED or job.cancel_requested
        if moved:
            changed.append(job_id)
    return BulkResult(matched=len(targets), changed=changed)
