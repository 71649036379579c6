"""Following a task from the call that made it to everything that uses it (the classifier).

The value is followed upwards through the expression around it (see
:mod:`taskward.audit.expressions`), into the names, attributes and containers it is stored in
and every later read of them, into the functions it is passed to, and back out through the
callers of a function that returns it. ``depth`` is how deep the task sits in containers: 0
is the task, 1 a list of tasks, 2 a dict of tuples of tasks. Results are memoised per
module; a cycle (a name stored back into itself, a recursive function) gets a neutral answer.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import replace

from taskward.audit.expressions import HANDLERS
from taskward.audit.fate import IN_PROGRESS, NOTHING, Fate, any_use, every_path
from taskward.audit.index import FunctionNode, ModuleIndex, Scope, end_position
from taskward.audit.lifetimes import escaping_closure, foreign_source, reads_after
from taskward.audit.receivers import Entry, Resolver, last_name
from taskward.audit.supervision import Supervision, short

__all__ = ["Classifier"]

_PASS_THROUGH = frozenset(
    {"asyncio.gather", "asyncio.shield", "asyncio.wait_for", "asyncio.ensure_future"}
    | {"asyncio.tasks.gather", "asyncio.tasks.shield", "asyncio.wrap_future"}
)
_WAITERS = frozenset({"asyncio.wait", "asyncio.as_completed", "asyncio.tasks.wait"})
_ADDERS = frozenset({"add", "append", "appendleft", "insert", "put", "put_nowait", "setdefault"})
_EXTENDERS = frozenset({"extend", "extendleft", "update"})
_IGNORING = frozenset({"discard", "remove", "debug", "info", "warning", "error", "exception"})
_IGNORING_BUILTINS = frozenset({"print", "repr", "str", "len", "id", "isinstance", "hash", "bool"})
_CONTAINER_BUILTINS = frozenset({"list", "set", "tuple", "frozenset", "sorted", "reversed", "iter"})
_PAIRING_BUILTINS = frozenset({"enumerate", "zip"})  # their items are tuples holding ours
_ELEMENT_GETTERS = frozenset({"pop", "popleft", "get", "__getitem__"})
_SAME_CONTAINER = frozenset({"values", "items", "copy"})
_MAX_DEPTH = 4


class Classifier:
    """Follows task values through one module (memoised: a module is classified once)."""

    def __init__(self, index: ModuleIndex, resolver: Resolver) -> None:
        self.index = index
        self.resolver = resolver
        self._memo: dict[tuple[object, ...], Fate] = {}
        self.supervision = Supervision(index, resolver)

    def site(self, node: ast.expr, entry: Entry, scope: Scope) -> Fate:
        """Return the fate of the task started by a call (or a callable given away)."""
        if entry is Entry.GROUP:
            return Fate(kept="started in a task group", watched="supervised by its task group")
        if not isinstance(node, ast.Call):
            return self.as_callable(node, 0)
        fate = self.value(node, 0)
        guarded = self.supervision.catching_coroutine(node, scope)
        return fate if guarded is None else fate.also(Fate(watched=guarded))

    def value(self, expr: ast.expr, depth: int) -> Fate:
        """Return the fate of the value of ``expr`` (a task at ``depth`` 0)."""
        if depth < 0 or depth > _MAX_DEPTH:
            return NOTHING
        parent = self.index.parents.get(expr)
        handler = None if parent is None else HANDLERS.get(type(parent))
        return NOTHING if handler is None else handler(self, parent, expr, depth)

    def _memoised(self, key: tuple[object, ...], busy: Fate, compute: Callable[[], Fate]) -> Fate:
        # ``busy`` answers a cycle (a name stored back into itself, a recursive function).
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = busy
        fate = self._memo[key] = compute()
        return fate

    # -- names, attributes, containers ---------------------------------------------------------

    def bind(self, target: ast.expr, depth: int, stmt: ast.AST, start: tuple[int, int]) -> Fate:
        """Return the fate of a value bound to an assignment target."""
        if isinstance(target, ast.Name):
            if target.id == "_":
                return Fate(lost="bound only to `_`, the throwaway name")
            return self.name(target, depth, stmt, start)
        if isinstance(target, ast.Attribute):
            return self.attribute(target, depth, "stored in")
        if isinstance(target, ast.Subscript):
            return self.store_into(target.value, depth + 1)
        if isinstance(target, ast.Tuple | ast.List) and depth > 0:
            return any_use(self.bind(e, depth - 1, stmt, start) for e in target.elts)
        if isinstance(target, ast.Starred):
            return self.bind(target.value, depth + 1, stmt, start)
        return NOTHING

    def name(self, node: ast.Name, depth: int, stmt: ast.AST, start: tuple[int, int]) -> Fate:
        """Return the fate of a value bound to (or held by) a name from ``start`` on."""
        home = self.index.binding_scope(self.index.scope_of[node], node.id)
        if not home.is_function or home is not self.index.scope_of[node]:
            return self._shared_name(home, node.id, depth)
        key = ("name", home.node, node.id, start, depth)
        return self._memoised(key, NOTHING, lambda: self._local(home, node.id, depth, stmt, start))

    def _local(
        self, home: Scope, name: str, depth: int, stmt: ast.AST, start: tuple[int, int]
    ) -> Fate:
        uses = reads_after(self.index, home, name, start, stmt)
        if not uses:
            return Fate(lost=f"`{name}` is never read")
        fate = any_use(self._read(use, home, depth) for use in uses)
        if fate.kept is None:
            detail = f": {fate.lost}" if fate.lost else ""
            fate = replace(fate, lost=f"`{name}` is dropped when {home.display}() returns{detail}")
        return fate

    def _read(self, use: ast.Name, home: Scope, depth: int) -> Fate:
        fate = self.value(use, depth)
        closure = escaping_closure(use, home, self.index)
        if closure is not None:
            fate = fate.also(Fate(kept=f"captured by {closure}, which outlives the call"))
        return fate

    def _shared_name(self, home: Scope, name: str, depth: int) -> Fate:
        where = "module-level" if home is self.index.module else f"{home.display}'s"
        if home.is_class:
            where = f"class {home.display}'s"
        key = ("shared", home.node, name, depth)
        return self._memoised(
            key,
            Fate(kept=f"stored in {where} `{name}`"),
            lambda: Fate(
                kept=f"stored in {where} `{name}`",
                watched=any_use(self.value(u, depth) for u in home.loads(name)).watched,
            ),
        )

    def attribute(self, target: ast.Attribute, depth: int, verb: str) -> Fate:
        """Return the fate of a value stored in an attribute: kept, watched where it is read."""
        cls = self.index.self_class(target.value)
        if cls is not None:
            label = f"self.{target.attr}"
            uses = self.index.family_attr_uses(cls, target.attr)
            key: tuple[object, ...] = ("attr", cls.node, target.attr, depth)
        else:
            label = ast.unparse(target)
            uses = [a for a in self.index.attributes.get(target.attr, ()) if _same(a, label)]
            key = ("attr", label, depth)
        kept = f"{verb} {label}"

        def compute() -> Fate:
            loads = [use for use in uses if isinstance(use.ctx, ast.Load)]
            return Fate(kept=kept, watched=any_use(self.value(u, depth) for u in loads).watched)

        return self._memoised(key, Fate(kept=kept), compute)

    def store_into(self, container: ast.expr, depth: int) -> Fate:
        """Return the fate of a container that receives a value (at ``depth`` in it)."""
        if isinstance(container, ast.Name):
            home = self.index.binding_scope(self.index.scope_of[container], container.id)
            if not home.is_function or home is not self.index.scope_of[container]:
                return self._shared_name(home, container.id, depth)
            key = ("container", home.node, container.id, depth)
            return self._memoised(key, NOTHING, lambda: self._container(home, container.id, depth))
        if isinstance(container, ast.Attribute):
            return self.attribute(container, depth, "held by")
        return Fate(kept=f"held by {ast.unparse(container)}")

    def _container(self, home: Scope, name: str, depth: int) -> Fate:
        # A container is one object whatever the order of its uses: stored before the task is
        # added, it still holds it. So every read counts, not only the later ones.
        fate = any_use(self._read(use, home, depth) for use in home.loads(name))
        owner = foreign_source(home, name, self.resolver)
        if owner is not None:  # the function did not make it: it outlives the call
            fate = fate.also(Fate(kept=f"held by {owner}"))
        if fate.kept is None:
            detail = f": {fate.lost}" if fate.lost else ""
            fate = replace(fate, lost=f"`{name}` is dropped when {home.display}() returns{detail}")
        return fate

    def element(self, container: ast.expr, expr: ast.expr, depth: int) -> Fate:
        """Return the fate of an item of a list, tuple or set display."""
        stmt = self.index.parents.get(container)
        elts = getattr(container, "elts", [])
        if not (isinstance(stmt, ast.Assign) and stmt.value is container):
            return self.value(container, depth + 1)
        if any(isinstance(e, ast.Starred) for e in elts):
            return self.value(container, depth + 1)
        index = next(i for i, e in enumerate(elts) if e is expr)
        start = end_position(stmt)
        fates = []
        for target in stmt.targets:  # a, b = x, y binds item by item
            if isinstance(target, ast.Tuple | ast.List) and _unpacks(target, len(elts)):
                fates.append(self.bind(target.elts[index], depth, stmt, start))
            else:
                fates.append(self.bind(target, depth + 1, stmt, start))
        return any_use(fates)

    # -- calls: arguments, methods, returns ----------------------------------------------------

    def call_argument(self, call: ast.Call, arg: ast.expr, depth: int, keyword: str | None) -> Fate:
        """Return the fate of a value passed to a call."""
        func = call.func
        qualified = self.resolver.qualified(func) or ""
        label = _label(func)
        if depth == 0 and qualified in _PASS_THROUGH:
            return _through(self.value(call, 0), label)
        if (depth == 1 and qualified in _WAITERS) or (
            depth == 0 and last_name(func) == "run_until_complete"
        ):
            return Fate(kept=f"waited for by {label}()", watched=f"waited for by {label}()")
        method = self._container_method(func, depth)
        if method is not None:
            return method
        if qualified in _IGNORING_BUILTINS:
            return NOTHING
        if qualified in _CONTAINER_BUILTINS and depth > 0:
            return self.value(call, depth)
        if qualified in _PAIRING_BUILTINS and depth > 0:
            return self.value(call, depth + 1)
        return self._passed(call, arg, depth, keyword, label)

    def _container_method(self, func: ast.expr, depth: int) -> Fate | None:
        if not isinstance(func, ast.Attribute):
            return None
        if func.attr in _ADDERS:
            return self.store_into(func.value, depth + 1)
        if func.attr in _EXTENDERS and depth > 0:
            return self.store_into(func.value, depth)
        if func.attr in _IGNORING:
            return NOTHING
        return None

    def _passed(
        self, call: ast.Call, arg: ast.expr, depth: int, keyword: str | None, label: str
    ) -> Fate:
        target = self.resolver.callable_target(call.func, self.index.scope_of[call])
        if isinstance(target, ast.FunctionDef | ast.AsyncFunctionDef):
            param = self.resolver.parameter(target, call, arg, keyword)
            if param is not None:
                return self.parameter(target, param, depth)
        return Fate(kept=f"handed to {label}()", watched=f"handed to {label}()")

    def parameter(self, function: FunctionNode, param: str, depth: int) -> Fate:
        """Return the fate of a value passed as ``param`` to a function of the module."""
        scope = self.index.scopes[function]

        def compute() -> Fate:
            uses = scope.loads(param)
            fate = any_use(self.value(use, depth) for use in uses)
            if fate.kept is None:
                fate = replace(fate, lost=f"{function.name}() does not keep its `{param}`")
            return fate

        return self._memoised(("param", function, param, depth), NOTHING, compute)

    def method_use(self, attr: ast.Attribute, depth: int) -> Fate:
        """Return the fate implied by calling a method on a task (or on a container)."""
        call = self.index.parents.get(attr)
        if not isinstance(call, ast.Call) or call.func is not attr:
            return NOTHING
        if depth == 0:
            return self._task_method(call, attr.attr)
        if attr.attr in _ELEMENT_GETTERS:
            return self.value(call, depth - 1)
        if attr.attr in _SAME_CONTAINER:
            return self.value(call, depth)
        return NOTHING

    def _task_method(self, call: ast.Call, name: str) -> Fate:
        lost = f"only .{name}() is called on it"
        if name == "add_done_callback" and call.args:
            return Fate(watched=self.supervision.reads_exception(call.args[0]), lost=lost)
        if name in ("result", "exception"):  # the frame keeps it until then
            return Fate(kept=f"read by .{name}()", watched=f".{name}() reads it")
        return Fate(lost=lost)

    def returned(self, ret: ast.Return | ast.Lambda, depth: int) -> Fate:
        """Return the fate of a value returned by a function: its callers decide."""
        node = ret if isinstance(ret, ast.Lambda) else self.index.scope_of[ret].node
        if isinstance(node, ast.Lambda):
            return self.as_callable(node, depth)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return NOTHING
        function = node
        return self._memoised(
            ("result", function, depth), IN_PROGRESS, lambda: self._result(function, depth)
        )

    def _result(self, function: FunctionNode, depth: int) -> Fate:
        name = self.index.scopes[function].display
        paths: list[tuple[int, Fate]] = [
            (ref.lineno, self._through_reference(function, ref, depth))
            for ref in self.resolver.references(function)
        ]
        if not paths or _decorated(function):
            outside = Fate(kept=f"returned by {name}() to callers outside this module")
            paths.append((function.lineno, outside))
        fate = every_path([fate for _, fate in paths])
        if fate.kept is None:
            line, dropped = next((n, f) for n, f in paths if f.kept is None)
            why = f": {dropped.lost}" if dropped.lost else ""
            lost = f"returned by {name}() and dropped by the caller on line {line}{why}"
            fate = replace(fate, lost=lost)
        return fate

    def _through_reference(self, function: FunctionNode, ref: ast.expr, depth: int) -> Fate:
        parent = self.index.parents.get(ref)
        if _is_property(function):
            return self.value(ref, depth)
        if not (isinstance(parent, ast.Call) and parent.func is ref):
            return self.as_callable(ref, depth)
        if isinstance(function, ast.FunctionDef):
            return self.value(parent, depth)
        awaited = self.index.parents.get(parent)
        if isinstance(awaited, ast.Await):
            return self.value(awaited, depth)
        return Fate(kept=f"returned by {function.name}()")

    def as_callable(self, expr: ast.expr, depth: int) -> Fate:
        """Return the fate of what calling ``expr`` returns, from where ``expr`` goes."""
        parent = self.index.parents.get(expr)
        if isinstance(parent, ast.keyword):
            parent = self.index.parents.get(parent)
        if isinstance(parent, ast.Call) and parent.func is not expr:
            return self._given_to(parent, expr, depth)
        if isinstance(parent, ast.Assign) and parent.value is expr and len(parent.targets) == 1:
            target = parent.targets[0]
            if isinstance(target, ast.Name):
                return self._alias_calls(target, depth)
        return Fate(kept="called elsewhere")

    def _given_to(self, call: ast.Call, expr: ast.expr, depth: int) -> Fate:
        label = _label(call.func)
        if self.resolver.is_registrar(call.func):
            return Fate(lost=f"given to {label}(), which drops what it returns")
        first = bool(call.args) and call.args[0] is expr
        if first and self.resolver.qualified(call.func) == "map":
            return self.value(call, depth + 1)
        if first and self.resolver.is_partial(call.func):
            return self.as_callable(call, depth)
        return Fate(kept=f"called by {label}()")

    def _alias_calls(self, target: ast.Name, depth: int) -> Fate:
        home = self.index.binding_scope(self.index.scope_of[target], target.id)

        def compute() -> Fate:
            fates = []
            for use in home.loads(target.id):
                parent = self.index.parents.get(use)
                if isinstance(parent, ast.Call) and parent.func is use:
                    fates.append(self.value(parent, depth))
                else:
                    fates.append(self.as_callable(use, depth))
            return every_path(fates) if fates else Fate(lost=f"`{target.id}` is never called")

        return self._memoised(("alias", home.node, target.id, depth), IN_PROGRESS, compute)

    # -- callbacks and coroutines --------------------------------------------------------------


def _label(func: ast.expr) -> str:
    return short(ast.unparse(func))


def _same(node: ast.Attribute, text: str) -> bool:
    return ast.unparse(node) == text


def _unpacks(target: ast.Tuple | ast.List, size: int) -> bool:
    return len(target.elts) == size and not any(isinstance(e, ast.Starred) for e in target.elts)


def _through(fate: Fate, label: str) -> Fate:
    if fate.kept is None:
        return Fate(lost=f"passed to {label}(), whose result is dropped")
    return Fate(fate.kept, fate.watched and f"awaited through {label}()", fate.lost)


def _decorated(function: FunctionNode) -> bool:
    neutral = ("staticmethod", "classmethod", "property", "cached_property", "wraps")
    return any(last_name(_callee(d)) not in neutral for d in function.decorator_list)


def _is_property(function: FunctionNode) -> bool:
    return any(last_name(d) in ("property", "cached_property") for d in function.decorator_list)


def _callee(decorator: ast.expr) -> ast.expr:
    return decorator.func if isinstance(decorator, ast.Call) else decorator
