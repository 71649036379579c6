"""Scopes, bindings and uses of one parsed module: the name resolution the audit builds on.

One walk over the tree records each node's parent and syntactic scope, what every scope binds
(and from which expression), every ``self.<attr>`` of every class, and every call. Loads are
then resolved to the scope that binds them, following Python's rules: class bodies are not
enclosing scopes, ``global`` and ``nonlocal`` redirect. Comprehensions are folded into their
enclosing scope, which only matters when a comprehension variable shadows a local name.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ClassInfo",
    "FunctionNode",
    "ModuleIndex",
    "Position",
    "Scope",
    "end_position",
    "position",
]

Position = tuple[int, int]
FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
ScopeNode = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
# (kind, node): kind is "value", "annotation", "context" (a with item), "param", "def" or
# "import"; node is the expression, annotation, arg, definition or alias it came from.
Source = tuple[str, ast.AST]


def position(node: ast.AST) -> Position:
    """Return where a node starts, as (line, byte column)."""
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def end_position(node: ast.AST) -> Position:
    """Return where a node ends, as (line, byte column)."""
    line, col = position(node)
    end_line = getattr(node, "end_lineno", None)
    end_col = getattr(node, "end_col_offset", None)
    return (line if end_line is None else end_line, col if end_col is None else end_col)


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


@dataclass(eq=False)
class Scope:
    """One Python scope (module, class, function or lambda) and the names it binds."""

    node: ScopeNode
    parent: Scope | None
    qualname: str
    sources: dict[str, list[Source]] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)
    declared: dict[str, str] = field(default_factory=dict)
    names: list[ast.Name] = field(default_factory=list)
    uses: dict[str, list[ast.Name]] = field(default_factory=dict)

    @property
    def is_class(self) -> bool:
        """Whether this is a class body."""
        return isinstance(self.node, ast.ClassDef)

    @property
    def is_function(self) -> bool:
        """Whether this is a function or lambda body (names here die when it returns)."""
        return isinstance(self.node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)

    @property
    def is_async(self) -> bool:
        """Whether this is the body of an ``async def``."""
        return isinstance(self.node, ast.AsyncFunctionDef)

    @property
    def display(self) -> str:
        """The qualified name shown in findings (``<module>`` at the top level)."""
        return self.qualname or "<module>"

    def bind(self, name: str, kind: str, node: ast.AST) -> None:
        """Record that ``name`` is bound here, and from what."""
        self.sources.setdefault(name, []).append((kind, node))
        self.stored.add(name)

    def loads(self, name: str) -> list[ast.Name]:
        """Return the reads of ``name`` that resolve to this scope, in source order."""
        return [n for n in self.uses.get(name, ()) if isinstance(n.ctx, ast.Load)]


@dataclass(eq=False)
class ClassInfo:
    """A class of the module: its methods, local bases, and what its ``self.<attr>`` hold."""

    node: ast.ClassDef
    scope: Scope
    bases: list[ClassInfo] = field(default_factory=list)
    subclasses: list[ClassInfo] = field(default_factory=list)
    attr_sources: dict[str, list[tuple[str, ast.AST, Scope]]] = field(default_factory=dict)
    attr_uses: dict[str, list[ast.Attribute]] = field(default_factory=dict)

    def own_method(self, name: str) -> FunctionNode | None:
        """Return the method ``name`` defined in this class body, if any."""
        for kind, node in self.scope.sources.get(name, ()):
            if kind == "def" and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return None

    def lineage(self) -> Iterator[ClassInfo]:
        """Yield this class, then its local bases depth first (a simple MRO)."""
        seen: set[int] = set()
        stack = [self]
        while stack:
            cls = stack.pop(0)
            if id(cls) not in seen:
                seen.add(id(cls))
                yield cls
                stack.extend(cls.bases)

    def family(self) -> list[ClassInfo]:
        """Return this class, its local ancestors and its local descendants."""
        found = list(self.lineage())
        stack = list(self.subclasses)
        while stack:
            cls = stack.pop()
            if cls not in found:
                found.append(cls)
                stack.extend(cls.subclasses)
        return found

    def method(self, name: str) -> FunctionNode | None:
        """Return the method ``name`` of this class or of a local base."""
        return next((m for c in self.lineage() if (m := c.own_method(name))), None)


class ModuleIndex:
    """Parents, scopes, bindings, uses and classes of one module, built in one walk."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.parents: dict[ast.AST, ast.AST] = {}
        self.scope_of: dict[ast.AST, Scope] = {}
        self.scopes: dict[ast.AST, Scope] = {}
        self.classes: dict[ast.AST, ClassInfo] = {}
        self.attributes: dict[str, list[ast.Attribute]] = {}
        self.calls: list[ast.Call] = []
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.module = self._new_scope(tree, None, "")
        self._children(tree, self.module)
        for scope in self.scopes.values():
            for name in scope.names:
                self.binding_scope(scope, name.id).uses.setdefault(name.id, []).append(name)
        self._link_classes()
        self._collect_self_attributes()

    # -- lookups -------------------------------------------------------------------------------

    def binding_scope(self, scope: Scope, name: str) -> Scope:
        """Return the scope whose binding of ``name`` a read in ``scope`` sees."""
        declared = scope.declared.get(name)
        if declared == "global":
            return self.module
        if declared is None and name in scope.stored:
            return scope
        outer = scope.parent
        while outer is not None:
            if not outer.is_class:
                if outer.declared.get(name) == "global":
                    return self.module
                if name in outer.stored and outer.declared.get(name) is None:
                    return outer
            outer = outer.parent
        return self.module

    def statement_of(self, node: ast.AST) -> ast.stmt | None:
        """Return the statement that contains ``node``."""
        current: ast.AST | None = node
        while current is not None and not isinstance(current, ast.stmt):
            current = self.parents.get(current)
        return current

    def self_class(self, expr: ast.AST) -> ClassInfo | None:
        """Return the class when ``expr`` is a method's ``self`` (or ``cls``) parameter."""
        if not isinstance(expr, ast.Name) or expr not in self.scope_of:
            return None
        home = self.binding_scope(self.scope_of[expr], expr.id)
        method = home.node
        if home.parent is None or not home.parent.is_class:
            return None
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            return None
        params = [*method.args.posonlyargs, *method.args.args]
        if not params or params[0].arg != expr.id or _is_static(method):
            return None
        return self.classes.get(home.parent.node)

    def family_attr_uses(self, cls: ClassInfo, attr: str) -> list[ast.Attribute]:
        """Return every ``self.<attr>`` in the class's local family."""
        return [use for member in cls.family() for use in member.attr_uses.get(attr, ())]

    def family_attr_sources(self, cls: ClassInfo, attr: str) -> list[tuple[str, ast.AST, Scope]]:
        """Return what ``self.<attr>`` is assigned from anywhere in the class's local family."""
        return [src for member in cls.family() for src in member.attr_sources.get(attr, ())]

    # -- the walk ------------------------------------------------------------------------------

    def _new_scope(self, node: ScopeNode, parent: Scope | None, name: str) -> Scope:
        qualname = f"{parent.qualname}.{name}" if parent and parent.qualname else name
        scope = Scope(node, parent, qualname)
        self.scopes[node] = scope
        return scope

    def _children(self, node: ast.AST, scope: Scope) -> None:
        # ast.iter_child_nodes, minus the ctx/op singletons, without a generator: this loop
        # runs for every node of every file with a task start, so it is most of the cost.
        parents = self.parents
        for name in _child_fields(type(node)):
            value = getattr(node, name, None)
            if type(value) is list:
                for child in value:
                    if isinstance(child, ast.AST):
                        parents[child] = node
                        self._visit(child, scope)
            elif isinstance(value, ast.AST):
                parents[value] = node
                self._visit(value, scope)

    def _visit(self, node: ast.AST, scope: Scope) -> None:
        self.scope_of[node] = scope
        kind = type(node)
        if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef:
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            scope.bind(node.name, "def", node)
            self._scoped(node, scope, node.name, node.body)
        elif kind is ast.Lambda:
            assert isinstance(node, ast.Lambda)
            self._scoped(node, scope, "<lambda>", [node.body])
        else:
            recorder = _RECORDERS.get(kind)
            if recorder is not None:
                recorder(self, node, scope)
            self._children(node, scope)

    def _scoped(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef,
        outer: Scope,
        name: str,
        body: list[ast.stmt] | list[ast.expr],
    ) -> None:
        # Decorators, defaults, annotations and bases run in the outer scope; the body inside.
        inner = self._new_scope(node, outer, name)
        inside = {id(child) for child in body}
        for child in ast.iter_child_nodes(node):
            self.parents[child] = node
            self._visit(child, inner if id(child) in inside else outer)
        if isinstance(node, ast.ClassDef):
            self.classes[node] = ClassInfo(node, inner)
        else:
            for arg in _all_args(node.args):
                inner.bind(arg.arg, "param", arg)

    def _link_classes(self) -> None:
        for info in self.classes.values():
            scope = self.scope_of[info.node]
            for base in info.node.bases:
                if isinstance(base, ast.Name):
                    found = self._class_named(scope, base.id)
                    if found is not None and found is not info:
                        info.bases.append(found)
                        found.subclasses.append(info)
            for name, sources in info.scope.sources.items():
                for kind, node in sources:
                    if kind in ("value", "annotation"):
                        info.attr_sources.setdefault(name, []).append((kind, node, info.scope))

    def _class_named(self, scope: Scope, name: str) -> ClassInfo | None:
        home = self.binding_scope(scope, name)
        for kind, node in home.sources.get(name, ()):
            if kind == "def" and node in self.classes:
                return self.classes[node]
        return None

    def _collect_self_attributes(self) -> None:
        for nodes in self.attributes.values():
            for node in nodes:
                cls = self.self_class(node.value)
                if cls is not None:
                    cls.attr_uses.setdefault(node.attr, []).append(node)
                    if isinstance(node.ctx, ast.Store):
                        self._record_attr_source(cls, node)

    def _record_attr_source(self, cls: ClassInfo, node: ast.Attribute) -> None:
        parent = self.parents.get(node)
        scope = self.scope_of[node]
        sources = cls.attr_sources.setdefault(node.attr, [])
        if isinstance(parent, ast.Assign) and node in parent.targets:
            sources.append(("value", parent.value, scope))
        elif isinstance(parent, ast.AnnAssign) and parent.target is node:
            sources.append(("annotation", parent.annotation, scope))
            if parent.value is not None:
                sources.append(("value", parent.value, scope))


_NOT_CHILDREN = frozenset({"ctx", "op", "ops", "type_comment"})
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}


def _child_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = tuple(f for f in kind._fields if f not in _NOT_CHILDREN)
        _CHILD_FIELDS[kind] = fields
    return fields


def _is_static(method: FunctionNode) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in method.decorator_list)


# -- what each node type records ---------------------------------------------------------------


def _record_name(index: ModuleIndex, node: ast.Name, scope: Scope) -> None:
    scope.names.append(node)
    if not isinstance(node.ctx, ast.Load):
        scope.stored.add(node.id)


def _record_attribute(index: ModuleIndex, node: ast.Attribute, scope: Scope) -> None:
    index.attributes.setdefault(node.attr, []).append(node)


def _record_call(index: ModuleIndex, node: ast.Call, scope: Scope) -> None:
    index.calls.append(node)


def _record_assign(index: ModuleIndex, node: ast.Assign, scope: Scope) -> None:
    for target in node.targets:
        if isinstance(target, ast.Name):
            scope.bind(target.id, "value", node.value)


def _record_annassign(index: ModuleIndex, node: ast.AnnAssign, scope: Scope) -> None:
    if isinstance(node.target, ast.Name):
        scope.bind(node.target.id, "annotation", node.annotation)
        if node.value is not None:
            scope.bind(node.target.id, "value", node.value)


def _record_namedexpr(index: ModuleIndex, node: ast.NamedExpr, scope: Scope) -> None:
    scope.bind(node.target.id, "value", node.value)


def _record_withitem(index: ModuleIndex, node: ast.withitem, scope: Scope) -> None:
    if isinstance(node.optional_vars, ast.Name):
        scope.bind(node.optional_vars.id, "context", node.context_expr)


def _record_import(index: ModuleIndex, node: ast.Import | ast.ImportFrom, scope: Scope) -> None:
    index.imports.append(node)
    for alias in node.names:
        if alias.name != "*":
            bound = alias.asname or alias.name.partition(".")[0]
            scope.bind(bound, "import", alias)


def _record_declaration(index: ModuleIndex, node: ast.Global | ast.Nonlocal, scope: Scope) -> None:
    kind = "global" if isinstance(node, ast.Global) else "nonlocal"
    for name in node.names:
        scope.declared[name] = kind


def _record_handler(index: ModuleIndex, node: ast.ExceptHandler, scope: Scope) -> None:
    if node.name:
        scope.stored.add(node.name)


_RECORDERS: dict[type[ast.AST], Callable[[ModuleIndex, Any, Scope], None]] = {
    ast.Name: _record_name,
    ast.Attribute: _record_attribute,
    ast.Call: _record_call,
    ast.Assign: _record_assign,
    ast.AnnAssign: _record_annassign,
    ast.NamedExpr: _record_namedexpr,
    ast.withitem: _record_withitem,
    ast.Import: _record_import,
    ast.ImportFrom: _record_import,
    ast.Global: _record_declaration,
    ast.Nonlocal: _record_declaration,
    ast.ExceptHandler: _record_handler,
}
