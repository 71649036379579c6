"""Rates, their windows, and the arithmetic every backend applies in its claim."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from taskward.errors import InvalidOptions, RateLimited, Snooze
from taskward.limits import (
    Allowance,
    QueueFlow,
    QueueLimits,
    Rate,
    allowance,
    parse_rate,
    validate_global_limit,
)
from taskward.runtime.executor import classify
from taskward.states import Snoozed

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # a whole day: every window used here opens at T0


@pytest.mark.parametrize(
    ("text", "count", "seconds"),
    [
        ("100/s", 100, 1.0),
        ("5000/m", 5000, 60.0),
        ("2/h", 2, 3600.0),
        ("1/d", 1, 86400.0),
        ("10/5s", 10, 5.0),
        ("3/250ms", 3, 0.25),
        (" 7 / 1.5m ", 7, 90.0),
    ],
)
def test_rates_read_from_text(text: str, count: int, seconds: float) -> None:
    assert parse_rate(text) == Rate(count, seconds)


def test_rates_read_from_pairs_and_none() -> None:
    assert parse_rate((50, 1)) == Rate(50, 1.0)
    assert parse_rate([5, 0.1]) == Rate(5, 0.1)
    assert parse_rate(Rate(3, 2.0)) == Rate(3, 2.0)
    assert parse_rate(None) is None


@pytest.mark.parametrize(
    "bad",
    [
        "fast",
        "0/s",
        "-1/s",
        "10/0s",
        "10/",
        "/s",
        "1.5/s",
        "100/x",
        "100/s/s",
        (0, 1),
        (5, -1),
        (5, 0),
        (5, math.nan),
        (5, math.inf),
        (True, 1),
        (5, "1"),
        (5, 1e-3),  # below the 10 ms floor
        (5, 8 * 86400),  # above a week
        (2**31, 1),
        (1, 2, 3),
        42,
        b"100/s",
    ],
)
def test_bad_rates_are_refused_with_what_is_accepted(bad: object) -> None:
    with pytest.raises(InvalidOptions):
        parse_rate(bad)


def test_a_rate_prints_as_it_is_written() -> None:
    assert [str(parse_rate(t)) for t in ("100/s", "5000/m", "2/h", "1/d", "10/5s")] == [
        "100/s",
        "5000/m",
        "2/h",
        "1/d",
        "10/5s",
    ]
    assert str(Rate(3, 0.25)) == "3/0.25s"
    assert parse_rate(str(Rate(3, 0.25))) == Rate(3, 0.25)


def test_windows_are_fixed_and_aligned_to_the_epoch() -> None:
    rate = Rate(10, 60.0)
    first = rate.window_of(T0)
    assert rate.window_start(first) == T0
    assert rate.window_of(T0 + timedelta(seconds=59.999)) == first
    assert rate.window_of(T0 + timedelta(seconds=60)) == first + 1
    assert rate.window_of(T0 - timedelta(microseconds=1)) == first - 1
    assert Rate.of_ms(10, rate.period_ms) == rate
    assert Rate(1, 0.0104).period_ms == 10  # kept to the millisecond


def test_global_limits_are_validated() -> None:
    assert validate_global_limit(None) is None
    assert validate_global_limit(5) == 5
    for bad in (0, -3, 2**31, True, 2.0, "5"):
        with pytest.raises(InvalidOptions):
            validate_global_limit(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptions):
        QueueLimits(global_limit=0)
    with pytest.raises(InvalidOptions):
        QueueLimits(rate_limit="100/s")  # type: ignore[arg-type]
    assert QueueLimits().is_empty
    assert not QueueLimits(rate_limit=Rate(1, 1.0)).is_empty


def flow(**kwargs: object) -> QueueFlow:
    limits = QueueLimits(
        global_limit=kwargs.pop("global_limit", None),  # type: ignore[arg-type]
        rate_limit=kwargs.pop("rate_limit", None),  # type: ignore[arg-type]
    )
    return QueueFlow(limits=limits, **kwargs)  # type: ignore[arg-type]


def test_allowance_without_limits_is_what_was_wanted() -> None:
    assert allowance(QueueFlow(), wanted=7, running=100, now=T0) == Allowance(7)


def test_allowance_caps_at_the_global_limit() -> None:
    assert allowance(flow(global_limit=5), wanted=10, running=3, now=T0) == Allowance(
        2, None, "global_limit"
    )
    assert allowance(flow(global_limit=5), wanted=10, running=9, now=T0) == Allowance(
        0, None, "global_limit"
    )
    assert allowance(flow(global_limit=5), wanted=2, running=3, now=T0) == Allowance(2)


def test_allowance_caps_at_what_is_left_of_the_window_and_says_when_the_next_opens() -> None:
    rate = Rate(3, 1.0)
    window = rate.window_of(T0)
    opens = T0 + timedelta(seconds=1)
    used_two = flow(rate_limit=rate, window=window, window_used=2)
    assert allowance(used_two, wanted=10, running=0, now=T0) == Allowance(1, opens, "rate_limit")
    assert allowance(used_two, wanted=1, running=0, now=T0) == Allowance(1)
    full = flow(rate_limit=rate, window=window, window_used=3)
    assert allowance(full, wanted=1, running=0, now=T0) == Allowance(0, opens, "rate_limit")
    # A window that has passed counts as empty.
    later = T0 + timedelta(seconds=1)
    assert allowance(full, wanted=10, running=0, now=later) == Allowance(
        3, later + timedelta(seconds=1), "rate_limit"
    )


def test_allowance_of_both_limits_takes_the_lower() -> None:
    rate = Rate(3, 1.0)
    both = flow(global_limit=2, rate_limit=rate)
    assert allowance(both, wanted=10, running=0, now=T0) == Allowance(2, None, "global_limit")
    assert allowance(both, wanted=10, running=2, now=T0) == Allowance(0, None, "global_limit")


def test_a_hold_allows_nothing_until_it_ends() -> None:
    until = T0 + timedelta(seconds=30)
    held = flow(held_until=until, global_limit=5)
    assert allowance(held, wanted=10, running=0, now=T0) == Allowance(0, until, "held")
    assert allowance(held, wanted=10, running=0, now=until) == Allowance(5, None, "global_limit")


def test_rate_limited_is_a_snooze_that_holds_the_queue() -> None:
    signal = RateLimited(retry_after=12.5)
    assert isinstance(signal, Snooze)
    assert signal.retry_after == 12.5
    assert classify(signal) == Snoozed(seconds=12.5, hold_queue=True)
    assert classify(Snooze(3)) == Snoozed(seconds=3, hold_queue=False)
    for bad in (-1, math.nan, math.inf, "soon"):
        with pytest.raises(InvalidOptions):
            RateLimited(retry_after=bad)  # type: ignore[arg-type]


def test_a_claim_behind_a_newer_window_waits_for_it() -> None:
    rate = Rate(3, 1.0)
    newer = flow(rate_limit=rate, window=rate.window_of(T0) + 1, window_used=3)
    # Its clock is behind the claim that stored the window: it takes nothing until then.
    assert allowance(newer, wanted=5, running=0, now=T0) == Allowance(
        0, T0 + timedelta(seconds=1), "rate_limit"
    )
    # A window far in the future came from a wrong clock: this claim's own window counts.
    wrong = flow(rate_limit=rate, window=rate.window_of(T0) + 3600, window_used=3)
    assert allowance(wrong, wanted=5, running=0, now=T0) == Allowance(
        3, T0 + timedelta(seconds=1), "rate_limit"
    )
