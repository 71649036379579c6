"""Unit tests for taskward.cron: parsing, validation, fire times and DST behaviour."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskward.cron import ALIASES, CronExpression
from taskward.errors import InvalidCron

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "* * * * *",
        "0 3 * * *",
        "*/15 * * * *",
        "0 9-17 * * MON-FRI",
        "0,30 8,12,18 1,15 * *",
        "5 4 * JAN,JUL sun",
        "0 0 1-31/2 */3 0-6",
        "0 0 L * *",
        "0 0 LW * *",
        "0 0 * * 5L",
        "0 0 * * 1#2",
        "0 0 * * 7",
        "  0   3 * * *  ",
    ],
)
def test_parse_accepts_standard_expressions(expr: str) -> None:
    cron = CronExpression.parse(expr)
    assert cron.expression == expr
    assert cron.timezone == "UTC"


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_parse_accepts_every_alias(alias: str) -> None:
    assert CronExpression.parse(alias).expression == alias
    assert CronExpression.parse(alias.upper()).expression == alias.upper()


@pytest.mark.parametrize(
    ("alias", "after", "expected"),
    [
        ("@yearly", utc(2026, 5, 5), utc(2027, 1, 1)),
        ("@annually", utc(2026, 5, 5), utc(2027, 1, 1)),
        ("@monthly", utc(2026, 5, 5), utc(2026, 6, 1)),
        ("@weekly", utc(2026, 5, 5), utc(2026, 5, 10)),  # 2026-05-10 is a Sunday
        ("@daily", utc(2026, 5, 5, 12), utc(2026, 5, 6)),
        ("@midnight", utc(2026, 5, 5, 12), utc(2026, 5, 6)),
        ("@hourly", utc(2026, 5, 5, 12, 1), utc(2026, 5, 5, 13)),
    ],
)
def test_alias_meanings(alias: str, after: datetime, expected: datetime) -> None:
    assert CronExpression.parse(alias).next_fire(after) == expected


def test_six_fields_rejected_with_clear_message() -> None:
    with pytest.raises(InvalidCron, match="6 fields") as info:
        CronExpression.parse("*/15 * * * * *")
    message = str(info.value)
    assert "5 fields" in message
    assert "seconds" in message
    assert "0 3 * * *" in message  # an example of a valid expression


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("61 * * * *", "minute field '61'"),
        ("* 24 * * *", "hour field '24'"),
        ("* * 0 * *", "day-of-month field '0'"),
        ("* * 32 * *", "day-of-month field '32'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 8", "day-of-week field '8'"),
        ("* * * JANUARY *", "month field 'JANUARY'"),
        ("*/0 * * * *", "minute field '*/0'"),
        ("5-1 * * * *", "minute field '5-1'"),
        ("0 0 30 2 *", "day-of-month field '30'"),  # February 30th never happens
        ("0 0 * * 1#6", "day-of-week field '1#6'"),
        ("a b c d e", "minute field 'a'"),
        ("hello", "1 field(s), expected 5"),
        ("* * * *", "4 field(s), expected 5"),
        ("* * * * * * *", "7 field(s), expected 5"),
        ("", "empty"),
        ("   ", "empty"),
        ("@fortnightly", "unknown cron alias"),
        ("@reboot", "not supported"),
    ],
)
def test_invalid_expressions_raise_invalid_cron(expr: str, fragment: str) -> None:
    with pytest.raises(InvalidCron) as info:
        CronExpression.parse(expr)
    assert fragment in str(info.value)


def test_invalid_expression_message_has_an_example() -> None:
    with pytest.raises(InvalidCron, match=r"for example '0 3 \* \* \*'"):
        CronExpression.parse("61 * * * *")


def test_non_string_expression_rejected() -> None:
    with pytest.raises(InvalidCron, match="must be a string"):
        CronExpression.parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "zone", ["Nowhere/Atlantis", "utc", "../etc/passwd", "/etc/localtime", "", "localtime"]
)
def test_bad_timezone_raises_invalid_cron(zone: str) -> None:
    with pytest.raises(InvalidCron, match="time zone"):
        CronExpression.parse("0 3 * * *", zone)


def test_invalid_cron_is_raised_by_direct_construction_too() -> None:
    with pytest.raises(InvalidCron):
        CronExpression(expression="61 * * * *")
    with pytest.raises(InvalidCron):
        dataclasses.replace(CronExpression.parse("0 3 * * *"), timezone="Mars/Olympus")


def test_value_semantics() -> None:
    a = CronExpression.parse("0 3 * * *", "Europe/Berlin")
    assert a == CronExpression(expression="0 3 * * *", timezone="Europe/Berlin")
    assert hash(a) == hash(CronExpression.parse("0 3 * * *", "Europe/Berlin"))
    assert a != CronExpression.parse("0 3 * * *")
    assert repr(a) == "CronExpression(expression='0 3 * * *', timezone='Europe/Berlin')"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.expression = "* * * * *"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(a)) == a


# -- next_fire --------------------------------------------------------------------------------


def test_next_fire_basic() -> None:
    cron = CronExpression.parse("0 3 * * *")
    assert cron.next_fire(utc(2026, 1, 1)) == utc(2026, 1, 1, 3)
    assert cron.next_fire(utc(2026, 1, 1, 3)) == utc(2026, 1, 2, 3)  # strictly after
    assert cron.next_fire(utc(2026, 1, 1, 2, 59, 59, 999999)) == utc(2026, 1, 1, 3)


def test_next_fire_reads_the_expression_in_the_schedule_zone() -> None:
    cron = CronExpression.parse("0 9 * * MON-FRI", "America/New_York")
    # Friday 2026-01-09 15:00 UTC is 10:00 EST: the next fire is Monday 09:00 EST.
    assert cron.next_fire(utc(2026, 1, 9, 15)) == utc(2026, 1, 12, 14)


def test_next_fire_returns_aware_utc_for_any_input_zone() -> None:
    cron = CronExpression.parse("30 8 * * *", "Europe/Berlin")
    fire = cron.next_fire(datetime(2026, 6, 1, 12, tzinfo=NEW_YORK))
    assert fire.tzinfo is UTC
    assert fire == datetime(2026, 6, 2, 8, 30, tzinfo=BERLIN)


def test_next_fire_rejects_naive_datetimes() -> None:
    cron = CronExpression.parse("0 3 * * *")
    with pytest.raises(ValueError, match="aware"):
        cron.next_fire(datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        cron.next_fire("2026-01-01")  # type: ignore[arg-type]


def test_next_fire_at_the_end_of_the_calendar() -> None:
    with pytest.raises(ValueError, match="no fire time"):
        CronExpression.parse("@yearly", "Europe/Berlin").next_fire(utc(9999, 6, 1))


# -- DST --------------------------------------------------------------------------------------


def test_spring_forward_berlin_fires_once_at_first_valid_instant() -> None:
    # 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST, so 02:30 does not exist.
    cron = CronExpression.parse("30 2 * * *", "Europe/Berlin")
    fires = cron.fires_between(utc(2026, 3, 28, 12), utc(2026, 3, 30, 12))
    assert fires == [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    assert fires[0].astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"


def test_fall_back_berlin_fires_exactly_once() -> None:
    # 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET, so 02:30 happens twice.
    cron = CronExpression.parse("30 2 * * *", "Europe/Berlin")
    day_start = datetime(2026, 10, 25, tzinfo=BERLIN)
    fires = cron.fires_between(day_start, day_start + timedelta(hours=25))
    assert fires == [utc(2026, 10, 25, 0, 30)]  # the first 02:30, in CEST
    # Asked from inside the second 02:00-03:00 hour, it does not fire again that day.
    assert cron.next_fire(utc(2026, 10, 25, 1, 0)) == utc(2026, 10, 26, 1, 30)
    assert cron.next_fire(utc(2026, 10, 25, 1, 29)) == utc(2026, 10, 26, 1, 30)


def test_fall_back_wildcard_hour_follows_elapsed_time() -> None:
    # @hourly fires in both passes of the repeated hour: 25 fires on a 25-hour day.
    day_start = datetime(2026, 10, 25, tzinfo=BERLIN)
    day_end = datetime(2026, 10, 26, tzinfo=BERLIN) - timedelta(seconds=1)
    fires = CronExpression.parse("@hourly", "Europe/Berlin").fires_between(
        day_start - timedelta(seconds=1), day_end
    )
    assert len(fires) == 25
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(fires))


def test_spring_forward_new_york() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    cron = CronExpression.parse("30 2 * * *", "America/New_York")
    fires = cron.fires_between(utc(2026, 3, 7, 12), utc(2026, 3, 9, 12))
    assert fires == [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]  # 03:00 EDT, then 02:30 EDT


def test_fall_back_new_york_fires_once() -> None:
    # 2026-11-01: 02:00 EDT goes back to 01:00 EST, so 01:30 happens twice.
    cron = CronExpression.parse("30 1 * * *", "America/New_York")
    day_start = datetime(2026, 11, 1, tzinfo=NEW_YORK)
    fires = cron.fires_between(day_start, day_start + timedelta(hours=25))
    assert fires == [utc(2026, 11, 1, 5, 30)]  # 01:30 EDT
    assert cron.next_fire(utc(2026, 11, 1, 6, 0)) == utc(2026, 11, 2, 6, 30)


# -- fires_between ----------------------------------------------------------------------------


def test_fires_between_is_start_exclusive_end_inclusive() -> None:
    cron = CronExpression.parse("0 * * * *")
    assert cron.fires_between(utc(2026, 1, 1, 0), utc(2026, 1, 1, 3)) == [
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]
    assert cron.fires_between(utc(2026, 1, 1, 3), utc(2026, 1, 1, 1)) == []


def test_fires_between_is_capped_by_limit() -> None:
    cron = CronExpression.parse("* * * * *")
    assert len(cron.fires_between(utc(2026, 1, 1), utc(2027, 1, 1))) == 1000
    fires = cron.fires_between(utc(2026, 1, 1), utc(2027, 1, 1), limit=3)
    assert fires == [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2), utc(2026, 1, 1, 0, 3)]
    with pytest.raises(ValueError, match="limit"):
        cron.fires_between(utc(2026, 1, 1), utc(2027, 1, 1), limit=0)


def test_fires_between_rejects_naive_bounds() -> None:
    cron = CronExpression.parse("* * * * *")
    with pytest.raises(ValueError, match="aware"):
        cron.fires_between(datetime(2026, 1, 1), utc(2026, 1, 2))
    with pytest.raises(ValueError, match="aware"):
        cron.fires_between(utc(2026, 1, 1), datetime(2026, 1, 2))


# -- describe ---------------------------------------------------------------------------------


def test_describe() -> None:
    assert CronExpression.parse("0 3 * * *", "Europe/Berlin").describe() == (
        "At 03:00 every day (Europe/Berlin)"
    )
    assert CronExpression.parse("@hourly").describe() == "At the start of every hour (UTC)"


# -- properties -------------------------------------------------------------------------------

EXPRESSIONS = st.sampled_from(
    [
        "* * * * *",
        "*/7 * * * *",
        "30 2 * * *",
        "0,30 1-3 * * *",
        "0-59 2 * * *",
        "15 */2 * * *",
        "0 0 L * *",
        "0 9 * * MON-FRI",
        "@hourly",
        "@weekly",
    ]
)
ZONES = st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]
)
# 2026 holds a spring-forward and a fall-back in every zone above that has DST.
INSTANTS = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(expr=EXPRESSIONS, zone=ZONES, after=INSTANTS)
def test_next_fire_is_after_and_strictly_increasing(expr: str, zone: str, after: datetime) -> None:
    cron = CronExpression.parse(expr, zone)
    previous = after
    for _ in range(30):
        fire = cron.next_fire(previous)
        assert fire.tzinfo is UTC
        assert fire > previous
        previous = fire


@settings(max_examples=200, deadline=None)
@given(expr=EXPRESSIONS, zone=ZONES, after=INSTANTS)
def test_fires_between_agrees_with_repeated_next_fire(
    expr: str, zone: str, after: datetime
) -> None:
    cron = CronExpression.parse(expr, zone)
    fires = cron.fires_between(after, after + timedelta(days=3), limit=50)
    expected: list[datetime] = []
    current = after
    while len(expected) < 50:
        current = cron.next_fire(current)
        if current > after + timedelta(days=3):
            break
        expected.append(current)
    assert fires == expected


@settings(max_examples=300, deadline=None)
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    after=INSTANTS,
)
def test_utc_fixed_time_matches_brute_force(minute: int, hour: int, after: datetime) -> None:
    fire = CronExpression.parse(f"{minute} {hour} * * *").next_fire(after)
    candidate = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= after:
        candidate += timedelta(days=1)
    assert fire == candidate


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_parse_raises_only_invalid_cron(text: str) -> None:
    with contextlib.suppress(InvalidCron):
        CronExpression.parse(text)
