"""Workflows as the producer writes them: steps, chains, groups, chords and any DAG.

``task.s(*args, **kwargs)`` makes a :class:`Step`; :func:`chain` runs steps one after the
other, :func:`group` side by side, ``group(...).then(step)`` runs a callback once after every
member (a chord), and :class:`Workflow` takes any graph. Nothing here touches a store:
``TaskManager.enqueue_workflow`` validates the whole graph (unknown steps, cycles, sizes,
each step's job options) and stores every step in one transaction, or none.

    flow = chain(fetch.s(url), group(resize.s(size) for size in (64, 128)), publish.s())
    handle = await tw.enqueue_workflow(flow)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from taskward.errors import InvalidOptions
from taskward.graph import OnFailure, PassResult, check_name

if TYPE_CHECKING:
    from taskward.tasks import Task

__all__ = ["Group", "Node", "Step", "Workflow", "chain", "group"]


@dataclass(frozen=True, slots=True)
class Step:
    """One call of a task inside a workflow: the task, its arguments, and its options.

    ``options`` are the per-job options of ``enqueue_with`` (queue, priority, max_attempts,
    timeout, delay, at, tags, meta, partition_key); ``unique_for`` is refused, since a step that
    turned out a duplicate would leave its dependents waiting for a job of another workflow.
    ``pass_result``: the step receives, as its first positional argument, its dependency's
    result (one dependency) or the list of its dependencies' results in order (several, or a
    chord's callback); a finalizer receives the workflow's outcome instead.
    """

    task: Task[Any, Any] | str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    on_failure: OnFailure = "cancel"
    pass_result: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.on_failure not in ("cancel", "continue"):
            raise InvalidOptions(
                f"on_failure must be 'cancel' or 'continue', got {self.on_failure!r}"
            )
        if self.name is not None:
            check_name("a step's name", self.name)
        if not isinstance(self.task, str) and not hasattr(self.task, "name"):
            raise InvalidOptions(f"a step runs a task (a Task or its name), got {self.task!r}")

    def set(
        self,
        *,
        name: str | None = None,
        on_failure: OnFailure | None = None,
        pass_result: bool | None = None,
        **options: Any,
    ) -> Step:
        """A copy with a name, a failure policy, result passing or job options changed."""
        return replace(
            self,
            name=self.name if name is None else name,
            on_failure=self.on_failure if on_failure is None else on_failure,
            pass_result=self.pass_result if pass_result is None else pass_result,
            options={**self.options, **options},
        )

    @property
    def task_name(self) -> str:
        """The name the step's job is stored under."""
        return self.task if isinstance(self.task, str) else self.task.name


@dataclass(frozen=True, slots=True)
class Node:
    """A step placed in a workflow: its unique name, what it waits for, what it receives."""

    step: Step
    name: str
    depends_on: tuple[str, ...]
    passes: PassResult
    finalizer: bool = False


class Workflow:
    """Any graph of steps. ``add`` a step with the names it waits for; ``finally_`` a clean-up.

    Names may point at steps added later; the graph is checked (unknown names, cycles) when it
    is enqueued, before anything is stored.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = None if name is None else check_name("a workflow's name", name)
        self._nodes: dict[str, Node] = {}
        self._next_suffix: dict[str, int] = {}  # base name -> the next ".n" to try

    def __repr__(self) -> str:
        return f"<Workflow {self.name or ''} {len(self._nodes)} steps>"

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The steps in the order they were added."""
        return tuple(self._nodes.values())

    def add(
        self,
        step: Step,
        *,
        depends_on: Iterable[str] = (),
        name: str | None = None,
        passes: PassResult | None = None,
    ) -> str:
        """Add ``step``, waiting for the steps named in ``depends_on``; return its name.

        Its name is ``name``, else the step's own, else its task's short name (``resize``,
        then ``resize.2``...). ``passes`` overrides what a ``pass_result`` step receives
        (``"one"`` with one dependency, ``"all"`` otherwise).
        """
        if not isinstance(step, Step):
            raise InvalidOptions(f"a workflow step is made by task.s(...), got {step!r}")
        deps = tuple(_names(depends_on))
        if len(set(deps)) != len(deps):
            raise InvalidOptions(f"step {name or step.task_name!r} lists a dependency twice")
        if passes not in (None, "one", "all"):
            raise InvalidOptions(f"passes is 'one' or 'all', got {passes!r}")
        label = self._label(name or step.name, step)
        mode: PassResult = "none"
        if step.pass_result:
            mode = passes or ("one" if len(deps) == 1 else "all")
        self._nodes[label] = Node(step=step, name=label, depends_on=deps, passes=mode)
        return label

    def finally_(self, step: Step, *, name: str | None = None) -> str:
        """Add a finalizer: it runs once every other step has ended, whatever the outcome.

        Cancelling the workflow spares it. With ``pass_result`` it receives the workflow's
        outcome: ``{"workflow_id", "completed", "failed", "discarded", "cancelled"}`` (names).
        """
        if any(n.finalizer for n in self._nodes.values()):
            raise InvalidOptions("a workflow has one finalizer")
        label = self._label(name or step.name, step)
        mode: PassResult = "outcome" if step.pass_result else "none"
        self._nodes[label] = Node(
            step=replace(step, on_failure="continue"),
            name=label,
            depends_on=(),  # every other step: filled in when the workflow is built
            passes=mode,
            finalizer=True,
        )
        return label

    def _label(self, explicit: str | None, step: Step) -> str:
        """The step's name: an explicit one as given, else its task's short name made unique.

        An explicit name given twice is an error (``depends_on`` would be ambiguous); a
        default one gets ``.2``, ``.3``...
        """
        if explicit is None:
            return self._unique_name(_short(step.task_name))
        check_name("a step's name", explicit)
        if explicit in self._nodes:
            raise InvalidOptions(f"two steps are called {explicit!r}")
        return explicit

    def _unique_name(self, wanted: str) -> str:
        if wanted not in self._nodes:
            return wanted
        # Remembered per base name: a 1,000-member group of one task must not rescan.
        n = self._next_suffix.get(wanted, 2)
        while f"{wanted}.{n}" in self._nodes:
            n += 1
        self._next_suffix[wanted] = n + 1
        return f"{wanted}.{n}"


@dataclass(frozen=True, slots=True)
class Group:
    """Steps that run side by side. ``then(step)`` adds a callback that waits for all."""

    steps: tuple[Step, ...]

    def then(self, callback: Step, *, name: str | None = None) -> Workflow:
        """A chord: ``callback`` runs once, after every member completed.

        With ``callback.pass_result`` it receives the members' results as a list, in order.
        """
        flow = Workflow()
        members = [flow.add(s) for s in self.steps]
        flow.add(callback, depends_on=members, name=name, passes="all")
        return flow

    def workflow(self) -> Workflow:
        """The group as a workflow of independent steps."""
        flow = Workflow()
        for s in self.steps:
            flow.add(s)
        return flow


def group(*steps: Step | Iterable[Step]) -> Group:
    """Steps that run side by side: ``group(a.s(1), a.s(2))`` or ``group(a.s(i) for i in n)``."""
    flat: list[Step] = []
    for item in steps:
        if isinstance(item, Step):
            flat.append(item)
        elif isinstance(item, Iterable) and not isinstance(item, str | bytes | Mapping):
            flat.extend(item)
        else:
            raise InvalidOptions(f"a group holds steps made by task.s(...), got {item!r}")
    if not flat:
        raise InvalidOptions("a group needs at least one step")
    for item in flat:
        if not isinstance(item, Step):
            raise InvalidOptions(f"a group holds steps made by task.s(...), got {item!r}")
    return Group(tuple(flat))


def chain(*items: Step | Group, name: str | None = None, pass_result: bool = False) -> Workflow:
    """Each item starts after the previous one completed; a group's members all did.

    ``pass_result=True``: every step after the first receives the previous result (a list of
    results after a group), as if each had ``pass_result`` set.
    """
    if not items:
        raise InvalidOptions("a chain needs at least one step")
    flow = Workflow(name)
    previous: list[str] = []
    after_group = False
    for index, item in enumerate(items):
        passes: PassResult = "all" if after_group else "one"
        if isinstance(item, Step):
            step = item.set(pass_result=True) if pass_result and index else item
            previous = [flow.add(step, depends_on=previous, passes=passes)]
            after_group = False
        elif isinstance(item, Group):
            members = []
            for member in item.steps:
                step = member.set(pass_result=True) if pass_result and index else member
                members.append(flow.add(step, depends_on=previous, passes=passes))
            previous, after_group = members, True
        else:
            raise InvalidOptions(f"a chain holds steps and groups, got {item!r}")
    return flow


def _names(depends_on: Iterable[str]) -> Sequence[str]:
    if isinstance(depends_on, str):
        return [depends_on]
    names = list(depends_on)
    for n in names:
        if not isinstance(n, str):
            raise InvalidOptions(f"depends_on lists step names (what add returned), got {n!r}")
    return names


def _short(task_name: str) -> str:
    """``pkg.module:resize`` → ``resize``: the default name of a step."""
    return task_name.replace(":", ".").rsplit(".", 1)[-1] or task_name
