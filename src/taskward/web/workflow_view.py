"""The dashboard's workflow graph: a layered layout computed here, drawn as SVG by a template.

Each step sits in the column of its longest path from a step with no dependencies, one row
per step of that column; edges run from a dependency's right side to its dependent's left.
Past :data:`GRAPH_LIMIT` steps the page shows counts by state instead of a drawing nobody
could read (a 1,000-member group). Names come from the store: the template escapes them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from taskward.graph import WorkflowRecord

__all__ = ["GRAPH_LIMIT", "Box", "Drawing", "Edge", "draw"]

GRAPH_LIMIT = 150
"""Steps drawn at most; a bigger workflow is summarised by state."""

COLUMN, ROW, WIDTH, HEIGHT, MARGIN = 190, 52, 160, 38, 10
NAME_CHARS = 22


@dataclass(frozen=True, slots=True)
class Box:
    """One step's rectangle."""

    x: int
    y: int
    name: str
    label: str
    state: str
    job_id: int
    finalizer: bool


@dataclass(frozen=True, slots=True)
class Edge:
    """A line from a dependency to its dependent."""

    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True, slots=True)
class Drawing:
    """What the template draws: boxes, edges, the canvas size, and counts by state."""

    boxes: tuple[Box, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    counts: tuple[tuple[str, int], ...]
    drawn: bool


def draw(record: WorkflowRecord) -> Drawing:
    """Lay ``record`` out in columns by depth (or only count it, past ``GRAPH_LIMIT``)."""
    counts = tuple(sorted(Counter(s.job.state.value for s in record.steps).items()))
    if len(record.steps) > GRAPH_LIMIT:
        return Drawing(boxes=(), edges=(), width=0, height=0, counts=counts, drawn=False)
    depth: dict[str, int] = {}
    for step in record.steps:  # dependencies come first in insert order
        depth[step.name] = 1 + max((depth.get(d, 0) for d in step.depends_on), default=-1)
    rows: Counter[int] = Counter()
    place: dict[str, tuple[int, int]] = {}
    boxes = []
    for step in record.steps:
        column = depth[step.name]
        x, y = MARGIN + column * COLUMN, MARGIN + rows[column] * ROW
        rows[column] += 1
        place[step.name] = (x, y)
        label = step.name if len(step.name) <= NAME_CHARS else step.name[: NAME_CHARS - 1] + "…"
        boxes.append(
            Box(
                x=x,
                y=y,
                name=step.name,
                label=label,
                state=step.job.state.value,
                job_id=step.job.id,
                finalizer=step.finalizer,
            )
        )
    edges = [
        Edge(
            x1=place[d][0] + WIDTH,
            y1=place[d][1] + HEIGHT // 2,
            x2=place[s.name][0],
            y2=place[s.name][1] + HEIGHT // 2,
        )
        for s in record.steps
        for d in s.depends_on
        if d in place
    ]
    columns = 1 + max(depth.values(), default=0)
    width = 2 * MARGIN + (columns - 1) * COLUMN + WIDTH
    height = 2 * MARGIN + (max(rows.values(), default=1) - 1) * ROW + HEIGHT
    return Drawing(
        boxes=tuple(boxes),
        edges=tuple(edges),
        width=width,
        height=height,
        counts=counts,
        drawn=True,
    )
