"""Queue limits that every node obeys: a global running limit, a rate limit, and holds.

The values here carry no I/O. Every backend stores them per queue and applies
:func:`allowance` in the transaction (or script) that claims jobs, so the numbers are exact
across workers and hosts.

Rate limits use **fixed windows aligned to the Unix epoch**: ``Rate(100, 1.0)`` allows at most
100 starts of the queue in each window ``[k s, (k+1) s)``. Fixed windows need two numbers of
state per queue (the window's index and the starts counted in it), which every store updates
in the claim itself, and a worker waiting for the next window knows when it opens. A sliding
window would need the time of each of the last N starts (O(N) state read on every claim). What
fixed windows allow: up to N starts at the end of one window and N more at the start of the
next, so any span of the window's length may see up to 2N; choose a shorter window
(``(5, 0.1)`` rather than ``"50/s"``) when bursts matter more than the count.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from taskward.errors import InvalidOptions

__all__ = [
    "CLOCK_LAG_TOLERATED",
    "MAX_ARG_POSITION",
    "MAX_GLOBAL_LIMIT",
    "MAX_KEYS_PER_CLAIM_EXTRA",
    "MAX_RATE_SECONDS",
    "MIN_RATE_SECONDS",
    "RUNNING_SHOWN",
    "UNSET",
    "Allowance",
    "PartitionBy",
    "QueueFlow",
    "QueueLimits",
    "Rate",
    "Unset",
    "allowance",
    "key_text",
    "parse_rate",
    "take_turns",
    "validate_global_limit",
]

T = TypeVar("T")

MAX_GLOBAL_LIMIT = 2**31 - 1
"""The largest ``global_limit`` or rate count: it must fit a 32-bit integer column."""
MIN_RATE_SECONDS = 0.01
"""The shortest rate window (10 ms): shorter ones are below the precision of a claim."""
MAX_RATE_SECONDS = 7 * 86_400.0
"""The longest rate window (a week)."""

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_RATE_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*")


class Unset(enum.Enum):
    """The type of :data:`UNSET`: a limit not passed to ``configure_queue`` keeps its value."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


def validate_global_limit(limit: int | None) -> int | None:
    """Return ``limit`` if it is None (no limit) or an int in 1..MAX_GLOBAL_LIMIT, else raise."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidOptions(f"global_limit must be an int >= 1 or None, got {limit!r}")
    if not 1 <= limit <= MAX_GLOBAL_LIMIT:
        raise InvalidOptions(
            f"global_limit must be between 1 and {MAX_GLOBAL_LIMIT:,} (pause the queue to stop "
            f"it; None for no limit), got {limit}"
        )
    return limit


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts per window of ``seconds`` (fixed, aligned to the epoch).

    ``seconds`` is kept to the millisecond; see the module's docstring for why windows are
    fixed and what that allows at a window's edge.
    """

    count: int
    seconds: float

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise InvalidOptions(f"a rate's count must be an int, got {self.count!r}")
        if not 1 <= self.count <= MAX_GLOBAL_LIMIT:
            raise InvalidOptions(
                f"a rate's count must be between 1 and {MAX_GLOBAL_LIMIT:,} (pause the queue to "
                f"stop it), got {self.count}"
            )
        seconds = self.seconds
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise InvalidOptions(f"a rate's window must be a number of seconds, got {seconds!r}")
        if not MIN_RATE_SECONDS <= seconds <= MAX_RATE_SECONDS:  # NaN fails this too
            raise InvalidOptions(
                f"a rate's window must be between {MIN_RATE_SECONDS}s and "
                f"{MAX_RATE_SECONDS:g}s, got {seconds!r}"
            )
        object.__setattr__(self, "seconds", round(float(seconds) * 1000) / 1000)

    @property
    def period_ms(self) -> int:
        """The window's length in milliseconds (what the stores keep)."""
        return round(self.seconds * 1000)

    def window_of(self, now: datetime) -> int:
        """The index of the window that holds ``now``: windows count from the epoch."""
        return _epoch_ms(now) // self.period_ms

    def window_start(self, window: int) -> datetime:
        """When window number ``window`` opens."""
        return _from_epoch_ms(window * self.period_ms)

    def __str__(self) -> str:
        for unit in ("d", "h", "m", "s"):
            if self.seconds == _UNITS[unit]:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.seconds:g}s"

    @classmethod
    def of_ms(cls, count: int, period_ms: int) -> Rate:
        """The rate a store keeps as a count and a window in milliseconds."""
        return cls(count, period_ms / 1000)


def parse_rate(value: object) -> Rate | None:
    """Read a rate limit: ``"100/s"``, ``"5000/m"``, ``"2/h"``, ``"10/5s"``, ``(count, seconds)``.

    None means no rate limit. Anything else raises :class:`InvalidOptions` saying what is
    accepted.
    """
    if value is None or isinstance(value, Rate):
        return value
    if isinstance(value, str):
        match = _RATE_RE.fullmatch(value)
        if match is None:
            raise InvalidOptions(
                f"rate_limit must look like '100/s', '5000/m', '2/h' or '10/5s', got {value!r}"
            )
        count, amount, unit = match.groups()
        seconds = float(amount or 1) * _UNITS[unit]
        return Rate(int(count), seconds)
    if isinstance(value, tuple | list) and len(value) == 2:
        return Rate(value[0], value[1])
    raise InvalidOptions(
        f"rate_limit must be a string like '100/s', a (count, seconds) pair or None, got {value!r}"
    )


MAX_ARG_POSITION = 255
"""The largest args position a queue may be partitioned by."""
MAX_KEYS_PER_CLAIM_EXTRA = 100
"""A partitioned claim visits at most ``wanted`` + this many keys (blocked ones included)."""
_KWARG_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class PartitionBy:
    """Which argument of a job is its partition key: a keyword argument or a position.

    The store reads the key from the job's stored arguments when the job is inserted (and
    again for every waiting job of the queue when the rule changes), so every producer
    follows the rule the moment it is stored, whatever its version. The key is the argument's
    text when it is a string, its compact JSON otherwise (``42``, ``true``), and ``""`` when
    the job lacks it. A function of the arguments cannot be stored for other processes: a
    task gives one with ``@task(partition_key=fn)``, computed by the producer.
    """

    kwarg: str | None = None
    arg: int | None = None

    def __post_init__(self) -> None:
        if (self.kwarg is None) == (self.arg is None):
            raise InvalidOptions("partition_by names one kwarg or one args position")
        if self.kwarg is not None and (
            not isinstance(self.kwarg, str) or not _KWARG_RE.fullmatch(self.kwarg)
        ):
            raise InvalidOptions(
                f"partition_by must name a keyword argument (a Python identifier of at most "
                f"64 characters), got {self.kwarg!r}"
            )
        if self.arg is not None and (
            isinstance(self.arg, bool)
            or not isinstance(self.arg, int)
            or not 0 <= self.arg <= MAX_ARG_POSITION
        ):
            raise InvalidOptions(
                f"partition_by as an args position must be an int in 0..{MAX_ARG_POSITION}, "
                f"got {self.arg!r}"
            )

    def __str__(self) -> str:
        return f"kwarg:{self.kwarg}" if self.kwarg is not None else f"arg:{self.arg}"

    @classmethod
    def parse(cls, value: object) -> PartitionBy | None:
        """Read a rule: a kwarg name, an args position, ``"kwarg:name"``/``"arg:N"``, or None."""
        if value is None or isinstance(value, PartitionBy):
            return value
        if isinstance(value, str):
            kind, sep, rest = value.partition(":")
            if sep and kind == "kwarg":
                return cls(kwarg=rest)
            if sep and kind == "arg" and rest.isdigit():
                return cls(arg=int(rest))
            return cls(kwarg=value)
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(arg=value)
        if callable(value):
            raise InvalidOptions(
                "partition_by of a queue is a kwarg name or an args position: the store applies "
                "it for every producer, and a function cannot be stored; give the task a key "
                "function instead: @task(partition_key=fn)"
            )
        raise InvalidOptions(
            f"partition_by must be a kwarg name, an args position or None, got {value!r}"
        )

    def key_of(self, args: list[Any], kwargs: dict[str, Any]) -> str:
        """The key of a job with these stored arguments (what every store computes)."""
        if self.kwarg is not None:
            value = kwargs.get(self.kwarg)
        else:
            assert self.arg is not None
            value = args[self.arg] if self.arg < len(args) else None
        return key_text(value)


def key_text(value: object) -> str:
    """A partition key as stored: a string as it is, None as ``""``, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLimits:
    """Limits of one queue that every worker on every host obeys, stored in the backend.

    ``global_limit``: at most that many jobs of the queue run at once across all workers.
    ``rate_limit``: at most ``count`` jobs of the queue start in each fixed window (see
    :class:`Rate`). ``fetch`` applies both in the same transaction (or script) that claims, so
    they are exact. None: no such limit (each worker's own concurrency still applies).
    ``partition_by``: the queue is split by a key read from each job's arguments; both limits
    then apply to each key on its own, and keys take turns (round robin) at every claim.
    """

    global_limit: int | None = None
    rate_limit: Rate | None = None
    partition_by: PartitionBy | None = None

    def __post_init__(self) -> None:
        validate_global_limit(self.global_limit)
        if self.rate_limit is not None and not isinstance(self.rate_limit, Rate):
            raise InvalidOptions(f"rate_limit must be a Rate or None, got {self.rate_limit!r}")
        if self.partition_by is not None and not isinstance(self.partition_by, PartitionBy):
            raise InvalidOptions(
                f"partition_by must be a PartitionBy or None, got {self.partition_by!r}"
            )

    @property
    def is_empty(self) -> bool:
        """True when no limit is set (storing it clears the queue's limits)."""
        return self.global_limit is None and self.rate_limit is None and self.partition_by is None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFlow:
    """Where a queue stands against its limits, as its store last wrote it.

    ``held_until``: no job of the queue starts before then (a job raised ``RateLimited``), or
    None. ``window`` and ``window_used``: the index of the rate window of the last claim and how
    many jobs started in it (a window that has passed counts as empty). For one key of a
    partitioned queue (``Backend.partition_flow``) these are the key's own, and ``running``
    lists the ids of the key's running jobs (at most :data:`RUNNING_SHOWN`); None otherwise.
    ``waits``: how many claims a limit turned away while the queue had due jobs left, by
    reason (:data:`WAIT_REASONS`), since its limits row was made (``queue_flow`` only).
    """

    limits: QueueLimits = QueueLimits()
    held_until: datetime | None = None
    window: int | None = None
    window_used: int = 0
    running: tuple[int, ...] | None = None
    waits: Mapping[str, int] = field(default_factory=dict)

    def used_in(self, window: int) -> int:
        """How many jobs started in window number ``window`` (0 for any other window)."""
        return self.window_used if self.window == window else 0


WAIT_REASONS: Final = ("held", "global_limit", "rate_limit")
"""Why a claim was turned away (``QueueFlow.waits``); a key's hold, limit or window of a
partitioned queue counts under the same three."""


@dataclass(frozen=True, slots=True)
class Allowance:
    """How many jobs a claim may take, and when a claim stopped by time may try again.

    ``retry_at`` is set when a hold or a full rate window capped the claim below what it
    asked: the time the hold ends or the next window opens, so a waiting worker wakes then.
    ``reason``: which of :data:`WAIT_REASONS` capped it below what it asked (None: nothing).
    """

    count: int
    retry_at: datetime | None = None
    reason: str | None = None


CLOCK_LAG_TOLERATED = timedelta(seconds=10)
"""A stored rate window at most this far ahead of a claim's clock makes the claim wait for it;
one further ahead came from a wrong clock, and the claim's own window replaces it."""

RUNNING_SHOWN = 100
"""``partition_flow`` lists at most this many running job ids of a key."""


def allowance(flow: QueueFlow, *, wanted: int, running: int, now: datetime) -> Allowance:
    """How many of ``wanted`` jobs a claim at ``now`` may take, given the queue's ``running``.

    The arithmetic every backend applies inside its claim: a hold allows nothing until it
    ends; the global limit allows ``global_limit - running``; the rate limit allows what is
    left of the current window.
    """
    if flow.held_until is not None and now < flow.held_until:
        return Allowance(0, flow.held_until, "held")
    count = max(wanted, 0)
    reason = None
    limits = flow.limits
    if limits.global_limit is not None and limits.global_limit - running < count:
        count = max(limits.global_limit - running, 0)
        reason = "global_limit"
    rate = limits.rate_limit
    if rate is not None:
        window = rate.window_of(now)
        stored = flow.window
        if stored is not None and window < stored <= rate.window_of(now + CLOCK_LAG_TOLERATED):
            # A claim that waited for its turn behind a claim with a later clock: counting it in
            # its own, older window would reset the newer one's count. It waits for that window.
            return Allowance(0, rate.window_start(stored), "rate_limit")
        left = max(rate.count - flow.used_in(window), 0)
        if left < count:
            return Allowance(left, rate.window_start(window + 1), "rate_limit")
    return Allowance(count, None, reason)


def take_turns(picks: Sequence[Sequence[T]], wanted: int) -> list[T]:
    """Merge the candidates of each key, one per key per turn in visiting order, up to ``wanted``.

    ``picks`` holds each visited key's candidates in its own claim order. The first turn takes
    the first candidate of every key, the second the second, and so on: a key with a deep
    backlog never takes more than its turn while another key has jobs to give.
    """
    taken: list[T] = []
    depth = max((len(p) for p in picks), default=0)
    for turn in range(depth):
        for candidates in picks:
            if len(taken) >= wanted:
                return taken
            if turn < len(candidates):
                taken.append(candidates[turn])
    return taken


def _epoch_ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
