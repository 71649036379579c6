"""Adding ``from taskward.aio import safe_create_task`` where an import sorter would put it.

The order is isort's and ruff's defaults: sections (``__future__``, standard library, third
party, first party, relative) separated by a blank line; in a section, ``import x`` lines
before ``from x import y`` lines, each sorted by module, case-insensitively. An existing
``from taskward.aio import ...`` gets the name added instead. Only the leading run of
top-level imports is considered; a module without one gets the import after its docstring.
"""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

from taskward.audit.plan import SAFE_MODULE, SAFE_NAME
from taskward.audit.source import parse

__all__ = ["add_import"]

_FUTURE, _STDLIB, _THIRD_PARTY, _FIRST_PARTY, _LOCAL = range(5)
_LINE = f"from {SAFE_MODULE} import {SAFE_NAME}"
ImportNode = ast.Import | ast.ImportFrom


def add_import(source: str, path: str | None = None) -> str:
    """Return ``source`` importing ``safe_create_task``, sorted with its other imports."""
    tree = parse(source, path or "<string>")
    lines = io.StringIO(source, newline="").readlines()
    newline = "\r\n" if "\r\n" in source else "\n"
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    run = _leading_imports(tree)
    if any(_imports_safe_name(stmt) for stmt in run):
        return source
    existing = next((s for s in run if _is_safe_module(s)), None)
    if existing is not None and _extend(existing, lines, newline):
        return "".join(lines)
    if run:
        _insert_sorted(run, _first_party(path), lines, newline)
    else:
        _insert_first(tree, lines, newline)
    return "".join(lines)


def _leading_imports(tree: ast.Module) -> list[ImportNode]:
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    run: list[ImportNode] = []
    for stmt in body:
        if not isinstance(stmt, ast.Import | ast.ImportFrom):
            break
        run.append(stmt)
    return run


def _imports_safe_name(stmt: ImportNode) -> bool:
    return (
        isinstance(stmt, ast.ImportFrom)
        and stmt.module in (SAFE_MODULE, "taskward")
        and not stmt.level
        and any(a.name == SAFE_NAME and a.asname in (None, SAFE_NAME) for a in stmt.names)
    )


def _is_safe_module(stmt: ImportNode) -> bool:
    return isinstance(stmt, ast.ImportFrom) and stmt.module == SAFE_MODULE and not stmt.level


def _name_key(name: str) -> tuple[int, str]:
    # ruff's order-by-type: CONSTANTS, then Classes, then everything else.
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1 if name[:1].isupper() else 2, name.lower())


def _extend(stmt: ImportNode, lines: list[str], newline: str) -> bool:
    """Add the name to ``from taskward.aio import ...``; False when its layout is unusual."""
    if stmt.lineno == (stmt.end_lineno or stmt.lineno):  # a, b → a, b, safe_create_task
        head, _, body = lines[stmt.lineno - 1].partition(" import ")
        if any(mark in body for mark in "(;#\\"):
            return False
        parts = [part.strip() for part in body.split(",") if part.strip()]
        parts.append(SAFE_NAME)
        parts.sort(key=lambda part: _name_key(part.split(" as ")[0]))
        lines[stmt.lineno - 1] = f"{head} import {', '.join(parts)}{newline}"
        return True
    names = list(stmt.names)
    if len({a.lineno for a in names}) != len(names):  # several names on a line of a (...)
        return False
    after = next((a for a in names if _name_key(a.name) > _name_key(SAFE_NAME)), None)
    row = after.lineno if after is not None else names[-1].lineno + 1
    first = lines[names[0].lineno - 1]
    indent = first[: len(first) - len(first.lstrip())]
    lines.insert(row - 1, f"{indent}{SAFE_NAME},{newline}")
    return True


def _section(module: str, level: int, first_party: frozenset[str]) -> int:
    if level:
        return _LOCAL
    top = module.partition(".")[0]
    if top == "__future__":
        return _FUTURE
    if top in sys.stdlib_module_names:
        return _STDLIB
    return _FIRST_PARTY if top in first_party else _THIRD_PARTY


def _statement_key(stmt: ImportNode, first_party: frozenset[str]) -> tuple[int, int, str]:
    if isinstance(stmt, ast.Import):
        module = stmt.names[0].name
        return (_section(module, 0, first_party), 0, module.lower())
    module = stmt.module or ""
    return (_section(module, stmt.level, first_party), 1, module.lower())


def _first_party(path: str | None) -> frozenset[str]:
    """Return the top-level packages of the project itself (first party) seen from ``path``."""
    if path is None:
        return frozenset()
    found = set()
    for folder in Path(path).resolve().parents:
        for root in (folder, folder / "src"):
            if (root / "taskward" / "__init__.py").is_file():
                found.add("taskward")
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            break
    return frozenset(found)


def _insert_sorted(
    run: list[ImportNode], first_party: frozenset[str], lines: list[str], newline: str
) -> None:
    ours = (_section(SAFE_MODULE, 0, first_party), 1, SAFE_MODULE)
    keys = [_statement_key(stmt, first_party) for stmt in run]
    index = next((i for i, key in enumerate(keys) if key > ours), None)
    text = _LINE + newline
    if index is None:  # last of all
        last = run[-1]
        blank = "" if keys[-1][0] == ours[0] else newline
        lines.insert(last.end_lineno or last.lineno, blank + text)
        return
    if keys[index][0] != ours[0]:  # the next statement opens a later section
        if index > 0 and keys[index - 1][0] == ours[0]:
            previous = run[index - 1]
            lines.insert(previous.end_lineno or previous.lineno, text)
            return
        text += newline  # a section of our own, before the next one
    row = _above_comments(run[index].lineno - 1, run, index, lines)
    if row < run[index].lineno - 1 and not text.endswith(newline * 2):
        text += newline  # isort keeps a blank line above a comment block
    lines.insert(row, text)


def _above_comments(row: int, run: list[ImportNode], index: int, lines: list[str]) -> int:
    """Move an insertion point above the comment lines that belong to the next statement."""
    floor = (run[index - 1].end_lineno or 0) if index > 0 else 0
    while row > floor and lines[row - 1].lstrip().startswith("#"):
        row -= 1
    return row


def _insert_first(tree: ast.Module, lines: list[str], newline: str) -> None:
    """No import to sort with: after the docstring and comments, before the first statement."""
    body = tree.body
    docstring = (
        bool(body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    )
    code = body[1:] if docstring else body
    if docstring:
        row = body[0].end_lineno or body[0].lineno
        while row < len(lines) and not lines[row].strip():
            row += 1
    elif body:
        decorators = getattr(body[0], "decorator_list", [])
        row = min([body[0].lineno, *(d.lineno for d in decorators)]) - 1
    else:
        row = len(lines)
    # isort's spacing: two blank lines before a function or class, one before other code.
    blank = 0
    if code and row < len(lines) and lines[row].strip():
        definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        blank = 2 if isinstance(code[0], definition) else 1
    lines.insert(row, _LINE + newline * (1 + blank))
