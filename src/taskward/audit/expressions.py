"""What the expression or statement around a value does with it, one rule per node type.

``HANDLERS`` maps the type of a value's parent node to its rule: an ``await`` watches a task, a
bare statement drops it, an assignment hands it to its targets, a list display puts it one
level deeper, a call passes it on. The rules ask the :class:`~taskward.audit.classify.Classifier`
to follow the value further up.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskward.audit.fate import AWAITED, NOTHING, Fate, any_use
from taskward.audit.index import end_position

if TYPE_CHECKING:
    from taskward.audit.classify import Classifier

__all__ = ["HANDLERS"]

Handler = Callable[["Classifier", Any, ast.expr, int], Fate]


def _on_expr(c: Classifier, parent: ast.Expr, expr: ast.expr, depth: int) -> Fate:
    return Fate(lost="a bare statement drops its result")


def _on_await(c: Classifier, parent: ast.Await, expr: ast.expr, depth: int) -> Fate:
    return AWAITED if depth == 0 else NOTHING


def _on_return(c: Classifier, parent: ast.Return, expr: ast.expr, depth: int) -> Fate:
    return c.returned(parent, depth)


def _on_lambda(c: Classifier, parent: ast.Lambda, expr: ast.expr, depth: int) -> Fate:
    return c.returned(parent, depth) if parent.body is expr else NOTHING


def _on_assign(c: Classifier, parent: ast.Assign, expr: ast.expr, depth: int) -> Fate:
    if parent.value is not expr:
        return NOTHING
    start = end_position(parent)
    return any_use(c.bind(t, depth, parent, start) for t in parent.targets)


def _on_annassign(c: Classifier, parent: ast.AnnAssign, expr: ast.expr, depth: int) -> Fate:
    if parent.value is not expr:
        return NOTHING
    return c.bind(parent.target, depth, parent, end_position(parent))


def _on_augassign(c: Classifier, parent: ast.AugAssign, expr: ast.expr, depth: int) -> Fate:
    if parent.value is expr and depth > 0 and isinstance(parent.op, ast.Add):
        return c.store_into(parent.target, depth)
    return NOTHING


def _on_namedexpr(c: Classifier, parent: ast.NamedExpr, expr: ast.expr, depth: int) -> Fate:
    stmt = c.index.statement_of(parent) or parent
    named = c.bind(parent.target, depth, stmt, end_position(parent))
    return named.also(c.value(parent, depth))


def _on_ifexp(c: Classifier, parent: ast.IfExp, expr: ast.expr, depth: int) -> Fate:
    return NOTHING if parent.test is expr else c.value(parent, depth)


def _on_boolop(c: Classifier, parent: ast.BoolOp, expr: ast.expr, depth: int) -> Fate:
    # A task is truthy: `t and x` evaluates to x, `t or x` to t.
    if isinstance(parent.op, ast.And) and parent.values[-1] is not expr:
        return NOTHING
    return c.value(parent, depth)


def _on_display(c: Classifier, parent: ast.expr, expr: ast.expr, depth: int) -> Fate:
    return c.element(parent, expr, depth)


def _on_dict(c: Classifier, parent: ast.Dict, expr: ast.expr, depth: int) -> Fate:
    return c.value(parent, depth + 1)


def _on_comprehension(c: Classifier, parent: ast.expr, expr: ast.expr, depth: int) -> Fate:
    produced = (getattr(parent, name, None) for name in ("elt", "key", "value"))
    return c.value(parent, depth + 1) if any(expr is p for p in produced) else NOTHING


def _on_starred(c: Classifier, parent: ast.Starred, expr: ast.expr, depth: int) -> Fate:
    outer = c.index.parents.get(parent)
    if isinstance(outer, ast.Call) and depth > 0:
        return c.call_argument(outer, parent, depth - 1, None)
    if isinstance(outer, ast.List | ast.Tuple | ast.Set):
        return c.value(outer, depth)
    return NOTHING


def _on_call(c: Classifier, parent: ast.Call, expr: ast.expr, depth: int) -> Fate:
    return NOTHING if parent.func is expr else c.call_argument(parent, expr, depth, None)


def _on_keyword(c: Classifier, parent: ast.keyword, expr: ast.expr, depth: int) -> Fate:
    call = c.index.parents.get(parent)
    if not isinstance(call, ast.Call):
        return NOTHING
    return c.call_argument(call, expr, depth, parent.arg)


def _on_attribute(c: Classifier, parent: ast.Attribute, expr: ast.expr, depth: int) -> Fate:
    return c.method_use(parent, depth)


def _on_subscript(c: Classifier, parent: ast.Subscript, expr: ast.expr, depth: int) -> Fate:
    if parent.value is expr:
        return c.value(parent, depth - 1) if isinstance(parent.ctx, ast.Load) else NOTHING
    if isinstance(parent.ctx, ast.Store):  # a dict key: tasks[task] = ...
        return c.store_into(parent.value, depth + 1)
    return NOTHING


def _on_binop(c: Classifier, parent: ast.BinOp, expr: ast.expr, depth: int) -> Fate:
    return c.value(parent, depth) if depth > 0 and isinstance(parent.op, ast.Add) else NOTHING


def _on_for(c: Classifier, parent: ast.For | ast.AsyncFor, expr: ast.expr, depth: int) -> Fate:
    if parent.iter is not expr or depth == 0:
        return NOTHING
    return c.bind(parent.target, depth - 1, parent, end_position(parent.target))


def _on_generator(c: Classifier, parent: ast.comprehension, expr: ast.expr, depth: int) -> Fate:
    if parent.iter is not expr or depth == 0:
        return NOTHING
    return c.bind(parent.target, depth - 1, parent, end_position(parent.target))


def _on_yield(c: Classifier, parent: ast.Yield, expr: ast.expr, depth: int) -> Fate:
    return Fate(kept="yielded to the caller")


def _on_yield_from(c: Classifier, parent: ast.YieldFrom, expr: ast.expr, depth: int) -> Fate:
    return AWAITED if depth == 0 else NOTHING


HANDLERS: dict[type[ast.AST], Handler] = {
    ast.Expr: _on_expr,
    ast.Await: _on_await,
    ast.Return: _on_return,
    ast.Lambda: _on_lambda,
    ast.Assign: _on_assign,
    ast.AnnAssign: _on_annassign,
    ast.AugAssign: _on_augassign,
    ast.NamedExpr: _on_namedexpr,
    ast.IfExp: _on_ifexp,
    ast.BoolOp: _on_boolop,
    ast.List: _on_display,
    ast.Tuple: _on_display,
    ast.Set: _on_display,
    ast.Dict: _on_dict,
    ast.ListComp: _on_comprehension,
    ast.SetComp: _on_comprehension,
    ast.GeneratorExp: _on_comprehension,
    ast.DictComp: _on_comprehension,
    ast.comprehension: _on_generator,
    ast.Starred: _on_starred,
    ast.Call: _on_call,
    ast.keyword: _on_keyword,
    ast.Attribute: _on_attribute,
    ast.Subscript: _on_subscript,
    ast.BinOp: _on_binop,
    ast.For: _on_for,
    ast.AsyncFor: _on_for,
    ast.Yield: _on_yield,
    ast.YieldFrom: _on_yield_from,
}
