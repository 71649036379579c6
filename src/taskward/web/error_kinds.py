"""Dead letters grouped by the kind of their last error, and the names a filter suggests.

No store indexes an error's kind, so the grouping reads the matching dead letters (their
queue and task filters applied by the store) up to :data:`KIND_SCAN_LIMIT`, newest first,
and says when it stopped there: the counts are then those of the newest ones. The page asks
through :class:`KindCache`, so page loads within a few seconds share one scan per filter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass

from taskward.jobs import DEAD_STATES, JobState
from taskward.manager import TaskManager
from taskward.web.queries import JobQuery, filtered_pages

__all__ = [
    "KIND_SCAN_LIMIT",
    "NO_ERROR",
    "KindCache",
    "KindCounts",
    "error_kinds",
    "suggestions",
]

KIND_SCAN_LIMIT = 5000
"""The grouping reads at most this many dead letters."""
NO_ERROR = "(no error recorded)"
"""The group of dead letters without an error record (cancelled or discarded from outside)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KindCounts:
    """Dead letters by the kind of their last error, the largest group first.

    ``scanned``: dead letters read; ``capped``: the scan stopped at its limit, so the counts
    are those of the newest ``scanned``; ``discarded``: how many of them were discarded.
    """

    counts: list[tuple[str, int]]
    scanned: int
    capped: bool
    discarded: int


async def error_kinds(
    manager: TaskManager, query: JobQuery, *, limit: int = KIND_SCAN_LIMIT
) -> KindCounts:
    """Group the dead letters matching ``query``'s queue, task and states by error kind.

    The text search and the error-kind filter are not applied: the groups are what one
    picks from.
    """
    states = (query.states or DEAD_STATES) & DEAD_STATES
    scoped = dataclasses.replace(
        query, states=states, search=None, error_kind=None, page=1, sort_by="-id"
    )
    kinds: Counter[str] = Counter()
    scanned = discarded = 0
    async for batch in filtered_pages(manager, scoped, limit):
        for job in batch:
            kinds[job.last_error.kind if job.last_error else NO_ERROR] += 1
            discarded += job.state is JobState.DISCARDED
        scanned += len(batch)
    ordered = sorted(kinds.items(), key=lambda item: (-item[1], item[0]))
    return KindCounts(counts=ordered, scanned=scanned, capped=scanned >= limit, discarded=discarded)


KindKey = tuple[frozenset[JobState] | None, str | None, str | None, int | None]


class KindCache:
    """:func:`error_kinds` kept ``max_age`` seconds per filter (states, queue, task, workflow).

    The grouping reads up to :data:`KIND_SCAN_LIMIT` jobs on every page load, and reads may
    be public: one scan at a time (the lock), and a page loaded again within ``max_age``
    reuses its counts. At most ``size`` filters are kept, the least recently used dropped.
    """

    def __init__(self, max_age: float = 5.0, size: int = 32) -> None:
        self.max_age = max_age
        self.size = size
        self._kept: OrderedDict[KindKey, tuple[float, KindCounts]] = OrderedDict()
        self._lock = asyncio.Lock()

    def clear(self) -> None:
        """Forget every kept count (after a bulk action changed the dead letters)."""
        self._kept.clear()

    async def get(self, manager: TaskManager, query: JobQuery) -> KindCounts:
        """The counts of ``query``'s filter: kept ones when fresh, else a new scan."""
        key: KindKey = (query.states, query.queue, query.task, query.workflow)
        async with self._lock:
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept[0] < self.max_age:
                self._kept.move_to_end(key)
                return kept[1]
            counts = await error_kinds(manager, query)
            self._kept[key] = (time.monotonic(), counts)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
            return counts


async def suggestions(manager: TaskManager) -> tuple[list[str], list[str]]:
    """Queue and task names to suggest in the filters: from the store and this process.

    Queues: those the store counts jobs in, paused ones, and those workers serve. Tasks:
    those registered here and those the schedules enqueue (both cheap to read; the store
    keeps no list of task names).
    """
    stats = await manager.get_statistics()
    queues = set(stats["queues"]) | set(stats["paused"])
    for node in stats["workers"]["nodes"]:
        queues |= set(node["queues"])
    tasks = {task.name for task in manager.registry}
    tasks |= {schedule.task for schedule in await manager.list_recurring_tasks()}
    return sorted(queues), sorted(tasks)
