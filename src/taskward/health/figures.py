"""The figures a store reports for the health check: counts and times, no verdict.

:meth:`taskward.backends.base.Backend.health_figures` answers a :class:`HealthQuery` with a
:class:`HealthFigures`; :func:`taskward.health.verdict.judge` turns them into a report. The
rules every store follows, so that all of them count the same things:

- **Due** jobs are the ``pending`` ones, plus the ``scheduled`` and ``retryable`` ones whose
  ``scheduled_at`` is at or before ``now``: the Stager (``promote_due``) has not moved them
  yet, but they are waiting all the same, and a store whose Stager stopped must show its
  backlog growing old. ``blocked`` workflow steps are not due. A queue's **backlog** is how
  many jobs are due; its **oldest due** time is the earliest ``scheduled_at`` among them.
- A **run** is a job that *ended* in the window: it completed, failed or was discarded, by
  its finish time (``completed_at`` / ``discarded_at``, the time ``prune`` and
  ``finished_per_minute`` go by). A **failure** is a run that ended failed or discarded.
  Attempts that failed and will be retried (``retryable``) are not runs: a job that succeeds
  on its third attempt is one successful run. Cancelled jobs are neither.
- A running job is **stuck** (:meth:`HealthQuery.is_stuck`) when its attempt outlived its
  ``timeout`` by more than the lease grace, when it has no timeout and started more than
  ``stuck_after`` seconds ago, or when its lease ended more than the grace ago and nobody
  rescued it (no Rescuer is running).
- **Run times** (p50 and p95 per task) are of the runs that *completed* in the long window:
  the rules are :mod:`taskward.health.run_times`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from taskward.health.run_times import RunTimes, from_sorted
from taskward.jobs import JobState

__all__ = [
    "FAILURE_STATES",
    "LONG_WINDOW_SECONDS",
    "RUN_STATES",
    "SHORT_WINDOW_SECONDS",
    "STUCK_IDS_SHOWN",
    "Ended",
    "FiguresBuilder",
    "HealthFigures",
    "HealthQuery",
    "QueueFigures",
    "TaskFigures",
]

SHORT_WINDOW_SECONDS: Final = 300.0
"""The short failure-rate window: the last 5 minutes."""
LONG_WINDOW_SECONDS: Final = 3600.0
"""The long failure-rate window: the last hour."""
STUCK_IDS_SHOWN: Final = 20
"""Stuck job ids listed per queue (all of them are counted)."""
RUN_STATES: Final = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.DISCARDED})
"""The final states that make a run."""
FAILURE_STATES: Final = frozenset({JobState.FAILED, JobState.DISCARDED})
"""The final states that make a failed run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthQuery:
    """What the health check asks a store: the time, the two windows, the stuck rule."""

    now: datetime
    """The time of the check (the manager's clock): due, ages and stuck are judged at it."""
    since: datetime
    """Start of the long window: runs that ended at or after it are counted."""
    recent_since: datetime
    """Start of the short window (at or after ``since``)."""
    lease_grace: float
    """Seconds past a timeout (or an ended lease) before a running job counts as stuck."""
    stuck_after: float
    """Seconds a running job without a timeout may run before it counts as stuck."""

    @classmethod
    def at(cls, now: datetime, *, lease_grace: float, stuck_after: float) -> HealthQuery:
        """The query of a check at ``now`` with the standard windows (5 and 60 minutes)."""
        return cls(
            now=now,
            since=now - timedelta(seconds=LONG_WINDOW_SECONDS),
            recent_since=now - timedelta(seconds=SHORT_WINDOW_SECONDS),
            lease_grace=lease_grace,
            stuck_after=stuck_after,
        )

    @property
    def grace_cutoff(self) -> datetime:
        """``now`` minus the lease grace: a timeout or lease that ended before it is overdue."""
        return self.now - timedelta(seconds=self.lease_grace)

    @property
    def started_cutoff(self) -> datetime:
        """``now`` minus ``stuck_after``: a job without a timeout started before it is stuck."""
        return self.now - timedelta(seconds=self.stuck_after)

    def is_stuck(
        self, *, attempted_at: datetime | None, timeout: float | None, lease_until: datetime | None
    ) -> bool:
        """Whether a running job with these values is stuck (the rule every store applies)."""
        if lease_until is not None and lease_until < self.grace_cutoff:
            return True
        if attempted_at is None:
            return False
        if timeout is not None:
            return attempted_at + timedelta(seconds=timeout) < self.grace_cutoff
        return attempted_at < self.started_cutoff


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFigures:
    """One queue's waiting and running jobs at the time of the check."""

    queue: str
    backlog: int = 0
    """Due jobs (see the module docstring)."""
    oldest_due_at: datetime | None = None
    """The earliest ``scheduled_at`` of a due job; None without a backlog."""
    running: int = 0
    stuck: int = 0
    """Running jobs that are stuck."""
    stuck_ids: tuple[int, ...] = ()
    """Up to :data:`STUCK_IDS_SHOWN` of them, longest running first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ended:
    """Runs that ended in one window, and how many of them failed."""

    runs: int = 0
    failures: int = 0

    @property
    def rate(self) -> float | None:
        """The failure rate (0 to 1); None without runs."""
        return self.failures / self.runs if self.runs else None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFigures:
    """One task's runs in one queue over the short and the long window."""

    queue: str
    task: str
    last_5m: Ended = Ended()
    last_60m: Ended = Ended()


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthFigures:
    """Everything a store reports for one check, queues and tasks sorted by name."""

    queues: tuple[QueueFigures, ...] = ()
    """Queues with due, running or stuck jobs (others are absent, not zero)."""
    tasks: tuple[TaskFigures, ...] = ()
    """(queue, task) pairs with at least one run in the long window."""
    paused: frozenset[str] = frozenset()
    run_times: tuple[RunTimes, ...] = ()
    """(queue, task) pairs with at least one completed run in the long window, sorted."""


@dataclass(slots=True)
class _Tally:
    """One queue's figures while a builder collects them."""

    backlog: int = 0
    oldest: datetime | None = None
    running: int = 0
    stuck: int = 0


class FiguresBuilder:
    """Collects a store's rows into :class:`HealthFigures` (shared by every backend).

    A backend adds what its queries return, in any order and in as many pieces as it likes
    (due counts of pending and of not-yet-promoted jobs are merged); :meth:`build` sorts.
    """

    def __init__(self) -> None:
        self._queues: dict[str, _Tally] = {}
        self._stuck_ids: dict[str, list[int]] = {}
        self._tasks: dict[tuple[str, str], list[int]] = {}
        self._durations: dict[tuple[str, str], list[float]] = {}
        self._run_times: dict[tuple[str, str], RunTimes] = {}

    def _queue(self, queue: str) -> _Tally:
        return self._queues.setdefault(queue, _Tally())

    def due(self, queue: str, count: int, oldest: datetime | None) -> None:
        """Add ``count`` due jobs of ``queue``, the earliest due at ``oldest``."""
        if count <= 0:
            return
        tally = self._queue(queue)
        tally.backlog += count
        if oldest is not None and (tally.oldest is None or oldest < tally.oldest):
            tally.oldest = oldest

    def running(self, queue: str, count: int, stuck: int = 0) -> None:
        """Add ``count`` running jobs of ``queue``, ``stuck`` of them stuck."""
        if count <= 0 and stuck <= 0:
            return
        tally = self._queue(queue)
        tally.running += count
        tally.stuck += stuck

    def stuck_id(self, queue: str, job_id: int) -> None:
        """List one stuck job (call in order, longest running first; extra ids are dropped)."""
        shown = self._stuck_ids.setdefault(queue, [])
        if len(shown) < STUCK_IDS_SHOWN:
            shown.append(job_id)

    def ended(self, queue: str, task: str, *, recent: Ended, window: Ended) -> None:
        """Add runs of ``task`` in ``queue``: ``recent`` in the short window, ``window`` in all."""
        counts = self._tasks.setdefault((queue, task), [0, 0, 0, 0])
        counts[0] += recent.runs
        counts[1] += recent.failures
        counts[2] += window.runs
        counts[3] += window.failures

    def ended_job(self, queue: str, task: str, state: JobState, *, recent: bool) -> None:
        """Add one job that ended in ``state`` in the long window (``recent``: the short too)."""
        if state not in RUN_STATES:
            return
        one = Ended(runs=1, failures=1 if state in FAILURE_STATES else 0)
        self.ended(queue, task, recent=one if recent else Ended(), window=one)

    def run_time(self, queue: str, task: str, seconds: float) -> None:
        """Add the run time of one job of ``task`` that completed in the long window."""
        self._durations.setdefault((queue, task), []).append(seconds)

    def run_times(self, found: RunTimes | None) -> None:
        """Add a task's percentiles a store computed itself (None: no completed run)."""
        if found is not None and found.runs > 0:
            self._run_times[(found.queue, found.task)] = found

    def _all_run_times(self) -> tuple[RunTimes, ...]:
        found = dict(self._run_times)
        for (queue, task), seconds in self._durations.items():
            computed = from_sorted(queue, task, sorted(seconds))
            if computed is not None:
                found[(queue, task)] = computed
        return tuple(found[pair] for pair in sorted(found))

    def build(self, paused: frozenset[str]) -> HealthFigures:
        """The figures collected so far."""
        queues = tuple(
            QueueFigures(
                queue=name,
                backlog=tally.backlog,
                oldest_due_at=tally.oldest,
                running=tally.running,
                stuck=tally.stuck,
                stuck_ids=tuple(self._stuck_ids.get(name, ())),
            )
            for name, tally in sorted(self._queues.items())
        )
        tasks = tuple(
            TaskFigures(
                queue=queue,
                task=task,
                last_5m=Ended(runs=c[0], failures=c[1]),
                last_60m=Ended(runs=c[2], failures=c[3]),
            )
            for (queue, task), c in sorted(self._tasks.items())
            if c[2] > 0
        )
        return HealthFigures(
            queues=queues,
            tasks=tasks,
            paused=frozenset(paused),
            run_times=self._all_run_times(),
        )
