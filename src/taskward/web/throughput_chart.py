"""The overview's throughput chart as values a template draws: bars, scale, time labels.

Pure: a :class:`~taskward.web.queries.Timeline` in, a :class:`ChartView` out, so the rules are
pinned by unit tests and ``_chart.html`` only places what it is given.

- **Scale:** linear from 0 to a round number of jobs per minute. One burst must not flatten
  the rest of the hour: when the busiest minute is over :data:`BURST_FACTOR` times the 95th
  percentile of the minutes with a finished job (nearest rank), the scale ends at that
  percentile (rounded up) and the taller minutes are cut at the top and marked; their
  counts are in their tooltips and the chart names its peak.
- **Time axis:** a label every 15 minutes (UTC, on the quarter hour), and "now" at the end.
- Heights are in percent of the plot (0 to 100); a minute with any job is at least
  :data:`MIN_BAR` tall, so a lone job stays visible next to a busy minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from taskward.health.run_times import rank
from taskward.web.formatting import number
from taskward.web.queries import Timeline

__all__ = ["BURST_FACTOR", "MIN_BAR", "Bar", "ChartView", "Tick", "chart_view", "round_up"]

BURST_FACTOR: Final = 1.5
"""The busiest minute over this many times the 95th percentile minute cuts the scale there."""
MIN_BAR: Final = 1.5
"""The least height (percent of the plot) of a part of a bar with at least one job."""
TICK_MINUTES: Final = 15
"""Minutes between two labels of the time axis."""
NOW_MARGIN: Final = 0.15
"""The last part of the axis (a fraction) left to the "now" label: no quarter label there
(at 360 px a label at 88 % would touch it); an hour keeps 3 or 4 quarter labels."""
_ROUND = (1, 2, 2.5, 5)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One minute: its place, its stacked heights, whether it was cut, its tooltip."""

    index: int
    completed: float
    """Height of the completed part, percent of the plot."""
    failed: float
    """Height of the failed part, stacked on the completed one."""
    capped: bool
    """More jobs than the scale shows: cut at the top and marked."""
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """One label of the time axis at ``percent`` of its width."""

    percent: float
    label: str
    anchor: str
    """SVG ``text-anchor``: ``start`` near the left edge (under 8 %), else ``middle``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartView:
    """What ``_chart.html`` draws."""

    minutes: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    top: float
    """Jobs per minute at the top of the scale."""
    top_label: str
    half_label: str
    peak: int
    capped: bool
    """Some minutes are over the scale."""
    scale: str
    """The scale in words, shown on the chart."""
    summary: str
    """The chart in one sentence (its accessible name)."""


def round_up(value: float) -> float:
    """The least of 1, 2, 2.5, 5 times a power of ten that is at least ``value`` (>= 1)."""
    power = 1.0
    while True:
        for step in _ROUND:
            if step * power >= value:
                return step * power
        power *= 10


USUAL_MINUTES = 5
"""Busy minutes besides the peak needed before the scale may cut a burst."""


def _scale(totals: list[int]) -> tuple[float, bool]:
    """The top of the scale and whether it cuts the busiest minutes."""
    busy = sorted(t for t in totals if t > 0)
    if not busy:
        return 1.0, False
    peak = busy[-1]
    # The usual busy minute leaves the peak out: with fewer than 20 busy minutes the 95th
    # percentile of them all would be the peak itself, and a burst would flatten the rest.
    # A handful of busy minutes is no "usual" to cut at: then the scale is the peak.
    others = busy[:-1]
    if len(others) < USUAL_MINUTES:
        return round_up(peak), False
    usual = others[rank(95, len(others)) - 1]
    if peak > BURST_FACTOR * usual:
        top = round_up(usual)
        return top, peak > top
    return round_up(peak), False


def _height(count: int, top: float) -> float:
    if count <= 0:
        return 0.0
    return round(max(MIN_BAR, min(count, top) / top * 100), 2)


def _bar(index: int, timeline: Timeline, top: float) -> Bar:
    completed, failed = timeline.completed[index], timeline.failed[index]
    total = completed + failed
    low = _height(completed, top)
    high = min(100.0, max(low + (MIN_BAR if failed else 0), _height(total, top)))
    title = (
        f"{timeline.minutes[index]:%H:%M} UTC: {number(completed)} completed, "
        f"{number(failed)} failed or discarded"
    )
    capped = total > top
    if capped:
        title += f" (over the scale of {top:,g}/min)"
    return Bar(index=index, completed=low, failed=round(high - low, 2), capped=capped, title=title)


def _ticks(timeline: Timeline) -> tuple[Tick, ...]:
    n = len(timeline.minutes)
    ticks = []
    for index, minute in enumerate(timeline.minutes):
        where = index / n
        if minute.minute % TICK_MINUTES or where > 1 - NOW_MARGIN:
            continue
        anchor = "start" if where < 0.08 else "middle"  # a centred label there is cut
        ticks.append(Tick(percent=round(where * 100, 3), label=f"{minute:%H:%M}", anchor=anchor))
    return tuple(ticks)


def chart_view(timeline: Timeline) -> ChartView:
    """The chart of ``timeline``: bars on a scale no burst flattens, labelled every 15 min."""
    totals = [c + f for c, f in zip(timeline.completed, timeline.failed, strict=True)]
    top, capped = _scale(totals)
    peak = max(totals, default=0)
    scale = f"linear, 0 to {top:,g} jobs/min"
    if capped:
        scale += f"; minutes above are cut (peak {number(peak)}/min)"
    finished = sum(totals)
    summary = (
        f"Jobs finished per minute over the last {len(totals)} minutes (UTC): "
        f"{number(finished)} in all, at most {number(peak)} in a minute; scale {scale}."
    )
    return ChartView(
        minutes=len(totals),
        bars=tuple(_bar(i, timeline, top) for i in range(len(totals)) if totals[i]),
        ticks=_ticks(timeline),
        top=top,
        top_label=f"{top:,g} {'job' if top == 1 else 'jobs'}/min",
        half_label=f"{top / 2:,g}",
        peak=peak,
        capped=capped,
        scale=scale,
        summary=summary,
    )
