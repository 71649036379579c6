"""Cron expressions: parsing, validation and the next fire times of a recurring schedule.

This module owns :class:`CronExpression`. It accepts the standard five fields
(``minute hour day-of-month month day-of-week``) with ranges, steps, lists and names
(``MON``, ``JAN``), cronsim's ``L``, ``LW`` and ``#`` extensions, and the aliases
``@yearly @annually @monthly @weekly @daily @midnight @hourly``. A seconds field is rejected:
cron libraries disagree on where it goes (cronsim puts it first, croniter last), so a 6-field
expression would silently mean different things to different tools.

Fire times are computed in the schedule's IANA time zone with cronsim and returned as aware
UTC datetimes, ready to store.

Daylight saving time follows Debian (Vixie) cron, as cronsim does:

* An expression with a fixed minute and hour (``30 2 * * *``) is matched against the local
  wall clock. When spring-forward skips that time, the job fires **once**, at the first valid
  instant after the gap (``30 2 * * *`` in Europe/Berlin on 2026-03-29 fires at 03:00 CEST,
  01:00 UTC). When fall-back repeats that time, the job fires **once**, at the first
  occurrence (02:30 CEST on 2026-10-25, 00:30 UTC), and not again an hour later.
* An expression whose minute or hour field starts with ``*`` (``*/15 * * * *``, ``0 * * * *``,
  ``@hourly``) follows elapsed time instead: it fires in both passes of a repeated hour and
  simply has no fires inside a skipped one.

``next_fire`` is always strictly after its argument, and successive calls never go back in
time, including across a fall-back where the wall clock revisits an hour already past.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice, takewhile
from types import MappingProxyType
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from taskward.errors import InvalidCron, InvalidOptions
from taskward.jobs import MAX_DELAY_SECONDS, CatchUp, Overlap

__all__ = ["ALIASES", "MAX_CATCH_UP", "CronExpression", "CronPolicy"]

MAX_CATCH_UP = 1000
"""The largest ``max_catch_up``: a burst bigger than this is a backlog, not a catch-up."""

ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }
)
"""The supported ``@`` aliases and the 5-field expressions they stand for."""

_EXAMPLE = "for example '0 3 * * *' (03:00 every day), '*/15 * * * *' or '@daily'"
_FIELDS = "minute hour day-of-month month day-of-week"
# What each field accepts, keyed by the field name cronsim puts in its "Bad <field>" message.
_ALLOWED = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31, L or LW, and the day must exist in the chosen months",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT, optionally with L or #1-#5",
}
_FIELD_INDEX = {name: index for index, name in enumerate(_ALLOWED)}
# Any fixed instant works: it only proves that the expression fires at all.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class CronExpression:
    """A validated 5-field cron expression bound to an IANA time zone.

    Build one with :meth:`parse`; constructing it directly validates the same way and raises
    :class:`~taskward.errors.InvalidCron` for a bad expression or zone.
    """

    expression: str
    """The expression exactly as given, e.g. ``"0 3 * * *"`` or ``"@daily"``."""
    timezone: str = "UTC"
    """The IANA name of the zone the expression is read in, e.g. ``"Europe/Berlin"``."""
    _spec: str = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spec", _to_spec(self.expression))
        object.__setattr__(self, "_zone", _to_zone(self.timezone))

    @classmethod
    def parse(cls, expr: str, timezone: str = "UTC") -> CronExpression:
        """Validate ``expr`` and ``timezone`` and return the schedule.

        Raises:
            InvalidCron: the expression is empty, malformed, has a seconds field, never
                fires, or the time zone is unknown.
        """
        return cls(expression=expr, timezone=timezone)

    def next_fire(self, after: datetime) -> datetime:
        """Return the first fire time strictly after ``after``, as an aware UTC datetime.

        Raises:
            ValueError: ``after`` is naive, or no fire time exists before the end of the
                supported calendar (year 9999).
            TypeError: ``after`` is not a datetime.
        """
        for fire in self._fires_after(after):
            return fire
        raise ValueError(f"cron {self.expression!r} has no fire time after {after.isoformat()}")

    def fires_between(self, start: datetime, end: datetime, *, limit: int = 1000) -> list[datetime]:
        """Return the fire times in ``(start, end]`` as aware UTC datetimes, in order.

        At most ``limit`` times are returned (the earliest ones), so a frequent schedule over a
        long window cannot run away.

        Raises:
            ValueError: ``start`` or ``end`` is naive, or ``limit`` is not positive.
        """
        _require_aware(end, "end")
        if limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        end_utc = end.astimezone(UTC)
        in_window = takewhile(lambda fire: fire <= end_utc, self._fires_after(start))
        return list(islice(in_window, limit))

    def describe(self) -> str:
        """Return a short English description, e.g. ``"At 03:00 every day (Europe/Berlin)"``.

        Falls back to the expression itself when cronsim cannot explain it.
        """
        try:
            from cronsim.explain import explain
        except ImportError:  # pragma: no cover - cronsim releases before explain existed
            return f"{self.expression} ({self.timezone})"
        try:
            text = str(explain(self._spec))
        except Exception:  # explain is best-effort text; a gap there must not break callers
            text = self.expression
        return f"{text} ({self.timezone})"

    def _fires_after(self, after: datetime) -> Iterator[datetime]:
        """Yield fire times strictly after ``after``, strictly increasing, in UTC."""
        _require_aware(after, "after")
        last = after.astimezone(UTC)
        try:
            times = CronSim(self._spec, after.astimezone(self._zone))
        except OverflowError:  # `after` is within hours of datetime.max: nothing can follow
            return
        while True:
            try:
                fire = next(times).astimezone(UTC)
            except (StopIteration, OverflowError):  # nothing within 50 years, or past year 9999
                return
            # cronsim walks the local wall clock for fixed-time expressions. When `after` lies in
            # the second pass of a fall-back hour, the wall clock revisits times that already
            # fired an hour earlier in UTC; skipping them keeps "fires once" and keeps order.
            if fire <= last:
                continue
            last = fire
            yield fire


@dataclass(frozen=True, slots=True, kw_only=True)
class CronPolicy:
    """A schedule's validated catch-up and overlap options (see :class:`~taskward.jobs.Schedule`).

    Build one with :meth:`parse`, which raises :class:`~taskward.errors.InvalidOptions` saying
    what was wrong and what is accepted.
    """

    catch_up: CatchUp = CatchUp.SKIP
    max_catch_up: int = 10
    catch_up_within: float | None = None
    overlap: Overlap = Overlap.ALLOW

    @classmethod
    def parse(
        cls,
        *,
        catch_up: str = "skip",
        max_catch_up: int = 10,
        catch_up_within: float | None = None,
        overlap: str = "allow",
    ) -> CronPolicy:
        """Validate the four options and return them typed."""
        return cls(
            catch_up=_choice("catch_up", catch_up, CatchUp),
            max_catch_up=_max_catch_up(max_catch_up),
            catch_up_within=_within(catch_up_within),
            overlap=_choice("overlap", overlap, Overlap),
        )


_Choice = TypeVar("_Choice", CatchUp, Overlap)


def _choice(name: str, value: object, kind: type[_Choice]) -> _Choice:
    allowed = ", ".join(repr(str(member)) for member in kind)
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    raise InvalidOptions(f"{name} must be one of {allowed}, got {value!r}")


def _max_catch_up(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CATCH_UP:
        raise InvalidOptions(
            f"max_catch_up must be an integer from 1 to {MAX_CATCH_UP}, got {value!r}"
        )
    return value


def _within(value: object) -> float | None:
    if value is None:
        return None
    # NaN fails both comparisons; bool is an int but no number of seconds.
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 < value <= MAX_DELAY_SECONDS
    ):
        return float(value)
    raise InvalidOptions(
        "catch_up_within must be a number of seconds above 0 (at most 100 years), or None "
        f"for no limit, got {value!r}"
    )


def _require_aware(value: datetime, name: str) -> None:
    """Raise ValueError for a naive datetime (TypeError for anything else but a datetime)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be an aware datetime (with tzinfo), got naive {value.isoformat()}; "
            "use datetime.now(UTC) or attach a ZoneInfo"
        )


def _to_spec(expression: str) -> str:
    """Validate ``expression`` and return the 5-field text cronsim should use."""
    if not isinstance(expression, str):
        raise InvalidCron(f"a cron expression must be a string, got {type(expression).__name__}")
    text = expression.strip()
    if not text:
        raise InvalidCron(f"the cron expression is empty; {_EXAMPLE}")
    if text.startswith("@"):
        return _from_alias(text)
    fields = text.split()
    if len(fields) == 6:
        raise InvalidCron(
            f"cron expression {expression!r} has 6 fields; taskward supports only the standard "
            f"5 fields ({_FIELDS}), without a seconds field; {_EXAMPLE}"
        )
    if len(fields) != 5:
        raise InvalidCron(
            f"cron expression {expression!r} has {len(fields)} field(s), expected 5 "
            f"({_FIELDS}); {_EXAMPLE}"
        )
    _check_fields(expression, text, fields)
    return text


def _from_alias(text: str) -> str:
    """Return the expression an ``@`` alias stands for."""
    spec = ALIASES.get(text.lower())
    if spec is not None:
        return spec
    if text.lower() == "@reboot":
        raise InvalidCron(
            "'@reboot' is not supported: taskward schedules run at clock times; run start-up "
            f"work from your application instead; {_EXAMPLE}"
        )
    raise InvalidCron(f"unknown cron alias {text!r}; supported aliases: {', '.join(ALIASES)}")


def _check_fields(expression: str, text: str, fields: list[str]) -> None:
    """Let cronsim validate the fields, and prove that the expression fires at all."""
    try:
        next(CronSim(text, _PROBE))
    except CronSimError as exc:
        # cronsim says "Bad <field>"; name the field, the offending text and what it accepts.
        name = str(exc).removeprefix("Bad ").strip()
        if name in _FIELD_INDEX:
            detail = f"bad {name} field {fields[_FIELD_INDEX[name]]!r} ({name}: {_ALLOWED[name]})"
        else:
            detail = str(exc)
        raise InvalidCron(f"invalid cron expression {expression!r}: {detail}; {_EXAMPLE}") from exc
    except StopIteration:
        raise InvalidCron(
            f"cron expression {expression!r} never fires (no matching date in 50 years); {_EXAMPLE}"
        ) from None


def _to_zone(name: str) -> ZoneInfo:
    """Return the zone called ``name``, or raise InvalidCron."""
    hint = "use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'"
    if not isinstance(name, str):
        raise InvalidCron(f"the time zone must be a string, got {type(name).__name__}; {hint}")
    if name == "localtime":
        # A link to the host's /etc/localtime: schedules would change meaning between machines.
        raise InvalidCron(f"the time zone 'localtime' depends on the host; {hint}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidCron(f"unknown time zone {name!r}; {hint}") from exc
