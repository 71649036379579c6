"""Unit tests for taskward.backoff: retry delays and the backoff= option."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskward.backoff import (
    CallableBackoff,
    ConstantBackoff,
    ExponentialBackoff,
    RetryPolicy,
    policy_from,
)
from taskward.errors import InvalidOptions

# -- ExponentialBackoff -----------------------------------------------------------------------


def test_exponential_grows_by_doubling_from_one_second() -> None:
    policy = ExponentialBackoff(jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def test_exponential_is_capped_at_one_hour_by_default() -> None:
    policy = ExponentialBackoff(jitter=0)
    assert policy.delay(12) == 2048.0
    assert policy.delay(13) == 3600.0
    assert policy.delay(100) == 3600.0
    assert policy.delay(100_000) == 3600.0  # no OverflowError


def test_exponential_custom_parameters() -> None:
    policy = ExponentialBackoff(base=5, multiplier=3, cap=100, jitter=0)
    assert [policy.delay(n) for n in range(1, 5)] == [5.0, 15.0, 45.0, 100.0]
    assert ExponentialBackoff(base=10, multiplier=1, jitter=0).delay(50) == 10.0


def test_exponential_jitter_stays_within_bounds() -> None:
    policy = ExponentialBackoff(jitter=0.2, rng=random.Random(1234))
    for attempt in range(1, 15):
        nominal = min(3600.0, 2.0 ** (attempt - 1))
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(nominal * 0.8 <= d <= min(3600.0, nominal * 1.2) for d in delays)
        assert len(set(delays)) > 1  # it really is jittered


def test_exponential_jitter_never_exceeds_cap_and_does_not_pile_up_on_it() -> None:
    policy = ExponentialBackoff(cap=60, jitter=0.1, rng=random.Random(7))
    delays = [policy.delay(30) for _ in range(500)]
    assert all(54.0 <= d <= 60.0 for d in delays)
    assert sum(d == 60.0 for d in delays) < 5


def test_exponential_jitter_is_reproducible_with_a_seeded_rng() -> None:
    first = ExponentialBackoff(rng=random.Random(42))
    second = ExponentialBackoff(rng=random.Random(42))
    assert [first.delay(n) for n in range(1, 10)] == [second.delay(n) for n in range(1, 10)]


def test_exponential_default_jitter_is_ten_percent() -> None:
    policy = ExponentialBackoff(rng=random.Random(0))
    delays = [policy.delay(4) for _ in range(1000)]
    assert min(delays) >= 7.2
    assert max(delays) <= 8.8


def test_exponential_is_a_frozen_value() -> None:
    policy = ExponentialBackoff(rng=random.Random(1))
    assert policy == ExponentialBackoff()  # the rng is not part of the value
    assert "rng" not in repr(policy)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.cap = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        ExponentialBackoff(1.0)  # type: ignore[call-arg]  # keyword-only


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0},
        {"base": -1},
        {"base": math.inf},
        {"base": math.nan},
        {"cap": 0},
        {"cap": math.inf},
        {"multiplier": 0.5},
        {"multiplier": math.inf},
        {"multiplier": math.nan},
        {"jitter": -0.1},
        {"jitter": 1.0},
        {"jitter": math.nan},
        {"base": True},
        {"cap": "60"},
    ],
)
def test_exponential_rejects_bad_parameters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptions):
        ExponentialBackoff(**kwargs)


@given(attempt=st.integers(1, 10_000), seed=st.integers(0, 2**32))
def test_exponential_delay_is_finite_and_within_bounds(attempt: int, seed: int) -> None:
    delay = ExponentialBackoff(rng=random.Random(seed)).delay(attempt)
    assert math.isfinite(delay)
    assert 0.9 <= delay <= 3600.0


# -- ConstantBackoff and CallableBackoff ------------------------------------------------------


def test_constant_backoff() -> None:
    policy = ConstantBackoff(30)
    assert [policy.delay(n) for n in (1, 2, 50)] == [30.0, 30.0, 30.0]
    assert ConstantBackoff(0).delay(1) == 0.0


@pytest.mark.parametrize("seconds", [-1, math.inf, math.nan, True, "5"])
def test_constant_backoff_rejects_bad_seconds(seconds: Any) -> None:
    with pytest.raises(InvalidOptions, match="seconds"):
        ConstantBackoff(seconds)


def test_callable_backoff_passes_the_attempt() -> None:
    policy = CallableBackoff(lambda attempt: attempt * 10)
    assert policy.delay(1) == 10.0
    assert policy.delay(3) == 30.0
    assert isinstance(policy.delay(3), float)


@pytest.mark.parametrize("result", [-1, math.inf, -math.inf, math.nan, None, "10", True])
def test_callable_backoff_rejects_bad_results_when_called(result: Any) -> None:
    def bad(attempt: int) -> Any:
        return result

    policy = CallableBackoff(bad)  # accepted: the result is only known when called
    with pytest.raises(InvalidOptions, match="bad returned"):
        policy.delay(1)


def test_callable_backoff_requires_a_callable() -> None:
    with pytest.raises(InvalidOptions):
        CallableBackoff(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "policy",
    [ExponentialBackoff(), ConstantBackoff(1), CallableBackoff(lambda n: 1.0)],
)
@pytest.mark.parametrize("attempt", [0, -1, 1.5, True])
def test_attempt_must_be_one_based(policy: RetryPolicy, attempt: Any) -> None:
    with pytest.raises(ValueError, match="attempt"):
        policy.delay(attempt)


# -- policy_from ------------------------------------------------------------------------------


def test_policy_from_none_is_the_default_exponential() -> None:
    policy = policy_from(None)
    assert isinstance(policy, ExponentialBackoff)
    assert policy == ExponentialBackoff()


@pytest.mark.parametrize("seconds", [0, 5, 2.5])
def test_policy_from_number_is_constant(seconds: float) -> None:
    assert policy_from(seconds) == ConstantBackoff(seconds)


def test_policy_from_callable_wraps_it() -> None:
    def fn(attempt: int) -> float:
        return attempt * 2.0

    policy = policy_from(fn)
    assert policy == CallableBackoff(fn)
    assert policy.delay(4) == 8.0


def test_policy_from_policy_is_identity() -> None:
    exponential = ExponentialBackoff(base=3)
    assert policy_from(exponential) is exponential

    class Custom:
        def delay(self, attempt: int) -> float:
            return 7.0

    custom = Custom()
    assert policy_from(custom) is custom
    assert isinstance(custom, RetryPolicy)


@pytest.mark.parametrize(
    ("backoff", "fragment"),
    [
        (-1, "seconds"),
        (-0.5, "seconds"),
        (math.inf, "seconds"),
        (math.nan, "seconds"),
        (True, "got bool"),
        ("5", "got str"),
        ([1, 2], "got list"),
        (ExponentialBackoff, "not the class"),
    ],
)
def test_policy_from_rejects_bad_input(backoff: Any, fragment: str) -> None:
    with pytest.raises(InvalidOptions, match=fragment):
        policy_from(backoff)
