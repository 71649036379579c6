"""The flow-control half of the memory backend: limits, holds, windows and partitions.

As every store applies them inside its claim, with how often a limit held jobs back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any

from taskward.backends.sql.rows import evolve_job
from taskward.backends.waiters import WakeTimers
from taskward.jobs import Job, JobState
from taskward.limits import (
    MAX_KEYS_PER_CLAIM_EXTRA,
    RUNNING_SHOWN,
    QueueFlow,
    QueueLimits,
    allowance,
    take_turns,
)

S = JobState


class MemoryFlow:
    """Queue limits, holds, windows and partitions; mixed into ``MemoryBackend``."""

    _jobs: dict[int, Job]
    _timers: WakeTimers

    def __init__(self) -> None:
        self._limits: dict[str, QueueLimits] = {}
        self._holds: dict[str, datetime] = {}
        self._windows: dict[str, tuple[int, int]] = {}  # queue -> (rate window, starts in it)
        self._cursors: dict[str, str] = {}  # partitioned queue -> the last key a claim visited
        self._key_holds: dict[tuple[str, str], datetime] = {}
        self._key_windows: dict[tuple[str, str], tuple[int, int]] = {}
        self._waits: dict[str, Counter[str]] = {}  # queue -> claims turned away, by reason

    # Provided by MemoryBackend.
    def _claim(self, job: Job, worker_id: str, now: datetime, lease_until: datetime) -> Job:
        raise NotImplementedError

    def _has_pending(self, queue: str) -> bool:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

    def _fetch_by_key(
        self,
        queue: str,
        flow: QueueFlow,
        wanted: int,
        worker_id: str,
        now: datetime,
        lease_until: datetime,
    ) -> list[Job]:
        """The claim of a partitioned queue (see ``Backend.fetch``); a scan, as memory may."""
        if flow.held_until is not None and now < flow.held_until:
            self._timers.wake_at(queue, now=now, at=flow.held_until)
            if self._has_pending(queue):
                self._note_waits(queue, {"held"})
            return []
        pending, running = self._by_key(queue)
        picks, cut = self._walk_keys(queue, flow.limits, pending, running, wanted, now)
        claimed = [self._claim(j, worker_id, now, lease_until) for j in take_turns(picks, wanted)]
        self._count_starts(queue, flow.limits, claimed, now)
        taken = Counter(j.partition_key for j in claimed)
        # A key whose own limits capped it, with jobs left, while the claim got less than it
        # asked: one wait per reason per claim.
        if len(claimed) < wanted:
            self._note_waits(queue, {r for k, r in cut.items() if len(pending[k]) > taken[k]})
        return claimed

    def _walk_keys(
        self,
        queue: str,
        limits: QueueLimits,
        pending: dict[str, list[Job]],
        running: Counter[str],
        wanted: int,
        now: datetime,
    ) -> tuple[list[list[Job]], dict[str, str]]:
        """Visit the keys from the cursor: each key's candidates, and the keys its limits cut.

        The cut maps a key to the reason its own allowance capped it; the waiting workers of
        the queue wake when the earliest hold or window that held a key back ends.
        """
        cursor = self._cursors.get(queue)
        keys = sorted(pending)
        if cursor is not None:
            keys = [k for k in keys if k > cursor] + [k for k in keys if k <= cursor]
        picks: list[list[Job]] = []
        cut: dict[str, str] = {}
        retry_at: datetime | None = None
        for visited, key in enumerate(keys):
            if len(picks) >= wanted or visited >= wanted + MAX_KEYS_PER_CLAIM_EXTRA:
                break
            self._cursors[queue] = key
            allowed = allowance(
                self._key_flow(queue, key, limits),
                wanted=wanted,
                running=running.get(key, 0),
                now=now,
            )
            if allowed.retry_at is not None:
                retry_at = min(retry_at or allowed.retry_at, allowed.retry_at)
            if allowed.reason is not None:
                cut[key] = allowed.reason
            if allowed.count > 0:
                picks.append(sorted(pending[key], key=_claim_order)[: allowed.count])
        if retry_at is not None:
            self._timers.wake_at(queue, now=now, at=retry_at)
        return picks, cut

    def _note_waits(self, queue: str, reasons: set[str]) -> None:
        """Count one claim of ``queue`` turned away for each of ``reasons``."""
        for reason in reasons:
            self._waits.setdefault(queue, Counter())[reason] += 1

    def _count_starts(
        self, queue: str, limits: QueueLimits, claimed: list[Job], now: datetime
    ) -> None:
        """Add each key's claimed jobs to its rate window."""
        if limits.rate_limit is None:
            return
        window = limits.rate_limit.window_of(now)
        for key, n in Counter(j.partition_key or "" for j in claimed).items():
            used = self._key_flow(queue, key, limits).used_in(window)
            self._key_windows[(queue, key)] = (window, used + n)

    def _by_key(self, queue: str) -> tuple[dict[str, list[Job]], Counter[str]]:
        """The pending jobs of each key of ``queue``, and how many of each key run."""
        pending: dict[str, list[Job]] = {}
        running: Counter[str] = Counter()
        for job in self._jobs.values():
            if job.queue != queue or job.partition_key is None:
                continue
            if job.state is S.PENDING:
                pending.setdefault(job.partition_key, []).append(job)
            elif job.state is S.RUNNING:
                running[job.partition_key] += 1
        return pending, running

    def _key_flow(self, queue: str, key: str, limits: QueueLimits) -> QueueFlow:
        window, used = self._key_windows.get((queue, key), (None, 0))
        return QueueFlow(
            limits=limits,
            held_until=self._key_holds.get((queue, key)),
            window=window,
            window_used=used,
        )

    def _flow_of(self, queue: str) -> QueueFlow | None:
        limits = self._limits.get(queue)
        held_until = self._holds.get(queue)
        if limits is None and held_until is None:
            return None
        window, used = self._windows.get(queue, (None, 0))
        return QueueFlow(
            limits=limits or QueueLimits(),
            held_until=held_until,
            window=window,
            window_used=used,
            waits=dict(self._waits.get(queue, {})),
        )

    async def set_queue_limits(self, queue: str, limits: QueueLimits) -> None:
        """Store or clear a queue's limits; a new partition rule re-keys its waiting jobs."""
        rule = limits.partition_by
        if rule is not None and rule != self._limits.get(queue, QueueLimits()).partition_by:
            for job in list(self._jobs.values()):
                # Every state: a running or finished job may be retried into pending, where the
                # partitioned claim sees only jobs with a key (by the rule in force).
                if job.queue == queue:
                    key = rule.key_of(job.args, job.kwargs)
                    self._jobs[job.id] = evolve_job(job, partition_key=key)
        if limits.is_empty:
            self._limits.pop(queue, None)
            self._waits.pop(queue, None)  # counted since the limits were set: they are gone
        else:
            self._limits[queue] = limits
        self._wake()  # a raised limit may let waiting workers claim

    async def queue_limits(self) -> dict[str, QueueLimits]:
        """Return the queues' limits."""
        return dict(self._limits)

    async def hold_queue(
        self, queue: str, *, until: datetime | None, key: str | None = None
    ) -> None:
        """Hold back ``queue`` (or its ``key``) until ``until``, the later hold winning."""
        holds: dict[Any, datetime] = self._holds if key is None else self._key_holds
        name: Any = queue if key is None else (queue, key)
        if until is None:
            holds.pop(name, None)
            if key is None and queue not in self._limits:
                self._waits.pop(queue, None)  # as a store drops the queue's row
            self._wake()
            return
        held = holds.get(name)
        holds[name] = until if held is None else max(held, until)

    async def partition_flow(self, queue: str, key: str) -> QueueFlow:
        """The queue's limits with the key's hold, window and running jobs."""
        limits = self._limits.get(queue, QueueLimits())
        running = sorted(
            j.id
            for j in self._jobs.values()
            if j.queue == queue and j.partition_key == key and j.state is S.RUNNING
        )
        flow = self._key_flow(queue, key, limits)
        return replace(flow, running=tuple(running[:RUNNING_SHOWN]))

    async def queue_flow(self) -> dict[str, QueueFlow]:
        """Limits, hold and rate window of each queue that has any."""
        flows = {q: self._flow_of(q) for q in {*self._limits, *self._holds}}
        return {q: flow for q, flow in flows.items() if flow is not None}


def _claim_order(job: Job) -> tuple[int, datetime, int]:
    return (job.priority, job.scheduled_at, job.id)
