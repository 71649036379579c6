"""How long something took, in words people read: one rule for the CLI and the dashboard.

``seconds`` for a run time (``850 ms``, ``12.5 s``), ``duration`` to the second for longer
spans (``6 min 12 s``, ``2 h 5 min``), ``run_time`` the first below a minute and the second
above it. Pure functions, no dependency beyond the standard library.
"""

from __future__ import annotations

import math

__all__ = ["duration", "run_time", "seconds"]


def seconds(value: float | None) -> str:
    """A run time: ``850 ms`` below a second, ``12.5 s`` above, ``—`` for none."""
    if value is None:
        return "—"
    if round(value * 1000) < 1000:  # 0.9996 s reads "1.0 s", not "1000 ms"
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"


def run_time(value: float | None) -> str:
    """A run time as :func:`seconds` writes it below a minute, as :func:`duration` above."""
    if value is not None and value >= 60:
        return duration(value)
    return seconds(value)


def duration(value: float | None) -> str:
    """A duration to the second: ``45 s``, ``6 min 12 s``, ``2 h 5 min``, ``3 d 4 h``.

    ``—`` for none or a value that is not a finite number; ``over 10 years`` past that (a
    limit set that high means none, and a count of days would only fill the line).
    """
    if value is None or not math.isfinite(value):
        return "—"
    if value > 10 * 365.25 * 86400:
        return "over 10 years"
    whole = max(0, int(value))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
