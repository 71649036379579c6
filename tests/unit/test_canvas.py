"""The workflow canvas: names, policies and edges are checked as a workflow is written."""

from __future__ import annotations

from typing import Any

import pytest

from taskward import InvalidOptions, Step, TaskManager, Workflow, chain, group


def make_task() -> Any:
    tw = TaskManager("memory://")

    @tw.task(name="pkg.mod:resize")
    def resize(size: int) -> int:
        return size

    return resize


def test_default_names_are_the_tasks_short_name_made_unique() -> None:
    resize = make_task()
    flow = chain(resize.s(1), group(resize.s(i) for i in range(3)), resize.s(9))
    assert [n.name for n in flow.nodes] == [
        "resize",
        "resize.2",
        "resize.3",
        "resize.4",
        "resize.5",
    ]
    assert flow.nodes[-1].depends_on == ("resize.2", "resize.3", "resize.4")


def test_what_a_step_receives_follows_its_place() -> None:
    resize = make_task()
    flow = chain(
        resize.s(1), resize.s(), group(resize.s(), resize.s()), resize.s(), pass_result=True
    )
    assert [n.passes for n in flow.nodes] == ["none", "one", "one", "one", "all"]
    chord = group(resize.s(1)).then(resize.s().set(pass_result=True))
    assert chord.nodes[-1].passes == "all"
    final = Workflow()
    final.add(resize.s(1))
    final.finally_(resize.s().set(pass_result=True), name="done")
    assert final.nodes[-1].passes == "outcome"
    assert final.nodes[-1].finalizer


@pytest.mark.parametrize(
    "build",
    [
        lambda t: Step(t, on_failure="bogus"),
        lambda t: t.s(1).set(on_failure="sometimes"),
        lambda t: Workflow(name=123),
        lambda t: Workflow(name="x" * 201),
        lambda t: t.s(1).set(name=""),
        lambda t: Step(object()),
        lambda t: _twice(t),
        lambda t: _passes(t),
        lambda t: _two_finalizers(t),
        lambda t: group(),
        lambda t: group([1, 2]),
        lambda t: chain(),
        lambda t: chain("not a step"),
        lambda t: Workflow().add(t.s(1), depends_on=["a", "a"]),
        lambda t: Workflow().add(t.s(1), depends_on=[1]),
    ],
    ids=[
        "on-failure",
        "on-failure-set",
        "workflow-name-type",
        "workflow-name-long",
        "empty-step-name",
        "not-a-task",
        "explicit-name-twice",
        "passes",
        "two-finalizers",
        "empty-group",
        "group-of-non-steps",
        "empty-chain",
        "chain-of-non-steps",
        "dependency-twice",
        "dependency-not-a-name",
    ],
)
def test_bad_input_is_a_clear_error(build: Any) -> None:
    with pytest.raises(InvalidOptions):
        build(make_task())


def _twice(t: Any) -> None:
    flow = Workflow()
    flow.add(t.s(1), name="x")
    flow.add(t.s(2), name="x")


def _passes(t: Any) -> None:
    Workflow().add(t.s(1).set(pass_result=True), passes="outcome")  # type: ignore[arg-type]


def _two_finalizers(t: Any) -> None:
    flow = Workflow()
    flow.finally_(t.s(1))
    flow.finally_(t.s(2))
