"""The one pure function that turns a store's figures and the thresholds into a verdict.

:func:`judge` reads nothing and writes nothing: the manager gathers the figures
(``Backend.health_figures``) and the live workers (``Backend.list_workers``) and hands them in,
so every threshold can be pinned by a unit test without a store.

Per queue, each limit of ``failing`` and of ``degraded`` (the queue's own when it has an
override) is compared with its figure; the queue's verdict is the worst level with a limit
passed, and every limit passed is a :class:`HealthReason`. The overall verdict is the worst
queue's. Failure rates are judged per task in the queue, and only once the task has
``min_runs_*`` runs in the window: three runs, one failed, is not a 33 % failure rate worth
waking anyone for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from taskward.health.figures import HealthFigures, QueueFigures, TaskFigures
from taskward.health.report import (
    HealthReason,
    HealthReport,
    HealthVerdict,
    QueueHealth,
    TaskHealth,
)
from taskward.health.run_times import RunTimes
from taskward.health.thresholds import HealthLimits, HealthThresholds
from taskward.jobs import WorkerInfo

__all__ = ["judge"]


def judge(
    figures: HealthFigures,
    thresholds: HealthThresholds,
    *,
    workers: Sequence[WorkerInfo],
    now: datetime,
) -> HealthReport:
    """Judge ``figures`` at ``now`` against ``thresholds``; ``workers`` are the live ones."""
    by_queue = {q.queue: q for q in figures.queues}
    run_times = {(r.queue, r.task): r for r in figures.run_times}
    tasks: dict[str, list[TaskFigures]] = {}
    for task in figures.tasks:
        tasks.setdefault(task.queue, []).append(task)
    served: dict[str, int] = {}
    for worker in workers:
        for queue in worker.queues:
            served[queue] = served.get(queue, 0) + 1
    names = sorted(set(by_queue) | set(tasks) | set(figures.paused) | set(served))
    queues = tuple(
        _judge_queue(
            by_queue.get(name) or QueueFigures(queue=name),
            tasks.get(name, []),
            thresholds,
            paused=name in figures.paused,
            workers=served.get(name, 0),
            now=now,
            run_times=run_times,
        )
        for name in names
    )
    reasons = tuple(
        sorted(
            (reason for queue in queues for reason in queue.reasons),
            key=lambda r: -r.level.severity,
        )
    )
    return HealthReport(
        verdict=HealthVerdict.worst([q.verdict for q in queues]),
        reasons=reasons,
        checked_at=now,
        queues=queues,
        workers_alive=len(workers),
        thresholds=thresholds.describe(),
    )


def _judge_queue(
    figures: QueueFigures,
    tasks: list[TaskFigures],
    thresholds: HealthThresholds,
    *,
    paused: bool,
    workers: int,
    now: datetime,
    run_times: Mapping[tuple[str, str], RunTimes],
) -> QueueHealth:
    age = None
    if figures.oldest_due_at is not None:
        # A job due "in the future" is a clock difference between hosts, not a negative wait.
        age = max(0.0, (now - figures.oldest_due_at).total_seconds())
    degraded, failing = thresholds.levels(figures.queue)
    reasons: list[HealthReason] = []
    for level, limits in ((HealthVerdict.FAILING, failing), (HealthVerdict.DEGRADED, degraded)):
        reasons.extend(
            _tripped(figures, tasks, limits, level, age=age, paused=paused, workers=workers)
        )
    verdict = HealthVerdict.worst([reason.level for reason in reasons])
    return QueueHealth(
        queue=figures.queue,
        verdict=verdict,
        reasons=tuple(reasons),
        oldest_due_age=age,
        backlog=figures.backlog,
        running=figures.running,
        stuck=figures.stuck,
        stuck_ids=figures.stuck_ids,
        paused=paused,
        workers=workers,
        tasks=tuple(_task(t, run_times.get((t.queue, t.task))) for t in tasks),
    )


def _task(figures: TaskFigures, run_times: RunTimes | None) -> TaskHealth:
    """A task's health: its runs, and its run times when it completed a run in the window."""
    return TaskHealth(
        queue=figures.queue,
        task=figures.task,
        last_5m=figures.last_5m,
        last_60m=figures.last_60m,
        p50_seconds=run_times.p50_seconds if run_times else None,
        p95_seconds=run_times.p95_seconds if run_times else None,
    )


def _tripped(
    figures: QueueFigures,
    tasks: list[TaskFigures],
    limits: HealthLimits,
    level: HealthVerdict,
    *,
    age: float | None,
    paused: bool,
    workers: int,
) -> Iterator[HealthReason]:
    """Every limit of one level that the queue's figures pass."""

    def reason(threshold: str, value: float, limit: float, task: str | None = None) -> HealthReason:
        return HealthReason(
            level=level,
            threshold=threshold,
            queue=figures.queue,
            value=value,
            limit=limit,
            task=task,
        )

    most_age = limits.max_oldest_due_age
    if most_age is not None and age is not None and age > most_age:
        yield reason("max_oldest_due_age", age, most_age)
    if limits.max_backlog is not None and figures.backlog > limits.max_backlog:
        yield reason("max_backlog", figures.backlog, limits.max_backlog)
    if limits.max_stuck is not None and figures.stuck > limits.max_stuck:
        yield reason("max_stuck", figures.stuck, limits.max_stuck)
    fewest = limits.min_workers
    # A queue with nothing waiting needs no worker, and a paused one is not served on purpose.
    if fewest is not None and figures.backlog > 0 and not paused and workers < fewest:
        yield reason("min_workers", workers, fewest)
    for task in tasks:
        for threshold, rate, limit in _rates(task, limits):
            yield reason(threshold, rate, limit, task.task)


def _rates(task: TaskFigures, limits: HealthLimits) -> Iterator[tuple[str, float, float]]:
    """``(threshold, rate, limit)`` for each window whose rate counts and passes its limit."""
    windows = (
        ("max_failure_rate_5m", limits.max_failure_rate_5m, limits.min_runs_5m, task.last_5m),
        ("max_failure_rate_60m", limits.max_failure_rate_60m, limits.min_runs_60m, task.last_60m),
    )
    for threshold, most, min_runs, ended in windows:
        rate = ended.rate
        if most is not None and rate is not None and ended.runs >= min_runs and rate > most:
            yield threshold, rate, most
