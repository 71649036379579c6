"""Which calls start asyncio tasks: entry points, their aliases, and create_task receivers.

A call starts a task when it reaches asyncio's ``create_task``, ``ensure_future`` or ``Task``
(through any import alias or an assignment such as ``spawn = asyncio.ensure_future``), or calls
``create_task`` on an event loop. A receiver is a loop when it comes from ``get_event_loop``,
``get_running_loop``, ``new_event_loop`` or ``get_loop()``, is annotated as one, or, failing
any binding the audit can read, is *named* like one (``loop``, ``self._loop``,
``self.client.loop``). ``create_task`` on a ``TaskGroup`` or a taskward ``TaskSupervisor`` is
supervised by construction; on anything else (a class's own ``create_task`` method, an object
of unknown type) it is not asyncio's, so it is not a task start.
"""

from __future__ import annotations

import ast
import enum
import re
from dataclasses import dataclass

from taskward.audit.index import ClassInfo, FunctionNode, ModuleIndex, Scope

__all__ = ["Entry", "Receiver", "Resolver", "Shape", "last_name"]


class Entry(enum.StrEnum):
    """The asyncio entry point a call reaches (its keyword names differ)."""

    CREATE_TASK = "create_task"
    ENSURE_FUTURE = "ensure_future"
    TASK = "Task"
    LOOP = "loop.create_task"
    GROUP = "TaskGroup.create_task"


_ENTRIES = {
    **dict.fromkeys(("asyncio.create_task", "asyncio.tasks.create_task"), Entry.CREATE_TASK),
    **dict.fromkeys(("asyncio.ensure_future", "asyncio.tasks.ensure_future"), Entry.ENSURE_FUTURE),
    **dict.fromkeys(("asyncio.Task", "asyncio.tasks.Task"), Entry.TASK),
}
_LOOP_FACTORIES = frozenset({"get_event_loop", "get_running_loop", "new_event_loop", "get_loop"})
_LOOP_TYPES = frozenset(
    {
        "asyncio.AbstractEventLoop",
        "asyncio.BaseEventLoop",
        "asyncio.SelectorEventLoop",
        "asyncio.ProactorEventLoop",
        "asyncio.EventLoop",
        "asyncio.events.AbstractEventLoop",
        "asyncio.base_events.BaseEventLoop",
        "uvloop.Loop",
    }
)
_GROUP_TYPES = frozenset(
    {
        "asyncio.TaskGroup",
        "asyncio.taskgroups.TaskGroup",
        "taskward.TaskSupervisor",
        "taskward.aio.TaskSupervisor",
        "taskward.aio.get_default_supervisor",
    }
)
_STAR_EXPORTS = {
    "asyncio": ("create_task", "ensure_future", "Task", "TaskGroup", "AbstractEventLoop"),
    "asyncio.tasks": ("create_task", "ensure_future", "Task"),
    "asyncio.taskgroups": ("TaskGroup",),
}
# Loop callbacks: what they return is dropped, and they run while the loop runs.
LOOP_REGISTRARS = frozenset(
    {
        "call_soon",
        "call_soon_threadsafe",
        "call_later",
        "call_at",
        "add_signal_handler",
        "add_reader",
        "add_writer",
        "add_done_callback",
    }
)
_OTHER_REGISTRARS = frozenset({"signal.signal", "atexit.register"})
_PARTIALS = frozenset({"functools.partial", "partial"})
# loop, _loop, event_loop, main_loop, ev_loop, eventloop...
_LOOP_NAME = re.compile(r"_*(?:[a-z0-9]+_)*(?:event_?|ev_?)?loop", re.IGNORECASE)


class Shape(enum.Enum):
    """What a ``create_task`` receiver is known to be."""

    LOOP = "loop"
    GROUP = "group"
    OBJECT = "object"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Receiver:
    """A receiver's shape, and its class when it is an instance of a class of the module."""

    shape: Shape
    cls: ClassInfo | None = None


_UNKNOWN = Receiver(Shape.UNKNOWN)


def last_name(expr: ast.expr) -> str | None:
    """Return the last identifier of a dotted expression (``b`` for ``a.b``)."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def import_map(imports: list[ast.Import | ast.ImportFrom]) -> dict[str, str]:
    """Map every name the imports bind (anywhere in the module) to the dotted name imported."""
    names: dict[str, str] = {}
    for node in imports:
        if isinstance(node, ast.Import):
            for alias in node.names:
                head = alias.name.partition(".")[0]
                names[alias.asname or head] = alias.name if alias.asname else head
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name == "*":
                    exported = _STAR_EXPORTS.get(node.module, ())
                    names.update({n: f"{node.module}.{n}" for n in exported})
                else:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


class Resolver:
    """Answers what an expression of the module refers to, from the index's bindings."""

    def __init__(self, index: ModuleIndex) -> None:
        self.index = index
        self.imports = import_map(index.imports)
        self._receivers: dict[ast.AST, Receiver] = {}
        self._references: dict[ast.AST, list[ast.expr]] = {}

    def qualified(self, expr: ast.expr) -> str | None:
        """Resolve ``aio.create_task`` to ``asyncio.create_task`` through the imports."""
        if isinstance(expr, ast.Name):
            return self.imports.get(expr.id, expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.qualified(expr.value)
            return None if base is None else f"{base}.{expr.attr}"
        return None

    def entry(self, func: ast.expr, scope: Scope, depth: int = 0) -> Entry | None:
        """Return the asyncio entry point calling ``func`` reaches, or None."""
        found = _ENTRIES.get(self.qualified(func) or "")
        if found is not None:
            return found
        if isinstance(func, ast.Attribute) and func.attr == "create_task":
            shape = self.receiver(func.value, scope).shape
            return {Shape.LOOP: Entry.LOOP, Shape.GROUP: Entry.GROUP}.get(shape)
        if depth < 3:  # an alias: spawn = asyncio.ensure_future, self._spawn = loop.create_task
            for kind, node, home in self.sources(func, scope):
                if kind == "value" and isinstance(node, ast.Name | ast.Attribute):
                    aliased = self.entry(node, home, depth + 1)
                    if aliased is not None:
                        return aliased
        return None

    def sources(self, expr: ast.expr, scope: Scope) -> list[tuple[str, ast.AST, Scope]]:
        """Return what a name or a ``self.<attr>`` is bound from, with the binding's scope."""
        if isinstance(expr, ast.Name):
            home = self.index.binding_scope(scope, expr.id)
            return [(kind, node, home) for kind, node in home.sources.get(expr.id, ())]
        if isinstance(expr, ast.Attribute):
            cls = self.index.self_class(expr.value)
            if cls is not None:
                return self.index.family_attr_sources(cls, expr.attr)
        return []

    def receiver(self, expr: ast.expr, scope: Scope, depth: int = 0) -> Receiver:
        """Return what a ``create_task`` receiver is known to be."""
        cached = self._receivers.get(expr)
        if cached is None:
            cached = self._receiver(expr, scope, depth)
            if expr in self.index.parents:  # only real nodes: parsed annotations are throwaway
                self._receivers[expr] = cached
        return cached

    def _receiver(self, expr: ast.expr, scope: Scope, depth: int) -> Receiver:
        if depth > 4:
            return _UNKNOWN
        if isinstance(expr, ast.Call):
            return self._made_by(expr, scope)
        for kind, node, home in self.sources(expr, scope):
            found = self._from_source(kind, node, home, depth)
            if found.shape is not Shape.UNKNOWN:
                return found
        cls = self.index.self_class(expr)
        if cls is not None:
            return Receiver(Shape.LOOP if self._is_loop_class(cls) else Shape.OBJECT, cls)
        name = last_name(expr)
        if name is not None and _LOOP_NAME.fullmatch(name):
            return Receiver(Shape.LOOP)
        return _UNKNOWN

    def _made_by(self, call: ast.Call, scope: Scope) -> Receiver:
        name = last_name(call.func) or ""
        if name in _LOOP_FACTORIES:
            return Receiver(Shape.LOOP)
        typed = self._typed(call.func, scope)
        if typed.shape is Shape.UNKNOWN and name[:1].isupper():
            # An instance of some other class (``Scheduler()``): whatever it is named, it is
            # not an event loop, unless its class is one of the loop types above.
            return Receiver(Shape.OBJECT)
        return typed

    def _typed(self, expr: ast.expr, scope: Scope) -> Receiver:
        qualified = self.qualified(expr)
        if qualified in _LOOP_TYPES:
            return Receiver(Shape.LOOP)
        if qualified in _GROUP_TYPES:
            return Receiver(Shape.GROUP)
        cls = self.local_class(expr, scope)
        if cls is None:
            return _UNKNOWN
        return Receiver(Shape.LOOP if self._is_loop_class(cls) else Shape.OBJECT, cls)

    def _from_source(self, kind: str, node: ast.AST, home: Scope, depth: int) -> Receiver:
        if kind == "annotation" and isinstance(node, ast.expr):
            return self.annotated(node, home)
        if kind == "param" and isinstance(node, ast.arg) and node.annotation is not None:
            return self.annotated(node.annotation, home)
        if kind in ("value", "context") and isinstance(node, ast.Call | ast.Name | ast.Attribute):
            return self.receiver(node, home, depth + 1)
        return _UNKNOWN

    def annotated(self, annotation: ast.expr, scope: Scope) -> Receiver:
        """Return what an annotation says (``AbstractEventLoop | None`` is a loop)."""
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return _UNKNOWN
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            left = self.annotated(annotation.left, scope)
            return (
                left if left.shape is not Shape.UNKNOWN else self.annotated(annotation.right, scope)
            )
        if isinstance(annotation, ast.Subscript) and last_name(annotation.value) == "Optional":
            return self.annotated(annotation.slice, scope)
        return self._typed(annotation, scope)

    def local_class(self, expr: ast.expr, scope: Scope) -> ClassInfo | None:
        """Return the module's class that ``expr`` names, if any."""
        if not isinstance(expr, ast.Name):
            return None
        home = self.index.binding_scope(scope, expr.id)
        for kind, node in home.sources.get(expr.id, ()):
            if kind == "def" and node in self.index.classes:
                return self.index.classes[node]
        return None

    def _is_loop_class(self, cls: ClassInfo) -> bool:
        return any(
            self.qualified(base) in _LOOP_TYPES
            for member in cls.lineage()
            for base in member.node.bases
        )

    # -- callables -----------------------------------------------------------------------------

    def is_partial(self, func: ast.expr) -> bool:
        """Whether ``func`` is ``functools.partial``."""
        return self.qualified(func) in _PARTIALS

    def is_registrar(self, func: ast.expr, *, loop_only: bool = False) -> bool:
        """Whether ``func`` registers a callback whose return value is dropped."""
        if last_name(func) in LOOP_REGISTRARS and isinstance(func, ast.Attribute):
            return True
        return not loop_only and self.qualified(func) in _OTHER_REGISTRARS

    def callable_target(self, expr: ast.expr, scope: Scope) -> FunctionNode | ast.Lambda | None:
        """Return the module's function, method or lambda that ``expr`` refers to."""
        if isinstance(expr, ast.Call) and self.is_partial(expr.func) and expr.args:
            return self.callable_target(expr.args[0], scope)
        if isinstance(expr, ast.Lambda):
            return expr
        if isinstance(expr, ast.Name):
            home = self.index.binding_scope(scope, expr.id)
            for kind, node in home.sources.get(expr.id, ()):
                if kind == "def" and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    return node
                if kind == "value" and isinstance(node, ast.Lambda):
                    return node
            return None
        if isinstance(expr, ast.Attribute):
            owner = self.receiver(expr.value, scope)
            cls = owner.cls or self.local_class(expr.value, scope)
            return None if cls is None else cls.method(expr.attr)
        return None

    def references(self, function: FunctionNode) -> list[ast.expr]:
        """Return every expression of the module that refers to ``function``."""
        cached = self._references.get(function)
        if cached is None:
            cached = self._find_references(function)
            self._references[function] = cached
        return cached

    def _find_references(self, function: FunctionNode) -> list[ast.expr]:
        home = self.index.scope_of[function]
        if not home.is_class:
            return list(home.loads(function.name))
        owner = self.index.classes[home.node]
        family = owner.family()
        found: list[ast.expr] = []
        for attr in self.index.attributes.get(function.name, ()):
            if isinstance(attr.ctx, ast.Load):
                scope = self.index.scope_of[attr]
                cls = self.receiver(attr.value, scope).cls or self.local_class(attr.value, scope)
                if cls is not None and cls in family:
                    found.append(attr)
        return found

    def parameter(
        self, function: FunctionNode, call: ast.Call, arg: ast.expr, keyword: str | None
    ) -> str | None:
        """Return the parameter of ``function`` that ``arg`` of ``call`` binds, if certain."""
        args = function.args
        names = [a.arg for a in args.posonlyargs + args.args]
        if keyword is not None:
            return keyword if keyword in names + [a.arg for a in args.kwonlyargs] else None
        if any(isinstance(a, ast.Starred) for a in call.args):
            return None
        bound = self.index.scope_of[function].is_class and isinstance(call.func, ast.Attribute)
        if bound and not any(last_name(d) == "staticmethod" for d in function.decorator_list):
            names = names[1:]  # self (or cls) is bound by the attribute access
        index = next((i for i, a in enumerate(call.args) if a is arg), None)
        return None if index is None or index >= len(names) else names[index]
