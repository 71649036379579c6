"""How the dashboard writes numbers, times and arguments: one place, so every page agrees.

Pure functions of their arguments (``now`` is passed in where a time is relative), shared by
the page modules and installed as Jinja globals by :mod:`taskward.web.pages`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from taskward.durations import duration, run_time, seconds
from taskward.sealing import ENCRYPTED_PLACEHOLDER
from taskward.web.queries import SEALED_PROBLEM, shown_arguments

__all__ = [
    "age",
    "args_text",
    "clock_text",
    "duration",
    "number",
    "plural",
    "pretty",
    "relative",
    "run_time",
    "seconds",
    "when",
]


def when(value: datetime | str | None) -> str:
    """An absolute time in UTC (``2026-12-06 11:20:00 UTC``), ``—`` for none."""
    if value is None:
        return "—"
    if isinstance(value, str):  # statistics carry ISO 8601 strings
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def args_text(job: Any) -> str:
    """A job's arguments on one line as the lists show them (masked, or "encrypted")."""
    shown = shown_arguments(job)
    if shown.problem == SEALED_PROBLEM:
        return f"({ENCRYPTED_PLACEHOLDER})"
    if shown.problem is not None:
        return "(unreadable stored arguments)"
    parts = [json.dumps(a, ensure_ascii=False) for a in shown.args]
    parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in shown.kwargs.items()]
    return ", ".join(parts)


def pretty(value: Any) -> str:
    """A value as indented JSON (anything JSON cannot write, as its text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def number(value: int) -> str:
    """``1,070``: thousands separators everywhere."""
    return f"{value:,}"


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 worker``, ``3 workers``."""
    return one if count == 1 else (many or one + "s")


def age(value: float | None) -> str:
    """A duration in the largest unit that reads well: ``45 s``, ``3 min``, ``2 h``."""
    if value is None:
        return "—"
    whole = int(value)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h {minutes} min" if hours < 10 and minutes else f"{hours} h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def relative(value: datetime | None, now: datetime) -> str:
    """``value`` from ``now``: ``3 min ago``, ``in 5 min``, ``just now`` within a second."""
    if value is None:
        return "—"
    delta = (value - now).total_seconds()
    if abs(delta) < 1:
        return "just now"
    return f"in {age(delta)}" if delta > 0 else f"{age(-delta)} ago"


def clock_text(at: datetime) -> str:
    """A time of day in UTC, ``11:31:02 UTC``: what a message says an action happened at."""
    return at.astimezone(UTC).strftime("%H:%M:%S UTC")
