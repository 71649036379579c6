"""Finding the task starts of one module and classifying each into a :class:`Finding`.

A *site* is a call that starts a task (``asyncio.create_task(...)``, ``loop.create_task(...)``,
``spawn(...)`` after ``spawn = asyncio.ensure_future``, ``asyncio.Task(...)``), or a task
starter handed over as a callable (``loop.call_soon_threadsafe(loop.create_task, coro)``,
``map(asyncio.create_task, coros)``), whose results someone else drops or keeps.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from taskward.audit.classify import Classifier
from taskward.audit.fate import Fate, verdict
from taskward.audit.index import ModuleIndex, Scope
from taskward.audit.model import Finding, Kind
from taskward.audit.plan import Rewrite, plan_rewrite
from taskward.audit.receivers import Entry, Resolver
from taskward.audit.source import Positions, parse, suppressions

__all__ = ["Analysis", "FileResult", "Site", "analyze_source", "scan_source"]

_MAP_OR_PARTIAL = frozenset({"map", "functools.partial", "partial"})


@dataclass(frozen=True, slots=True)
class Site:
    """One task start: where, through which entry point, its fate and its rewrite plan."""

    node: ast.expr
    entry: Entry
    scope: Scope
    fate: Fate
    rewrite: Rewrite | str


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file yields: its findings (suppressed ones removed) and how many were."""

    findings: tuple[Finding, ...]
    suppressed: int = 0


# Every way to start a task names create_task or ensure_future, or calls, imports or assigns
# asyncio's Task (``Task(``, ``Task as T``, ``T = asyncio.Task``); an annotation does not.
_MAY_START = re.compile(r"create_task|ensure_future|\bTask\b\s*(?:\(|as\b|$)", re.MULTILINE)


def may_start_tasks(source: str) -> bool:
    """Whether the text could start a task at all; most files cannot, and skip the analysis."""
    return _MAY_START.search(source) is not None


class Analysis:
    """One module parsed, indexed, resolved and classified."""

    def __init__(self, source: str, path: str) -> None:
        self.source = source
        self.path = path
        self.tree = parse(source, path)
        self.index = ModuleIndex(self.tree)
        self.resolver = Resolver(self.index)
        self.classifier = Classifier(self.index, self.resolver)
        self.sites = [self._site(node, entry, scope) for node, entry, scope in self._starts()]

    def _starts(self) -> list[tuple[ast.expr, Entry, Scope]]:
        found: list[tuple[ast.expr, Entry, Scope]] = []
        for call in self.index.calls:
            scope = self.index.scope_of[call]
            entry = self.resolver.entry(call.func, scope)
            if entry is not None and not self._rewraps(call, entry, scope):
                found.append((call, entry, scope))
            if self._hands_over(call):
                found.extend(self._handed(call, scope))
        return found

    def _rewraps(self, call: ast.Call, entry: Entry, scope: Scope) -> bool:
        """Whether ``ensure_future`` gets a task already (it returns it: no new task)."""
        if entry is not Entry.ENSURE_FUTURE or not call.args:
            return False
        arg = call.args[0]
        if isinstance(arg, ast.Call):
            return self.resolver.entry(arg.func, scope) is not None
        sources = self.resolver.sources(arg, scope) if isinstance(arg, ast.Name) else []
        return bool(sources) and all(
            kind == "value"
            and isinstance(node, ast.Call)
            and self.resolver.entry(node.func, home) is not None
            for kind, node, home in sources
        )

    def _hands_over(self, call: ast.Call) -> bool:
        return (
            self.resolver.is_registrar(call.func)
            or self.resolver.qualified(call.func) in _MAP_OR_PARTIAL
        )

    def _handed(self, call: ast.Call, scope: Scope) -> list[tuple[ast.expr, Entry, Scope]]:
        found: list[tuple[ast.expr, Entry, Scope]] = []
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            if isinstance(arg, ast.Name | ast.Attribute):
                entry = self.resolver.entry(arg, scope)
                if entry is not None and entry is not Entry.GROUP:
                    found.append((arg, entry, scope))
        return found

    def _site(self, node: ast.expr, entry: Entry, scope: Scope) -> Site:
        fate = self.classifier.site(node, entry, scope)
        rewrite: Rewrite | str = "not dangling"
        if verdict(fate)[0] is Kind.DANGLING:
            if isinstance(node, ast.Call):
                rewrite = plan_rewrite(node, entry, scope, self.index, self.resolver)
            else:
                rewrite = "a callable handed over, not a call"
        return Site(node, entry, scope, fate, rewrite)

    def findings(self) -> FileResult:
        """Return the findings of this module, minus those a comment suppresses."""
        positions = Positions(self.source)
        silenced = suppressions(self.source)
        kept: list[Finding] = []
        for site in self.sites:
            finding = _finding(site, self.path, positions)
            if not _suppressed(finding, silenced):
                kept.append(finding)
        kept.sort(key=lambda f: (f.line, f.col))
        return FileResult(tuple(kept), len(self.sites) - len(kept))


def _finding(site: Site, path: str, positions: Positions) -> Finding:
    node = site.node
    kind, reason = verdict(site.fate)
    end_line = node.lineno if node.end_lineno is None else node.end_lineno
    end_col = node.col_offset if node.end_col_offset is None else node.end_col_offset
    func = node.func if isinstance(node, ast.Call) else node
    return Finding(
        path=path,
        line=node.lineno,
        col=positions.column(node.lineno, node.col_offset) + 1,
        end_line=end_line,
        end_col=positions.column(end_line, end_col) + 1,
        call=ast.unparse(func),
        function=site.scope.display,
        kind=kind,
        reason=reason,
        fixable=isinstance(site.rewrite, Rewrite),
    )


def _suppressed(finding: Finding, silenced: dict[int, frozenset[str] | None]) -> bool:
    for line in range(finding.line, finding.end_line + 1):
        if line in silenced:
            kinds = silenced[line]
            if kinds is None or finding.kind.value in kinds:
                return True
    return False


def analyze_source(source: str, path: str = "<string>") -> FileResult:
    """Return the findings of one module's source (raises SyntaxError if it is not Python)."""
    if not may_start_tasks(source):
        parse(source, path)  # still report a file that is not valid Python
        return FileResult(())
    return Analysis(source, path).findings()


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    """Return every task start in ``source``, of every kind, in source order.

    Findings silenced by a ``# taskward: ignore`` comment are left out. Raises
    :class:`SyntaxError` when ``source`` is not valid Python.
    """
    return list(analyze_source(source, path).findings)
