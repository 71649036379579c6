"""The catch-up planner (``runtime/catchup.py``), the policy's validation, and what a scheduler
running every minute inserts across both Europe/Berlin DST changes (the README's example)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskward.cron import CronExpression, CronPolicy
from taskward.errors import InvalidOptions, TaskwardError
from taskward.jobs import CatchUp, CronOutcome, Overlap, Schedule
from taskward.runtime.catchup import SCAN_LIMIT, plan_fires

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def hourly(**fields: object) -> Schedule:
    return Schedule(name="h", task="t", cron="0 * * * *", **fields)  # type: ignore[arg-type]


HOURLY = CronExpression.parse("0 * * * *")


# -- validation --------------------------------------------------------------------------------


def test_policy_defaults_are_the_old_behaviour() -> None:
    assert CronPolicy.parse() == CronPolicy(
        catch_up=CatchUp.SKIP, max_catch_up=10, catch_up_within=None, overlap=Overlap.ALLOW
    )
    schedule = hourly()
    assert (schedule.catch_up, schedule.overlap) == ("skip", "allow")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"catch_up": "newest"}, "catch_up must be one of 'skip', 'latest', 'all', got 'newest'"),
        ({"catch_up": None}, "catch_up must be one of"),
        ({"overlap": "queue"}, "overlap must be one of 'allow', 'skip', 'cancel_running'"),
        ({"max_catch_up": 0}, "max_catch_up must be an integer from 1 to 1000, got 0"),
        ({"max_catch_up": 1001}, "from 1 to 1000"),
        ({"max_catch_up": True}, "max_catch_up must be an integer"),
        ({"max_catch_up": 2.0}, "max_catch_up must be an integer"),
        ({"catch_up_within": 0}, "catch_up_within must be a number of seconds above 0"),
        ({"catch_up_within": -5.0}, "above 0"),
        ({"catch_up_within": math.nan}, "above 0"),
        ({"catch_up_within": "1h"}, "above 0"),
        ({"catch_up_within": 1e12}, "at most 100 years"),
    ],
)
def test_bad_options_are_refused_saying_what_is_accepted(
    options: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InvalidOptions, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        CronPolicy.parse(**options)  # type: ignore[arg-type]
    assert issubclass(InvalidOptions, TaskwardError)


def test_good_options_are_typed() -> None:
    policy = CronPolicy.parse(
        catch_up="all", max_catch_up=1000, catch_up_within=90, overlap="cancel_running"
    )
    assert policy.catch_up is CatchUp.ALL
    assert policy.overlap is Overlap.CANCEL_RUNNING
    assert policy.catch_up_within == 90.0
    assert isinstance(policy.catch_up_within, float)


# -- the plan ----------------------------------------------------------------------------------


def test_a_new_schedule_looks_back_max_lateness_only() -> None:
    plan = plan_fires(hourly(), HOURLY, now=utc(2026, 3, 2, 13, 0, 30), max_lateness=60)
    assert plan.on_time == (utc(2026, 3, 2, 13),)
    assert plan.skipped is None


def test_nothing_due_is_an_empty_plan() -> None:
    schedule = hourly(last_fire_at=utc(2026, 3, 2, 13))
    assert plan_fires(schedule, HOURLY, now=utc(2026, 3, 2, 13, 59), max_lateness=60).empty


def test_a_clock_that_went_back_plans_nothing() -> None:
    schedule = hourly(last_fire_at=utc(2026, 3, 2, 13))
    assert plan_fires(schedule, HOURLY, now=utc(2026, 3, 2, 11, 0, 5), max_lateness=60).empty


@pytest.mark.parametrize(
    ("options", "caught", "skipped"),
    [
        ({}, 0, 5),
        ({"catch_up": CatchUp.LATEST}, 1, 4),
        ({"catch_up": CatchUp.ALL}, 5, 0),
        ({"catch_up": CatchUp.ALL, "max_catch_up": 3}, 3, 2),
        ({"catch_up": CatchUp.ALL, "catch_up_within": 3 * 3600 + 1}, 3, 2),
        ({"catch_up": CatchUp.LATEST, "catch_up_within": 30}, 0, 5),  # too old to catch up
    ],
)
def test_missed_times_split_by_policy(
    options: dict[str, object], caught: int, skipped: int
) -> None:
    # Last fire 08:00; now 13:20: 09:00 … 13:00 were missed (five).
    schedule = hourly(last_fire_at=utc(2026, 3, 2, 8), **options)
    plan = plan_fires(schedule, HOURLY, now=utc(2026, 3, 2, 13, 20), max_lateness=60)
    missed = [utc(2026, 3, 2, hour) for hour in range(9, 14)]
    assert plan.caught_up == tuple(missed[len(missed) - caught :])
    if skipped:
        assert plan.skipped is not None
        assert (plan.skipped.count, plan.skipped.planned_at) == (skipped, missed[skipped - 1])
        assert plan.skipped.outcome is CronOutcome.SKIPPED
    else:
        assert plan.skipped is None


def test_a_year_of_minutes_is_counted_up_to_the_scan_limit() -> None:
    every_minute = CronExpression.parse("* * * * *")
    schedule = replace(hourly(), cron="* * * * *", last_fire_at=utc(2025, 1, 1))
    plan = plan_fires(
        replace(schedule, catch_up=CatchUp.LATEST),
        every_minute,
        now=utc(2026, 1, 1),
        max_lateness=60,
    )
    assert plan.caught_up == (utc(2025, 12, 31, 23, 59),)
    assert plan.skipped is not None
    assert plan.skipped.count == SCAN_LIMIT
    assert plan.skipped.planned_at == utc(2025, 12, 31, 23, 58)
    assert f"{SCAN_LIMIT} or more fire times" in plan.skipped.reason


# -- DST: what a scheduler running every minute inserts (README, "Cron: catch-up…") ------------


def inserted_over(expr: str, start: datetime, hours: int) -> list[str]:
    """The local wall-clock times a scheduler ticking every minute inserts, in order."""
    cron = CronExpression.parse(expr, "Europe/Berlin")
    schedule = Schedule(name="d", task="t", cron=expr, timezone="Europe/Berlin")
    fired: list[datetime] = []
    now = start
    while now < start + timedelta(hours=hours):
        now += timedelta(minutes=1)
        plan = plan_fires(schedule, cron, now=now, max_lateness=60)
        assert plan.skipped is None
        assert plan.caught_up == ()
        fired += plan.on_time
        if plan.on_time:
            schedule = replace(schedule, last_fire_at=plan.on_time[-1])
    return [f.astimezone(BERLIN).strftime("%d %H:%M %Z") for f in fired]


def test_spring_forward_berlin_0230_does_not_exist() -> None:
    # 2026-03-29 02:00 CET jumps to 03:00 CEST: "30 2 * * *" runs once, at 03:00 CEST;
    # "0 * * * *" simply has no 02:00 that night.
    assert inserted_over("30 2 * * *", utc(2026, 3, 28, 22), 6) == ["29 03:00 CEST"]
    assert inserted_over("0 * * * *", utc(2026, 3, 28, 23), 4) == [
        "29 01:00 CET",
        "29 03:00 CEST",
        "29 04:00 CEST",
        "29 05:00 CEST",
    ]


def test_fall_back_berlin_0230_happens_twice_and_runs_once() -> None:
    # 2026-10-25 03:00 CEST goes back to 02:00 CET: "30 2 * * *" runs once, at the first
    # 02:30 (CEST); "0 * * * *" runs in both passes of the repeated hour.
    assert inserted_over("30 2 * * *", utc(2026, 10, 24, 22), 6) == ["25 02:30 CEST"]
    assert inserted_over("0 * * * *", utc(2026, 10, 24, 23), 4) == [
        "25 02:00 CEST",
        "25 02:00 CET",
        "25 03:00 CET",
        "25 04:00 CET",
    ]
