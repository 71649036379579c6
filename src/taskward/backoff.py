"""Retry policies: how long a job waits before its next attempt after a failed one.

This module owns the :class:`RetryPolicy` protocol, the three built-in policies and
:func:`policy_from`, which turns the ``backoff=`` option a user gives to a task into a policy.
A policy is pure: it computes a delay and never touches a job, a clock or a backend.

The default, :class:`ExponentialBackoff`, waits about 1 s, 2 s, 4 s, 8 s … after attempts
1, 2, 3, 4 …, capped at one hour, each delay spread by ±10 % so that jobs which failed together
(a database outage) do not all retry in the same instant.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, TypeGuard, runtime_checkable

from taskward.errors import InvalidOptions

__all__ = [
    "BackoffSpec",
    "CallableBackoff",
    "ConstantBackoff",
    "ExponentialBackoff",
    "RetryPolicy",
    "policy_from",
]


@runtime_checkable
class RetryPolicy(Protocol):
    """Something that says how long to wait before retrying a job."""

    def delay(self, attempt: int) -> float:
        """Return the seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ExponentialBackoff:
    """Exponential growth with proportional jitter and a hard cap.

    The nominal delay after attempt ``n`` is ``min(cap, base * multiplier ** (n - 1))``. The
    returned delay is drawn uniformly from ``[nominal * (1 - jitter), nominal * (1 + jitter)]``,
    with the upper end clipped to ``cap``: below the cap the spread is symmetric, and at the
    cap delays spread over ``[cap * (1 - jitter), cap]`` instead of piling up on ``cap``.
    """

    base: float = 1.0
    """Seconds to wait after the first failed attempt (before jitter)."""
    multiplier: float = 2.0
    """Growth factor between consecutive attempts; 1.0 gives a constant delay."""
    cap: float = 3600.0
    """The longest delay ever returned, in seconds."""
    jitter: float = 0.1
    """Relative spread in ``[0, 1)``: 0.1 means ±10 %; 0 makes delays deterministic."""
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    """Source of jitter; pass ``random.Random(seed)`` for reproducible delays in tests."""

    def __post_init__(self) -> None:
        _require_seconds("ExponentialBackoff base", self.base, positive=True)
        _require_seconds("ExponentialBackoff cap", self.cap, positive=True)
        if not (_is_number(self.multiplier) and 1.0 <= self.multiplier < math.inf):
            raise InvalidOptions(
                f"ExponentialBackoff multiplier must be a finite number >= 1, got "
                f"{self.multiplier!r}"
            )
        if not (_is_number(self.jitter) and 0.0 <= self.jitter < 1.0):
            raise InvalidOptions(
                f"ExponentialBackoff jitter must be a number in [0, 1), e.g. 0.1 for ±10%, "
                f"got {self.jitter!r}"
            )

    def delay(self, attempt: int) -> float:
        """Return the jittered, capped delay in seconds after failed attempt ``attempt``."""
        _require_attempt(attempt)
        try:
            nominal = min(self.cap, self.base * float(self.multiplier) ** (attempt - 1))
        except OverflowError:  # multiplier ** attempt beyond float range: far past the cap
            nominal = self.cap
        if self.jitter == 0.0:
            return nominal
        low = nominal * (1.0 - self.jitter)
        high = min(self.cap, nominal * (1.0 + self.jitter))
        return self.rng.uniform(low, high)


@dataclass(frozen=True, slots=True)
class ConstantBackoff:
    """The same delay after every failed attempt."""

    seconds: float
    """Seconds to wait before each retry (finite, >= 0)."""

    def __post_init__(self) -> None:
        _require_seconds("ConstantBackoff seconds", self.seconds, positive=False)

    def delay(self, attempt: int) -> float:
        """Return :attr:`seconds`, whatever the attempt."""
        _require_attempt(attempt)
        return float(self.seconds)


@dataclass(frozen=True, slots=True)
class CallableBackoff:
    """A user function ``attempt -> seconds`` used as a policy.

    The function's result is checked on every call, because it can only be known then.
    """

    fn: Callable[[int], float]
    """The user's function; it receives the failed attempt number (1-based)."""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InvalidOptions(
                f"CallableBackoff needs a function attempt -> seconds, got {self.fn!r}"
            )

    def delay(self, attempt: int) -> float:
        """Call the function and return its result as seconds.

        Raises:
            InvalidOptions: the function returned something other than a finite, non-negative
                number.
        """
        _require_attempt(attempt)
        seconds = self.fn(attempt)
        if not (_is_number(seconds) and 0.0 <= seconds < math.inf):
            name = getattr(self.fn, "__qualname__", repr(self.fn))
            raise InvalidOptions(
                f"backoff function {name} returned {seconds!r} for attempt {attempt}; "
                "it must return a finite number of seconds >= 0"
            )
        return float(seconds)


BackoffSpec: TypeAlias = RetryPolicy | Callable[[int], float] | float | None
"""What a task's ``backoff=`` option accepts; see :func:`policy_from`."""


def policy_from(backoff: BackoffSpec) -> RetryPolicy:
    """Return the retry policy a ``backoff=`` option describes.

    * ``None`` → :class:`ExponentialBackoff` with its defaults;
    * a number of seconds → :class:`ConstantBackoff`;
    * a :class:`RetryPolicy` instance → itself;
    * any other callable ``attempt -> seconds`` → :class:`CallableBackoff`.

    Raises:
        InvalidOptions: a negative, infinite or NaN number, a bool, a policy class instead of
            an instance, or anything else.
    """
    if backoff is None:
        return ExponentialBackoff()
    if isinstance(backoff, type):
        raise InvalidOptions(
            f"backoff must be a policy instance, not the class {backoff.__name__}; "
            f"write {backoff.__name__}(...)"
        )
    if isinstance(backoff, RetryPolicy):
        return backoff
    if _is_number(backoff):
        return ConstantBackoff(backoff)
    if callable(backoff):
        return CallableBackoff(backoff)
    raise InvalidOptions(
        "backoff must be None (exponential), a number of seconds, a function attempt -> seconds "
        f"or a RetryPolicy, got {type(backoff).__name__}: {backoff!r}"
    )


def _is_number(value: object) -> TypeGuard[float]:
    """Return True for an int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require_seconds(what: str, value: object, *, positive: bool) -> None:
    """Raise InvalidOptions unless ``value`` is a finite number of seconds (> 0 if positive)."""
    ok = _is_number(value) and math.isfinite(value) and value >= 0
    if not ok or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidOptions(f"{what} must be a finite number of seconds {bound}, got {value!r}")


def _require_attempt(attempt: int) -> None:
    """Raise ValueError unless ``attempt`` is a 1-based attempt number."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
