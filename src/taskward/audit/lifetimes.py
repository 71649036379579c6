"""How long a function's local outlives the call: fresh containers, aliases and closures.

A local list or set made in the function dies with it, and so do the tasks in it. A local
bound to anything else (``pending = self._pending.get(key)``, a parameter) is another name for
a container owned elsewhere, which outlives the call. A local read by a nested function that
escapes (given as a callback, stored, returned) lives as long as that function.
"""

from __future__ import annotations

import ast

from taskward.audit.index import ModuleIndex, Position, Scope, end_position, position
from taskward.audit.receivers import Resolver

__all__ = ["escaping_closure", "foreign_source", "reads_after"]

_FRESH = (ast.List, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FRESH_CALLS = frozenset(
    {
        "list",
        "set",
        "dict",
        "collections.deque",
        "collections.defaultdict",
        "collections.OrderedDict",
    }
)


def foreign_source(home: Scope, name: str, resolver: Resolver) -> str | None:
    """Return where a local container comes from when the function did not make it."""
    for kind, node in home.sources.get(name, ()):
        if kind == "param":
            return f"the caller's `{name}`"
        if kind != "value" or not isinstance(node, ast.expr):
            continue
        fresh = isinstance(node, _FRESH) or (
            isinstance(node, ast.Call) and resolver.qualified(node.func) in _FRESH_CALLS
        )
        if not fresh:
            return f"`{name}`, which is {_short(ast.unparse(node))}"
    return None


def escaping_closure(use: ast.Name, home: Scope, index: ModuleIndex) -> str | None:
    """Return the nested function reading ``use`` when it outlives the call of ``home``."""
    scope: Scope | None = index.scope_of[use]
    if scope is home:
        return None
    while scope is not None and scope.parent is not home:
        scope = scope.parent
    if scope is None:
        return None
    nested = scope.node
    if isinstance(nested, ast.Lambda):
        parent = index.parents.get(nested)
        called_at_once = isinstance(parent, ast.Call) and parent.func is nested
        return None if called_at_once else "a lambda"
    if isinstance(nested, ast.FunctionDef | ast.AsyncFunctionDef):
        if nested.decorator_list:
            return f"{nested.name}()"  # a decorator may register it anywhere
        for ref in home.loads(nested.name):
            parent = index.parents.get(ref)
            if not (isinstance(parent, ast.Call) and parent.func is ref):
                return f"{nested.name}()"
    return None


def reads_after(
    index: ModuleIndex, home: Scope, name: str, start: Position, stmt: ast.AST
) -> list[ast.Name]:
    """Reads of ``name`` that may see a value bound at ``start`` by ``stmt``.

    Those after ``start`` up to a later sibling statement that rebinds the name, plus those
    anywhere in a loop enclosing ``stmt`` (they run again on the next iteration).
    """
    cutoff = _rebinding(index, stmt, name)
    loop = _enclosing_loop(index, stmt, home)
    found = []
    for use in home.loads(name):
        where = position(use)
        after = start < where and (cutoff is None or where < cutoff)
        if after or (loop is not None and position(loop) <= where <= end_position(loop)):
            found.append(use)
    return found


def _rebinding(index: ModuleIndex, stmt: ast.AST, name: str) -> Position | None:
    body = _sibling_list(index.parents.get(stmt), stmt)
    if body is None:
        return None
    later = body[body.index(stmt) + 1 :] if stmt in body else []
    for sibling in later:
        if isinstance(sibling, ast.Assign | ast.AnnAssign) and _assigns_name(sibling, name):
            return end_position(sibling)
    return None


def _enclosing_loop(index: ModuleIndex, node: ast.AST, home: Scope) -> ast.AST | None:
    current = index.parents.get(node)
    while current is not None and current is not home.node:
        if isinstance(current, ast.For | ast.AsyncFor | ast.While):
            return current
        current = index.parents.get(current)
    return None


def _sibling_list(parent: ast.AST | None, stmt: ast.AST) -> list[ast.stmt] | None:
    for name in ("body", "orelse", "finalbody"):
        body = getattr(parent, name, None)
        if isinstance(body, list) and any(s is stmt for s in body):
            return body
    return None


def _assigns_name(stmt: ast.Assign | ast.AnnAssign, name: str) -> bool:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    return any(isinstance(t, ast.Name) and t.id == name for t in targets)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
