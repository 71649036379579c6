"""Whether a kept task is watched by a done callback, or cannot fail at all.

A done callback watches a task when it reads the task's exception (``task.exception()``,
``task.result()``), itself or through a function of the module it hands the task to; a
callback the audit cannot follow is assumed to. A task whose coroutine is one ``try`` that
catches every ``Exception`` without re-raising cannot fail, so there is nothing to watch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence

from taskward.audit.index import FunctionNode, ModuleIndex, Scope
from taskward.audit.receivers import Resolver, last_name

__all__ = ["Supervision", "short"]

# Callbacks that cannot read a task's exception (set.discard, list.remove...).
_NON_READERS = frozenset({"discard", "remove", "pop", "clear", "set", "release", "append"})


def short(text: str) -> str:
    """Return ``text`` cut to a length that fits in a one-line reason."""
    return text if len(text) <= 60 else text[:57] + "..."


class Supervision:
    """Answers whether callbacks and coroutines of one module supervise the tasks they get."""

    def __init__(self, index: ModuleIndex, resolver: Resolver) -> None:
        self.index = index
        self.resolver = resolver
        self._reads: dict[tuple[ast.AST, str], bool] = {}

    def reads_exception(self, callback: ast.expr) -> str | None:
        """Return why a done callback reads the task's exception, or None if it does not."""
        target = self.resolver.callable_target(callback, self.index.scope_of[callback])
        label = short(ast.unparse(callback))
        if target is None:
            if isinstance(callback, ast.Attribute) and callback.attr in _NON_READERS:
                return None
            return f"handed to done callback {label}, which the audit cannot follow"
        # add_done_callback(cb) calls cb(task), so the task is the last positional parameter
        # (a partial binds the leading ones).
        params = [a.arg for a in target.args.posonlyargs + target.args.args]
        if params and self._body_reads(target, params[-1], 0):
            return f"done callback {label} reads its exception"
        return None

    def _body_reads(self, function: FunctionNode | ast.Lambda, task: str, depth: int) -> bool:
        """Whether ``function`` reads the exception of the task in its parameter ``task``."""
        key = (function, task)
        if key in self._reads:
            return self._reads[key]
        self._reads[key] = False  # a recursive callback reads nothing by recursing
        body = function.body if isinstance(function.body, list) else [function.body]
        found = any(self._call_reads(call, task, depth) for call in _calls_in(body))
        self._reads[key] = found
        return found

    def _call_reads(self, call: ast.Call, task: str, depth: int) -> bool:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in ("exception", "result"):
            return isinstance(func.value, ast.Name) and func.value.id == task
        passed = next((a for a in call.args if isinstance(a, ast.Name) and a.id == task), None)
        if passed is None:
            return False
        target = self.resolver.callable_target(func, self.index.scope_of[call])
        if isinstance(target, ast.FunctionDef | ast.AsyncFunctionDef):
            param = self.resolver.parameter(target, call, passed, None)
            return param is not None and depth < 3 and self._body_reads(target, param, depth + 1)
        # Handed to something the audit cannot follow: assume it looks at the task, unless
        # it is a container method (tasks.discard(t)).
        return target is None and last_name(func) not in _NON_READERS

    def catching_coroutine(self, call: ast.Call, scope: Scope) -> str | None:
        """Return why the coroutine a call starts cannot fail, or None."""
        coro = call.args[0] if call.args else None
        if not isinstance(coro, ast.Call):
            return None
        target = self.resolver.callable_target(coro.func, scope)
        if isinstance(target, ast.AsyncFunctionDef) and self._catches_everything(target):
            return f"its coroutine {target.name}() catches every exception"
        return None

    def _catches_everything(self, function: ast.AsyncFunctionDef) -> bool:
        body = function.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        if len(body) != 1 or not isinstance(body[0], ast.Try):
            return False
        return any(
            self._catches_all(handler.type) and not _raises(handler.body)
            for handler in body[0].handlers
        )

    def _catches_all(self, caught: ast.expr | None) -> bool:
        if caught is None:
            return True
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        return any(self.resolver.qualified(n) in ("Exception", "BaseException") for n in names)


def _calls_in(body: Sequence[ast.AST]) -> Iterable[ast.Call]:
    for node in body:
        for child in ast.walk(node):
            if isinstance(child, ast.Call):
                yield child


def _raises(body: Sequence[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Raise) for stmt in body for n in ast.walk(stmt))
