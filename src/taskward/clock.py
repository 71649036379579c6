"""Time, injected: the only module that reads the wall clock.

Production code takes a :class:`Clock`; tests pass a :class:`FrozenClock` and move it by hand,
so no test sleeps to wait for time to pass.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Source of the current time (aware UTC datetimes) and of a monotonic reading."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Return a monotonic reading in seconds, for measuring durations."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()


class FrozenClock:
    """A clock that moves only when told to (for tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._now

    def monotonic(self) -> float:
        """Return the frozen monotonic reading."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (must be aware)."""
        self._mono += (when - self._now).total_seconds()
        self._now = when


def utcnow() -> datetime:
    """Return the current aware UTC time (for code that has no clock injected)."""
    return datetime.now(UTC)
