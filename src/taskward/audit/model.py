"""The audit's values: finding kinds, findings, scan failures and reports.

Every value is frozen; the analysis builds them once and the output formats only read them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

__all__ = ["AUDIT_VERSION", "AuditReport", "Finding", "Kind", "ScanFailure"]

AUDIT_VERSION = "2.0"
"""Version of the analysis: part of every cache key, and the SARIF driver's version."""


class Kind(enum.StrEnum):
    """What happens to a task once it is created: the three kinds of finding.

    ``DANGLING``: nothing keeps the task, so it can be garbage-collected mid-flight and its
    exception is lost. ``UNSUPERVISED``: the task is kept, but nothing awaits it or reads its
    exception. ``FINE``: it is awaited, gathered, started in a ``TaskGroup`` or otherwise
    supervised.
    """

    DANGLING = "dangling"
    UNSUPERVISED = "unsupervised"
    FINE = "fine"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One place that starts an asyncio task, with its kind and the reason for it.

    ``line`` and ``col`` are 1-based and ``col`` counts characters, as editors do;
    ``end_line``/``end_col`` mark the character after the call (SARIF's convention). ``call``
    is the called expression (``loop.create_task``), ``function`` the enclosing qualified name
    (``Class.method``) or ``<module>``. ``fixable`` says whether ``--fix`` rewrites it.
    """

    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    call: str
    function: str
    kind: Kind
    reason: str
    fixable: bool = False

    def to_dict(self) -> dict[str, str | int | bool]:
        """Return the finding as a JSON-ready dict."""
        row: dict[str, str | int | bool] = dataclasses.asdict(self)
        row["kind"] = str(self.kind)
        return row


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanFailure:
    """A path that could not be scanned (missing, unreadable, not valid Python), and why."""

    path: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """The result of :func:`~taskward.audit.scan_paths`: findings and failures, sorted by path.

    ``findings`` holds every kind, ``fine`` included; ``suppressed`` counts the findings
    silenced by a ``# taskward: ignore`` comment.
    """

    findings: tuple[Finding, ...]
    errors: tuple[ScanFailure, ...]
    files_scanned: int
    suppressed: int = 0

    def count(self, kind: Kind) -> int:
        """Return the number of findings of ``kind``."""
        return sum(finding.kind is kind for finding in self.findings)
