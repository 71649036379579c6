"""Turn a workflow as written (``taskward.canvas``) into steps ready to store.

Checks the whole graph before anything is written: every name a step waits for exists, there
is no cycle, the workflow and the result lists it passes stay within their limits, and each
step's job is valid as ``enqueue_with`` would build it. Orders the steps so that dependencies
come first (insertion order otherwise), which is the order the store inserts them in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from taskward.building import JobBuilder
from taskward.canvas import Group, Node, Step, Workflow
from taskward.errors import InvalidOptions
from taskward.graph import (
    MAX_RESULTS_PASSED,
    MAX_STEPS,
    NewStep,
    NewWorkflow,
    step_meta,
)
from taskward.jobs import JobState

__all__ = ["build_workflow"]

Flow = Workflow | Group | Step


def build_workflow(flow: Flow, builder: JobBuilder, *, name: str | None = None) -> NewWorkflow:
    """Validate ``flow`` and return its steps as the store takes them (raises on bad input)."""
    if isinstance(flow, Step):
        flow = Group((flow,)).workflow()
    elif isinstance(flow, Group):
        flow = flow.workflow()
    elif not isinstance(flow, Workflow):
        raise InvalidOptions(f"enqueue_workflow takes a Workflow, a group or a step, got {flow!r}")
    nodes = _with_finalizer(flow.nodes)
    if not nodes:
        raise InvalidOptions("a workflow needs at least one step")
    if len(nodes) > MAX_STEPS:
        raise InvalidOptions(f"a workflow has at most {MAX_STEPS:,} steps, got {len(nodes):,}")
    ordered = _dependencies_first(nodes)
    index = {node.name: i for i, node in enumerate(ordered)}
    depended = {d for node in ordered for d in node.depends_on}
    steps = [_new_step(node, builder, index, depended) for node in ordered]
    return NewWorkflow(name=name if name is not None else flow.name, steps=tuple(steps))


def _new_step(
    node: Node, builder: JobBuilder, index: dict[str, int], depended: set[str]
) -> NewStep:
    """One node as the store takes it: its job built and checked, its edges as positions."""
    if node.passes in ("one", "all") and len(node.depends_on) > MAX_RESULTS_PASSED:
        raise InvalidOptions(
            f"step {node.name!r} would receive the results of {len(node.depends_on):,} "
            f"steps; at most {MAX_RESULTS_PASSED:,}: store large results elsewhere and "
            "pass their keys"
        )
    if node.passes == "one" and len(node.depends_on) != 1:
        raise InvalidOptions(f"step {node.name!r} receives one result but waits for none")
    if "unique_for" in node.step.options:
        raise InvalidOptions(f"step {node.name!r}: a workflow step cannot be unique")
    received = 0 if node.passes == "none" else 1  # a result, or a finalizer's outcome
    try:
        new = builder.build_job(
            node.step.task, node.step.args, node.step.kwargs, received, **node.step.options
        )
    except InvalidOptions as exc:
        raise InvalidOptions(f"step {node.name!r}: {exc}") from exc
    if new.unique_window is not None:  # the task's own unique_for
        raise InvalidOptions(
            f"step {node.name!r}: task {new.task!r} is unique (unique_for); a workflow step "
            "cannot be: a duplicate would leave its dependents waiting for another job"
        )
    meta = step_meta(
        new.meta,
        workflow=0,  # the store writes the id it assigns
        name=node.name,
        passes=node.passes,
        dependents=node.name in depended,
    )
    return NewStep(
        name=node.name,
        job=replace(new, meta=meta, state=JobState.BLOCKED if node.depends_on else new.state),
        depends_on=tuple(index[d] for d in node.depends_on),
        on_failure=node.step.on_failure,
        finalizer=node.finalizer,
    )


def _with_finalizer(nodes: tuple[Node, ...]) -> list[Node]:
    """The nodes, the finalizer waiting for every other step."""
    others = tuple(n.name for n in nodes if not n.finalizer)
    return [replace(n, depends_on=others) if n.finalizer else n for n in nodes]


def _dependencies_first(nodes: list[Node]) -> list[Node]:
    """Kahn's order, stable on insertion order; unknown names and cycles are refused."""
    by_name = {n.name: n for n in nodes}
    for node in nodes:
        for dep in node.depends_on:
            if dep not in by_name:
                raise InvalidOptions(
                    f"step {node.name!r} depends on {dep!r}, which is not in the workflow"
                )
    waiting = {n.name: len(n.depends_on) for n in nodes}
    children: dict[str, list[str]] = {n.name: [] for n in nodes}
    for node in nodes:
        for dep in node.depends_on:
            children[dep].append(node.name)
    position = {n.name: i for i, n in enumerate(nodes)}
    ready = deque(n.name for n in nodes if not n.depends_on)
    out: list[Node] = []
    while ready:
        name = ready.popleft()
        out.append(by_name[name])
        freed = []
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                freed.append(child)
        ready.extend(sorted(freed, key=position.__getitem__))
    if len(out) < len(nodes):
        raise InvalidOptions(f"the workflow has a cycle: {_a_cycle(by_name, waiting)}")
    return out


def _a_cycle(by_name: dict[str, Node], waiting: dict[str, int]) -> str:
    """One cycle among the steps left waiting, as ``a → b → a``."""
    left = {name for name, n in waiting.items() if n > 0}
    start = min(left, key=list(by_name).index)
    path, seen = [start], {start}
    while True:
        nxt = next(d for d in by_name[path[-1]].depends_on if d in left)
        if nxt in seen:
            loop = [*path[path.index(nxt) :], nxt]
            return " → ".join(reversed(loop))
        path.append(nxt)
        seen.add(nxt)
