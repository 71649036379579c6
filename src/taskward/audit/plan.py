"""Which dangling calls ``--fix`` may rewrite to ``safe_create_task``, and why not the others.

A rewrite must not change what the program does, apart from failures now being logged and
counted. So only a call whose result is dropped anyway (a bare statement, or ``_ = ...``) is
rewritten, because ``safe_create_task`` returns a task that resolves to None instead of
raising; only inside code that runs on a running loop (an ``async def``, a loop callback, or a
helper only called from those), because ``safe_create_task`` needs one where
``loop.create_task`` does not; only with a coroutine made by a call expression (and, for
``ensure_future``, known to be a coroutine: it also accepts futures), because
``safe_create_task`` accepts nothing else; and only when every argument is one
``safe_create_task`` takes too (``name=``): a call with ``loop=`` or ``context=`` is left alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from taskward.audit.index import ModuleIndex, Scope
from taskward.audit.receivers import Entry, Resolver

__all__ = ["SAFE_MODULE", "SAFE_NAME", "Rewrite", "plan_rewrite"]

SAFE_MODULE = "taskward.aio"
SAFE_NAME = "safe_create_task"
_ASYNCIO_COROUTINES = frozenset(
    f"asyncio.{name}"
    for name in ("sleep", "wait", "wait_for", "open_connection", "start_server", "to_thread")
)
_COROUTINE_KEYWORDS = {Entry.ENSURE_FUTURE: "coro_or_future"}


@dataclass(frozen=True, slots=True)
class Rewrite:
    """How to rewrite one call: its callee becomes ``safe_create_task``.

    ``keyword`` is a ``coro_or_future=`` argument to rename to ``coro=`` (the name
    ``safe_create_task`` gives its coroutine parameter); everything else stays as written.
    """

    call: ast.Call
    keyword: ast.keyword | None


def plan_rewrite(
    call: ast.Call, entry: Entry, scope: Scope, index: ModuleIndex, resolver: Resolver
) -> Rewrite | str:
    """Return how to rewrite a dangling call, or why it is left alone."""
    if not _statement(call, index):
        return "not a statement of its own"
    if not _on_running_loop(scope, index, resolver, 0):
        return "not known to run on a running loop"
    found = _coroutine_argument(call, entry)
    if isinstance(found, str):
        return found
    coro, keyword = found
    if entry is Entry.ENSURE_FUTURE and not _makes_coroutine(coro, scope, resolver):
        return "ensure_future() of something not known to be a coroutine"
    if _shadowed(scope, index):
        return f"`{SAFE_NAME}` means something else here"
    return Rewrite(call, keyword if keyword is not None and keyword.arg != "coro" else None)


def _statement(call: ast.Call, index: ModuleIndex) -> bool:
    parent = index.parents.get(call)
    if isinstance(parent, ast.Expr):
        return True
    return (
        isinstance(parent, ast.Assign)
        and parent.value is call
        and all(isinstance(t, ast.Name) and t.id == "_" for t in parent.targets)
    )


def _on_running_loop(scope: Scope, index: ModuleIndex, resolver: Resolver, depth: int) -> bool:
    node = scope.node
    if isinstance(node, ast.AsyncFunctionDef):
        return True
    if not isinstance(node, ast.FunctionDef) or depth > 2:
        return False
    refs = resolver.references(node)
    return bool(refs) and all(_runs_on_loop(ref, index, resolver, depth) for ref in refs)


def _runs_on_loop(ref: ast.expr, index: ModuleIndex, resolver: Resolver, depth: int) -> bool:
    """Whether this use of a sync function runs it on a running loop."""
    parent = index.parents.get(ref)
    if isinstance(parent, ast.keyword):
        parent = index.parents.get(parent)
    if not isinstance(parent, ast.Call):
        return False
    if parent.func is ref:  # called directly: from where?
        return _on_running_loop(index.scope_of[parent], index, resolver, depth + 1)
    if resolver.is_partial(parent.func):
        return _runs_on_loop(parent, index, resolver, depth)
    return resolver.is_registrar(parent.func, loop_only=True)


def _coroutine_argument(call: ast.Call, entry: Entry) -> tuple[ast.Call, ast.keyword | None] | str:
    coro_name = _COROUTINE_KEYWORDS.get(entry, "coro")
    if any(k.arg is None for k in call.keywords):
        return "passes **kwargs"
    extra = [k.arg for k in call.keywords if k.arg not in (coro_name, "name")]
    if extra:
        return f"passes {extra[0]}=, which {SAFE_NAME} does not take"
    by_keyword = [k for k in call.keywords if k.arg == coro_name]
    if len(call.args) + len(by_keyword) != 1 or any(isinstance(a, ast.Starred) for a in call.args):
        return "its arguments are not one coroutine"
    coro = call.args[0] if call.args else by_keyword[0].value
    if not isinstance(coro, ast.Call):
        return "its coroutine is not a call expression"
    return coro, (by_keyword[0] if by_keyword else None)


def _makes_coroutine(coro: ast.Call, scope: Scope, resolver: Resolver) -> bool:
    target = resolver.callable_target(coro.func, scope)
    if isinstance(target, ast.AsyncFunctionDef):
        return True
    return resolver.qualified(coro.func) in _ASYNCIO_COROUTINES


def _shadowed(scope: Scope, index: ModuleIndex) -> bool:
    home = index.binding_scope(scope, SAFE_NAME)
    sources = home.sources.get(SAFE_NAME, ())
    return any(not _is_safe_import(kind, node, index) for kind, node in sources)


def _is_safe_import(kind: str, node: ast.AST, index: ModuleIndex) -> bool:
    statement = index.parents.get(node)
    return (
        kind == "import"
        and isinstance(node, ast.alias)
        and node.name == SAFE_NAME
        and isinstance(statement, ast.ImportFrom)
        and statement.module in (SAFE_MODULE, "taskward")
    )
