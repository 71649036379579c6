"""Static audit for asyncio tasks that nobody supervises (``taskward audit``).

This module owns the audit: it parses Python files with :mod:`ast` and reports every call that
starts a fire-and-forget asyncio task: ``asyncio.create_task``, ``asyncio.ensure_future``,
``<anything>.create_task`` (such as ``loop.create_task``) and the same functions reached through
import aliases. Calls on an ``asyncio.TaskGroup`` or a taskward ``TaskSupervisor`` are supervised
and never reported.

Conventions:

* ``line`` and ``col`` are 1-based and ``col`` counts characters, not bytes, as editors and
  linters do.
* A task is *discarded* when its call is a bare expression statement or is bound only to ``_``
  (the throwaway name, so the reference dies at the next ``_`` assignment). Any other use keeps
  a reference, so the task is *kept*.
* ``--fix`` rewrites each reported call whose first argument is positional into
  ``safe_create_task(coro, name=...)``. It rewrites every ``<anything>.create_task`` call, even on
  objects that are not event loops, because the audit cannot know the receiver's type: review
  the diff. Arguments other than the coroutine and ``name=`` (``context=``, ``loop=``) are dropped,
  and ``safe_create_task`` accepts only coroutines, so ``ensure_future(future)`` needs a hand fix.

Only the standard library is imported, so the audit runs without taskward's runtime dependencies.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import fnmatch
import io
import itertools
import json
import os
import sys
import tokenize
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = [
    "DEFAULT_SKIP_DIRS",
    "AuditReport",
    "Finding",
    "ScanFailure",
    "fix_source",
    "main",
    "scan_paths",
    "scan_source",
]

DEFAULT_SKIP_DIRS: frozenset[str] = frozenset(
    {
        ".venv",
        "venv",
        ".git",
        "__pycache__",
        "node_modules",
        "build",
        "dist",
        ".tox",
        "site-packages",
    }
)
"""Directory names never entered while walking a directory (named paths are always scanned)."""

_SPAWNERS = frozenset(
    {
        "asyncio.create_task",
        "asyncio.ensure_future",
        "asyncio.tasks.create_task",
        "asyncio.tasks.ensure_future",
    }
)
# Types whose instances supervise the tasks they start, and factories that return one.
_SUPERVISORS = frozenset(
    {"asyncio.TaskGroup", "asyncio.taskgroups.TaskGroup"}
    | {
        f"{module}.{name}"
        for module in ("taskward", "taskward.aio")
        for name in ("TaskSupervisor", "get_default_supervisor")
    }
)
_STAR_EXPORTS = {
    "asyncio": ("create_task", "ensure_future", "TaskGroup"),
    "asyncio.tasks": ("create_task", "ensure_future"),
    "asyncio.taskgroups": ("TaskGroup",),
}
_SAFE_MODULE = "taskward.aio"
_SAFE_NAME = "safe_create_task"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One call that starts an asyncio task nobody supervises.

    ``line`` and ``col`` are 1-based (``col`` in characters); ``call`` is the called expression
    (``asyncio.create_task``); ``function`` is the enclosing qualified name (``Class.method``,
    ``outer.inner``) or ``<module>``; ``kept`` is false when the task reference is discarded.
    """

    path: str
    line: int
    col: int
    call: str
    function: str
    kept: bool

    def to_dict(self) -> dict[str, str | int | bool]:
        """Return the finding as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanFailure:
    """A path that could not be scanned (missing, unreadable or not valid Python), and why."""

    path: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """The result of :func:`scan_paths`: findings and failures, each sorted by path."""

    findings: tuple[Finding, ...]
    errors: tuple[ScanFailure, ...]
    files_scanned: int


@dataclass(frozen=True, slots=True)
class _Site:
    """A finding plus the call node it came from, which ``--fix`` needs to rewrite it."""

    finding: Finding
    call: ast.Call


class _Positions:
    """Converts ast positions (line, UTF-8 byte column) into character offsets of the source."""

    def __init__(self, source: str) -> None:
        # Split only on \n, \r\n and \r, exactly the line breaks the tokenizer counts.
        self._lines = io.StringIO(source, newline="").readlines()
        self._starts = list(itertools.accumulate(map(len, self._lines), initial=0))

    def column(self, line: int, byte_col: int) -> int:
        """Return the 0-based character column of a byte column on a 1-based line."""
        text = self._lines[line - 1] if line <= len(self._lines) else ""
        return len(text.encode()[:byte_col].decode(errors="replace"))

    def span(self, node: ast.expr) -> tuple[int, int]:
        """Return the start and end character offsets of an expression node."""
        end_line = node.lineno if node.end_lineno is None else node.end_lineno
        end_col = node.col_offset if node.end_col_offset is None else node.end_col_offset
        start = self._starts[node.lineno - 1] + self.column(node.lineno, node.col_offset)
        return start, self._starts[end_line - 1] + self.column(end_line, end_col)


def _qualified(expr: ast.expr, imports: dict[str, str]) -> str | None:
    """Resolve ``aio.create_task`` to ``asyncio.create_task`` through the module's imports."""
    if isinstance(expr, ast.Name):
        return imports.get(expr.id, expr.id)
    if isinstance(expr, ast.Attribute):
        base = _qualified(expr.value, imports)
        return None if base is None else f"{base}.{expr.attr}"
    return None


def _import_map(tree: ast.Module) -> dict[str, str]:
    """Map every name an import binds, anywhere in the module, to the dotted name it imports."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                head = alias.name.partition(".")[0]
                names[alias.asname or head] = alias.name if alias.asname else head
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name == "*":
                    names.update(
                        {n: f"{node.module}.{n}" for n in _STAR_EXPORTS.get(node.module, ())}
                    )
                else:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


class _TaskCallVisitor(ast.NodeVisitor):
    """Collects task-starting calls, tracking enclosing scopes and names bound to supervisors."""

    def __init__(self, path: str, imports: dict[str, str], positions: _Positions) -> None:
        self.sites: list[_Site] = []
        self._path = path
        self._imports = imports
        self._positions = positions
        self._scopes: list[str] = []
        # One set per scope; the bottom one also holds attribute targets such as ``self._tg``.
        self._groups: list[set[str]] = [set()]
        self._discarded: set[int] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        """Visit a function: decorators and defaults outside it, the body inside."""
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        """Visit an async function like a plain one."""
        self._visit_function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        """Visit a class: decorators and bases outside it, the body inside."""
        self._enter(node.name, [*node.decorator_list, *node.bases, *node.keywords], node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        """Visit a lambda as a scope named ``<lambda>``."""
        self._enter("<lambda>", [node.args], [node.body])

    def visit_Expr(self, node: ast.Expr) -> None:
        """Mark a call used as a bare statement: its result is discarded."""
        if isinstance(node.value, ast.Call):
            self._discarded.add(id(node.value))
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        """Track ``tg = TaskGroup()`` and treat ``_ = create_task(...)`` as discarded."""
        if isinstance(node.value, ast.Call):
            if all(isinstance(t, ast.Name) and t.id == "_" for t in node.targets):
                self._discarded.add(id(node.value))
            elif self._is_group_ctor(node.value):
                for target in node.targets:
                    self._bind_group(target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        """Track ``tg: asyncio.TaskGroup = ...`` and ``self._tg: TaskGroup | None = None``."""
        if self._is_group_type(node.annotation) or (
            isinstance(node.value, ast.Call) and self._is_group_ctor(node.value)
        ):
            self._bind_group(node.target)
        self.generic_visit(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        """Track ``async with asyncio.TaskGroup() as tg``."""
        for item in node.items:
            expr, target = item.context_expr, item.optional_vars
            if target is not None and isinstance(expr, ast.Call) and self._is_group_ctor(expr):
                self._bind_group(target)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        """Record the call if it starts an unsupervised task, then visit its arguments."""
        if self._starts_task(node.func):
            self.sites.append(self._site(node))
        self.generic_visit(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer = [*node.decorator_list, node.args, node.returns]
        params = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        groups = {
            arg.arg for arg in params if arg.annotation and self._is_group_type(arg.annotation)
        }
        self._enter(node.name, outer, node.body, groups)

    def _enter(
        self,
        name: str,
        outer: Sequence[ast.AST | None],
        body: Sequence[ast.AST],
        groups: set[str] | None = None,
    ) -> None:
        for child in outer:
            if child is not None:
                self.visit(child)
        self._scopes.append(name)
        self._groups.append(groups or set())
        for child in body:
            self.visit(child)
        self._groups.pop()
        self._scopes.pop()

    def _bind_group(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self._groups[-1].add(target.id)
        elif isinstance(target, ast.Attribute):
            self._groups[0].add(ast.unparse(target))

    def _is_group_type(self, expr: ast.expr) -> bool:
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):  # TaskGroup | None
            return self._is_group_type(expr.left) or self._is_group_type(expr.right)
        return _qualified(expr, self._imports) in _SUPERVISORS

    def _is_group_ctor(self, call: ast.Call) -> bool:
        return self._is_group_type(call.func)

    def _is_group(self, expr: ast.expr) -> bool:
        if isinstance(expr, ast.Call):
            return self._is_group_ctor(expr)
        text = ast.unparse(expr)
        return any(text in scope for scope in self._groups)

    def _starts_task(self, func: ast.expr) -> bool:
        if _qualified(func, self._imports) in _SPAWNERS:
            return True
        return (
            isinstance(func, ast.Attribute)
            and func.attr == "create_task"
            and not self._is_group(func.value)
        )

    def _site(self, node: ast.Call) -> _Site:
        finding = Finding(
            path=self._path,
            line=node.lineno,
            col=self._positions.column(node.lineno, node.col_offset) + 1,
            call=ast.unparse(node.func),
            function=".".join(self._scopes) or "<module>",
            kept=id(node) not in self._discarded,
        )
        return _Site(finding, node)


def _parse(source: str, path: str) -> ast.Module:
    # Scanned code may hold invalid escapes and the like; its warnings are not ours to raise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, filename=path)


def _find_sites(source: str, path: str) -> list[_Site]:
    tree = _parse(source, path)
    visitor = _TaskCallVisitor(path, _import_map(tree), _Positions(source))
    visitor.visit(tree)
    return visitor.sites


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    """Return the unsupervised task calls in ``source``, in source order.

    Raises :class:`SyntaxError` when ``source`` is not valid Python.
    """
    findings = [site.finding for site in _find_sites(source, path)]
    return sorted(findings, key=lambda f: (f.line, f.col))


def _read_source(path: Path) -> tuple[str, str]:
    """Return a file's text and encoding, honouring coding cookies and a UTF-8 BOM."""
    data = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding), encoding


def _describe(exc: Exception) -> str:
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return f"syntax error: {exc.msg}{where}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, RecursionError):
        return "code is nested too deeply to analyse"
    return str(exc)


def _scan_file(path: Path) -> list[Finding] | ScanFailure:
    try:
        return scan_source(_read_source(path)[0], os.fspath(path))
    except (SyntaxError, OSError, ValueError, RecursionError) as exc:
        return ScanFailure(path=os.fspath(path), message=_describe(exc))


def _excluded(path: Path, globs: Sequence[str], root: Path | None = None) -> bool:
    """Whether a glob matches the path's name, the path, or the path relative to ``root``."""
    names = {path.name, path.as_posix()}
    if root is not None:
        names.add(path.relative_to(root).as_posix())
    return any(fnmatch.fnmatchcase(name, glob) for name in names for glob in globs)


def _walk(root: Path, exclude: Sequence[str], errors: list[ScanFailure]) -> Iterator[Path]:
    def on_error(exc: OSError) -> None:
        errors.append(ScanFailure(path=str(exc.filename or root), message=_describe(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        base = Path(dirpath)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in DEFAULT_SKIP_DIRS and not _excluded(base / d, exclude, root)
        ]
        for name in filenames:
            if name.endswith(".py") and not _excluded(base / name, exclude, root):
                yield base / name


def _discover(
    paths: Sequence[str | Path], exclude: Sequence[str]
) -> tuple[list[Path], list[ScanFailure]]:
    files: dict[str, Path] = {}
    errors: list[ScanFailure] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.update((os.fspath(p), p) for p in _walk(path, exclude, errors))
        elif path.is_file():
            if not _excluded(path, exclude):
                files[os.fspath(path)] = path
        else:
            message = "not a file or directory" if path.exists() else "no such file or directory"
            errors.append(ScanFailure(path=os.fspath(path), message=message))
    return list(files.values()), errors


def scan_paths(paths: Sequence[str | Path], *, exclude: Sequence[str] = ()) -> AuditReport:
    """Scan files and directories (recursively, ``*.py``) and report every finding and failure.

    Directories named in :data:`DEFAULT_SKIP_DIRS` are not entered. An ``exclude`` glob skips a
    discovered file or directory, or a named file, when it matches its name, its path, or its
    path relative to the directory being walked. Nothing is raised for bad input: missing,
    unreadable and unparseable paths become :class:`ScanFailure` entries.
    """
    files, errors = _discover(paths, exclude)
    findings: list[Finding] = []
    for path in files:
        result = _scan_file(path)
        if isinstance(result, ScanFailure):
            errors.append(result)
        else:
            findings.extend(result)
    return AuditReport(
        findings=tuple(sorted(findings, key=lambda f: (f.path, f.line, f.col))),
        errors=tuple(sorted(errors, key=lambda e: e.path)),
        files_scanned=len(files),
    )


def _replacement(site: _Site, source: str, positions: _Positions) -> str:
    call = site.call
    start, end = positions.span(call.args[0])
    name = next((kw.value for kw in call.keywords if kw.arg == "name"), None)
    if name is None:
        label = json.dumps(site.finding.function, ensure_ascii=False)
    else:
        label_start, label_end = positions.span(name)
        label = source[label_start:label_end]
    return f"{_SAFE_NAME}({source[start:end]}, name={label})"


def _rewrite_outermost(source: str) -> tuple[str, int]:
    """Rewrite the rewritable calls that are not nested inside another one; return the count."""
    positions = _Positions(source)
    spans = sorted(
        (
            (*positions.span(site.call), site)
            for site in _find_sites(source, "<string>")
            if site.call.args and not isinstance(site.call.args[0], ast.Starred)
        ),
        key=lambda item: (item[0], -item[1]),  # outer calls before calls nested in them
    )
    edits: list[tuple[int, int, str]] = []
    for start, end, site in spans:
        if not edits or start >= edits[-1][1]:
            edits.append((start, end, _replacement(site, source, positions)))
    for start, end, text in reversed(edits):
        source = source[:start] + text + source[end:]
    return source, len(edits)


def _first_line(stmt: ast.stmt) -> int:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return min([stmt.lineno, *(d.lineno for d in stmt.decorator_list)])
    return stmt.lineno


def _import_index(tree: ast.Module, lines: list[str]) -> int:
    """Return the 0-based line index before which the ``safe_create_task`` import goes."""
    anchor: ast.stmt | None = None
    for position, stmt in enumerate(tree.body):
        docstring = (
            position == 0
            and isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        )
        if docstring or (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
            anchor = stmt
        else:
            break
    if anchor is None:
        return _first_line(tree.body[0]) - 1 if tree.body else 0
    index = anchor.end_lineno or anchor.lineno
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def _has_safe_import(tree: ast.Module) -> bool:
    return any(
        isinstance(stmt, ast.ImportFrom)
        and stmt.module == _SAFE_MODULE
        and not stmt.level
        and any(a.name == _SAFE_NAME and a.asname in (None, _SAFE_NAME) for a in stmt.names)
        for stmt in tree.body
    )


def _add_import(source: str) -> str:
    tree = _parse(source, "<string>")
    if _has_safe_import(tree):
        return source
    newline = "\r\n" if "\r\n" in source else "\n"
    lines = io.StringIO(source, newline="").readlines()
    index = _import_index(tree, lines)
    if index and not lines[index - 1].endswith(("\n", "\r")):
        lines[index - 1] += newline
    lines.insert(index, f"from {_SAFE_MODULE} import {_SAFE_NAME}{newline}")
    return "".join(lines)


def fix_source(source: str) -> tuple[str, int]:
    """Rewrite each reported call into ``safe_create_task(coro, name=...)``; return it and a count.

    Edits are made by source position, so formatting elsewhere is preserved. ``name=`` is kept
    when the call has one, and is otherwise the enclosing function's qualified name. Calls
    without a positional first argument are left alone. When anything was rewritten,
    ``from taskward.aio import safe_create_task`` is added after the module docstring and
    ``from __future__`` imports unless the module already imports it. Raises
    :class:`SyntaxError` when ``source`` is not valid Python.
    """
    total = 0
    while True:
        # Nested calls (a task started inside another's coroutine argument) take one pass per
        # level: each pass rewrites only the outermost calls, whose spans cannot overlap.
        source, count = _rewrite_outermost(source)
        if not count:
            break
        total += count
    return (_add_import(source) if total else source), total


def _fix_files(report: AuditReport, out: TextIO) -> list[ScanFailure]:
    errors: list[ScanFailure] = []
    for name in sorted({finding.path for finding in report.findings}):
        path = Path(name)
        try:
            source, encoding = _read_source(path)
            fixed, count = fix_source(source)
            if count:
                path.write_bytes(fixed.encode(encoding))
                print(f"{name}: rewrote {_plural(count, 'call')} to {_SAFE_NAME}", file=out)
        except (SyntaxError, OSError, ValueError, RecursionError) as exc:
            errors.append(ScanFailure(path=name, message=f"cannot fix: {_describe(exc)}"))
    return errors


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(report: AuditReport) -> str:
    scanned = f"scanned {_plural(report.files_scanned, 'file')}"
    failed = (
        f"; {_plural(len(report.errors), 'path')} could not be scanned" if report.errors else ""
    )
    if not report.findings:
        return f"No unsupervised tasks found; {scanned}{failed}."
    discarded = sum(not finding.kept for finding in report.findings)
    files = len({finding.path for finding in report.findings})
    found = f"{_plural(len(report.findings), 'unsupervised task')} ({discarded} discarded)"
    return f"Found {found} in {_plural(files, 'file')}; {scanned}{failed}."


def _print_report(report: AuditReport, output_format: str) -> None:
    for error in report.errors:
        print(f"{error.path}: error: {error.message}", file=sys.stderr)
    if output_format == "json":
        print(json.dumps([finding.to_dict() for finding in report.findings], indent=2))
        return
    for f in report.findings:
        state = "kept" if f.kept else "discarded"
        print(f"{f.path}:{f.line}:{f.col}: {f.call} in {f.function} (task {state})")
    print(_summary(report))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskward audit",
        description="Report asyncio tasks started without supervision.",
        epilog="Exit status: 0 when clean, 1 when tasks are found, 2 on bad usage or input.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to scan")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--fix", action="store_true", help=f"rewrite calls in place to use {_SAFE_NAME}"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files and directories matching GLOB (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``taskward audit`` with ``argv`` (the arguments after ``audit``); return the status.

    The status is 0 when clean, 1 when tasks are found and 2 on bad usage or when any path is
    missing or unparseable (even if tasks were found too). With ``--fix`` files are rewritten
    in place first and the status reflects what remains.
    """
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; we return instead.
        return 0 if exc.code in (0, None) else 2
    report = scan_paths(args.paths, exclude=args.exclude)
    if args.fix:
        out = sys.stdout if args.format == "text" else sys.stderr
        fix_errors = _fix_files(report, out)
        report = scan_paths(args.paths, exclude=args.exclude)
        report = dataclasses.replace(report, errors=(*report.errors, *fix_errors))
    _print_report(report, args.format)
    if report.errors:
        return 2
    return 1 if report.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
