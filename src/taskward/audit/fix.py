"""Rewriting dangling task starts to ``safe_create_task`` (``--fix``) and showing the diff.

Only the callee is replaced (and ``coro_or_future=`` renamed ``coro=``), so every argument,
comment and line break of the call stays as written. :mod:`taskward.audit.plan` decides which
calls qualify.
"""

from __future__ import annotations

import difflib

from taskward.audit.detect import Analysis
from taskward.audit.imports import add_import
from taskward.audit.plan import SAFE_NAME, Rewrite
from taskward.audit.source import Positions

__all__ = ["fix_source", "unified_diff"]


def fix_source(source: str, path: str | None = None) -> tuple[str, int]:
    """Rewrite the dangling calls ``--fix`` may change; return the new source and their count.

    A call is rewritten only when the change keeps the program's behaviour (see
    :mod:`taskward.audit.plan`); ``from taskward.aio import safe_create_task`` is added,
    sorted with the other imports, when anything was. ``path`` tells which packages are the
    project's own (for import sections). Raises :class:`SyntaxError` on invalid Python.
    """
    analysis = Analysis(source, path or "<string>")
    rewrites = [site.rewrite for site in analysis.sites if isinstance(site.rewrite, Rewrite)]
    if not rewrites:
        return source, 0
    positions = Positions(source)
    edits: list[tuple[int, int, str]] = []
    for rewrite in rewrites:
        edits.append((*positions.span(rewrite.call.func), SAFE_NAME))
        if rewrite.keyword is not None and rewrite.keyword.arg is not None:
            start = positions.offset(rewrite.keyword.lineno, rewrite.keyword.col_offset)
            edits.append((start, start + len(rewrite.keyword.arg), "coro"))
    # A rewritten call may sit inside another's arguments; editing from the end keeps every
    # earlier offset valid, and callee spans never overlap.
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return add_import(source, path), len(rewrites)


def unified_diff(path: str, before: str, after: str) -> str:
    """Return a unified diff of one file's change (``--diff``)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=path,
        tofile=path,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
