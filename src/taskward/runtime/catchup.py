"""Which fire times of a schedule a scheduler round inserts, catches up or skips (issue 25).

This module owns the catch-up policy as a pure function, :func:`plan_fires`: from the
schedule (its ``catch_up``, ``max_catch_up``, ``catch_up_within`` and the stored
``last_fire_at``), its cron expression, the time now and the scheduler's ``max_lateness`` it
returns a :class:`FirePlan`. It reads no store and no clock, so every case is a unit test.

The window of one round:

* ``(last_fire_at, now - max_lateness]``: *missed* fire times (no scheduler ran when they came).
  ``skip`` inserts none of them, ``latest`` the newest one, ``all`` the newest
  ``max_catch_up`` ones; only those younger than ``catch_up_within`` are candidates. Every
  missed time not caught up is summarised in **one** skipped record (the count, the first and
  the last), so a month without a scheduler writes one row, not 40,000.
* ``(now - max_lateness, now]``: *on time*, inserted as before issue 25.

A schedule without ``last_fire_at`` (new, or saved before issue 25) has nothing missed: it
starts with the on-time window, which is what the scheduler always did.

A *paused* schedule (issue 26) is not planned at all: schedulers pass it by and write nothing.
Its resume calls :func:`paused_fires`, which summarises every fire time from ``last_fire_at``
(or, for a schedule that never fired, from ``max_lateness`` before the resume, the on-time
window it would otherwise find) up to the resume in **one** skipped record with the reason
"paused"; recording it advances ``last_fire_at``, so the first round after the resume starts at
the next fire time: no burst of caught-up jobs. ``catch_up`` is only for fire times missed
while no scheduler ran and the schedule was not paused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from taskward.cron import CronExpression
from taskward.jobs import CatchUp, CronFire, CronOutcome, Schedule

__all__ = ["SCAN_LIMIT", "FirePlan", "paused_fires", "plan_fires"]

SCAN_LIMIT = 100_000
"""Missed fire times counted one by one at most (a minutely schedule down for 69 days);
past it the summary says "or more" rather than walk a year of minutes."""

_ONE_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class FirePlan:
    """What one round does with a schedule: insert, catch up, and one summary of skips."""

    on_time: tuple[datetime, ...] = ()
    caught_up: tuple[datetime, ...] = ()
    skipped: CronFire | None = None

    @property
    def empty(self) -> bool:
        """True when no fire time fell in the round's window."""
        return not (self.on_time or self.caught_up or self.skipped)


def plan_fires(
    schedule: Schedule, cron: CronExpression, *, now: datetime, max_lateness: float
) -> FirePlan:
    """Return what to do with ``schedule``'s fire times from its ``last_fire_at`` to ``now``."""
    on_time_from = now - timedelta(seconds=max_lateness)
    last = schedule.last_fire_at
    start = on_time_from if last is None else max(last, on_time_from)
    on_time = tuple(cron.fires_between(start, now))
    if last is None or last >= on_time_from:
        return FirePlan(on_time=on_time)
    caught_up = _caught_up(schedule, cron, last, now=now, until=on_time_from)
    skip_until = caught_up[0] - _ONE_US if caught_up else on_time_from
    return FirePlan(
        on_time=on_time,
        caught_up=caught_up,
        skipped=_summary(schedule, cron, last, skip_until),
    )


def paused_fires(
    schedule: Schedule, cron: CronExpression, *, now: datetime, max_lateness: float
) -> CronFire | None:
    """One skipped record for the fire times a paused schedule let pass, up to ``now``.

    None when no fire time passed. The window starts at ``last_fire_at``, or ``max_lateness``
    before ``now`` for a schedule that never fired (older times are outside what a round
    would insert anyway).
    """
    since = schedule.last_fire_at or now - timedelta(seconds=max_lateness)
    fires = cron.fires_between(since, now, limit=SCAN_LIMIT)
    if not fires:
        return None
    count, first = len(fires), fires[0]
    newest = fires[-1] if count < SCAN_LIMIT else _newest(cron, since, now, 1)[0]
    if count == 1:
        what = f"fire time {_short(first)}"
    else:
        counted = f"{count} or more" if count >= SCAN_LIMIT else str(count)
        what = f"{counted} fire times from {_short(first)} to {_short(newest)}"
    return CronFire(
        planned_at=newest,
        outcome=CronOutcome.SKIPPED,
        reason=f"paused: {what} passed while paused; not caught up at resume",
        count=min(count, SCAN_LIMIT),
    )


def _caught_up(
    schedule: Schedule, cron: CronExpression, last: datetime, *, now: datetime, until: datetime
) -> tuple[datetime, ...]:
    """The missed fire times to insert late: the newest ones the policy allows."""
    wanted = {CatchUp.SKIP: 0, CatchUp.LATEST: 1, CatchUp.ALL: schedule.max_catch_up}
    count = wanted[CatchUp(schedule.catch_up)]
    since = last
    if schedule.catch_up_within is not None:
        since = max(last, now - timedelta(seconds=schedule.catch_up_within))
    if count < 1 or since >= until:
        return ()
    return tuple(_newest(cron, since, until, count))


def _newest(cron: CronExpression, since: datetime, until: datetime, count: int) -> list[datetime]:
    """The newest ``count`` fire times in ``(since, until]``.

    Cron only walks forwards, so look back over a window that grows fourfold until it holds
    ``count`` fire times or reaches ``since``: a few short walks instead of one from ``since``.
    """
    span = timedelta(hours=1)
    while True:
        start = max(since, until - span)
        fires = cron.fires_between(start, until, limit=SCAN_LIMIT)
        if len(fires) >= count or start == since:
            return fires[-count:]
        span *= 4


def _summary(
    schedule: Schedule, cron: CronExpression, last: datetime, until: datetime
) -> CronFire | None:
    """One skipped record for every missed fire time in ``(last, until]``, or None."""
    fires = cron.fires_between(last, until, limit=SCAN_LIMIT)
    if not fires:
        return None
    count, first = len(fires), fires[0]
    newest = fires[-1] if count < SCAN_LIMIT else _newest(cron, last, until, 1)[0]
    counted = f"{count} or more" if count >= SCAN_LIMIT else str(count)
    if count == 1:
        what = f"missed: no scheduler ran at {_short(first)}"
    else:
        what = (
            f"missed: {counted} fire times from {_short(first)} to {_short(newest)} "
            "while no scheduler ran"
        )
    return CronFire(
        planned_at=newest,
        outcome=CronOutcome.SKIPPED,
        reason=f"{what}; {_why_not(schedule)}",
        count=min(count, SCAN_LIMIT),
    )


def _why_not(schedule: Schedule) -> str:
    """Why the policy did not catch these times up."""
    policy = CatchUp(schedule.catch_up)
    if policy is CatchUp.SKIP:
        return "catch_up=skip"
    limits = [
        "only the newest" if policy is CatchUp.LATEST else f"max_catch_up={schedule.max_catch_up}"
    ]
    if schedule.catch_up_within is not None:
        limits.append(f"catch_up_within={schedule.catch_up_within:g}s")
    return f"catch_up={policy} ({', '.join(limits)})"


def _short(when: datetime) -> str:
    """A fire time in reasons: ISO 8601 in UTC, to the second."""
    return when.isoformat(timespec="seconds")
