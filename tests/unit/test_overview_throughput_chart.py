"""Unit: the overview's throughput chart keeps a burst from flattening the hour, and labels its
time axis every 15 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskward.web.queries import Timeline
from taskward.web.throughput_chart import MIN_BAR, chart_view, round_up

START = datetime(2026, 1, 1, 10, 7, tzinfo=UTC)


def timeline(completed: list[int], failed: list[int] | None = None) -> Timeline:
    n = len(completed)
    return Timeline(
        start=START,
        minutes=[START + timedelta(minutes=i) for i in range(n)],
        completed=completed,
        failed=failed or [0] * n,
    )


def test_round_up_to_a_readable_scale() -> None:
    assert [round_up(v) for v in (0, 1, 3, 20, 21, 240, 423)] == [1, 1, 5, 20, 25, 250, 500]


def test_a_burst_is_cut_at_the_usual_busy_minute_and_marked() -> None:
    counts = [20] * 40 + [0] * 19 + [423]
    view = chart_view(timeline(counts))
    assert view.capped
    assert (view.top, view.peak) == (20, 423)
    usual, burst = view.bars[0], view.bars[-1]
    assert usual.completed == 100.0  # the ordinary minutes fill the chart, not 5 % of it
    assert not usual.capped
    assert burst.capped
    assert burst.completed == 100.0
    assert "423 completed" in burst.title
    assert "over the scale of 20/min" in burst.title
    assert "peak 423/min" in view.scale


def test_a_burst_in_a_quiet_hour_is_cut_too() -> None:
    # 12 busy minutes (a job every 5 minutes) and one bulk import: the 95th percentile of all
    # 13 would be the burst itself, so the usual minute is judged without it.
    counts = [3 if i % 5 == 0 else 0 for i in range(59)] + [423]
    view = chart_view(timeline(counts))
    assert view.capped
    assert (view.top, view.peak) == (5, 423)
    assert view.bars[0].completed == 60.0  # 3 of 5: visible, not 1 % of the chart


def test_without_a_burst_the_scale_is_the_peak_rounded_up() -> None:
    counts = [10] * 30 + [18] * 30
    view = chart_view(timeline(counts, [2] * 60))
    assert not view.capped
    assert view.top == 20
    bar = view.bars[-1]
    assert (bar.completed, bar.failed) == (90.0, 10.0)
    assert view.scale == "linear, 0 to 20 jobs/min"


def test_a_lone_job_stays_visible_beside_a_busy_minute() -> None:
    view = chart_view(timeline([1, 100] + [0] * 58, [0, 0] + [0] * 57 + [1]))
    lone = view.bars[0]
    assert lone.completed == MIN_BAR
    failed_only = view.bars[-1]
    assert (failed_only.completed, failed_only.failed) == (0.0, MIN_BAR)


def test_time_labels_every_quarter_hour_and_none_under_now() -> None:
    view = chart_view(timeline([0] * 60))
    # 10:07 to 11:06: the quarters 10:15, 10:30, 10:45; 11:00 (at 88 %) would crowd "now".
    assert [t.label for t in view.ticks] == ["10:15", "10:30", "10:45"]
    assert view.ticks[0].percent == round(8 / 60 * 100, 3)
    late = Timeline(
        start=START + timedelta(minutes=5),
        minutes=[START + timedelta(minutes=5 + i) for i in range(60)],
        completed=[0] * 60,
        failed=[0] * 60,
    )
    # 10:12 to 11:11: 11:00 sits at 80 %, labelled.
    assert [t.label for t in chart_view(late).ticks] == ["10:15", "10:30", "10:45", "11:00"]
    edge = chart_view(
        Timeline(
            start=START + timedelta(minutes=8),
            minutes=[START + timedelta(minutes=8 + i) for i in range(60)],
            completed=[0] * 60,
            failed=[0] * 60,
        )
    )
    assert edge.ticks[0].label == "10:15"
    assert edge.ticks[0].anchor == "start"
    assert not view.bars
    assert "0 in all" in view.summary
