"""The dashboard's workflow layout: columns by depth, one arrow per dependency, a size cap."""

from __future__ import annotations

from datetime import UTC, datetime

from taskward.graph import StoredStep, WorkflowRecord
from taskward.jobs import Job, JobState
from taskward.web.workflow_view import COLUMN, GRAPH_LIMIT, ROW, draw

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stored(name: str, job_id: int, *deps: str, state: JobState = JobState.BLOCKED) -> StoredStep:
    job = Job(
        id=job_id,
        task="t",
        queue="q",
        args=[],
        kwargs={},
        state=state,
        priority=0,
        attempt=0,
        max_attempts=1,
        scheduled_at=NOW,
        inserted_at=NOW,
    )
    return StoredStep(name=name, job=job, depends_on=deps)


def record(*steps: StoredStep) -> WorkflowRecord:
    return WorkflowRecord(id=1, name=None, inserted_at=NOW, steps=steps)


def test_a_diamond_is_laid_out_in_three_columns() -> None:
    drawing = draw(
        record(
            stored("a", 1, state=JobState.COMPLETED),
            stored("b", 2, "a"),
            stored("c", 3, "a"),
            stored("d", 4, "b", "c"),
        )
    )
    assert drawing.drawn
    where = {b.name: (b.x, b.y) for b in drawing.boxes}
    assert where["b"][0] == where["a"][0] + COLUMN
    assert where["c"] == (where["b"][0], where["b"][1] + ROW)
    assert where["d"][0] == where["a"][0] + 2 * COLUMN
    assert len(drawing.edges) == 4
    assert drawing.counts == (("blocked", 3), ("completed", 1))
    assert drawing.width > 2 * COLUMN
    assert drawing.height > ROW


def test_a_long_name_is_cut_for_the_box_but_kept_whole() -> None:
    [box] = draw(record(stored("x" * 40, 1))).boxes
    assert box.name == "x" * 40
    assert len(box.label) < 40
    assert box.label.endswith("…")


def test_a_huge_workflow_is_counted_not_drawn() -> None:
    steps = [stored(f"m{i}", i + 1) for i in range(GRAPH_LIMIT + 1)]
    drawing = draw(record(*steps))
    assert not drawing.drawn
    assert drawing.boxes == ()
    assert drawing.counts == (("blocked", GRAPH_LIMIT + 1),)
