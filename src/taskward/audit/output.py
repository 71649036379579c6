"""The output formats of ``taskward audit``: text, JSON, SARIF 2.1.0 and GitHub annotations.

Every format shows the same findings (dangling and unsupervised; fine ones with
``--show-fine``). Failures to scan go to stderr in text and JSON, and into the output itself
in SARIF (as tool notifications) and GitHub (as error annotations), where CI reads them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from taskward.audit.model import AUDIT_VERSION, AuditReport, Finding, Kind

__all__ = ["FORMATS", "View", "render"]

_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_RULES = {
    Kind.DANGLING: (
        "dangling-task",
        "Task not kept anywhere",
        "The task object is not kept anywhere: it can be garbage-collected before it finishes, "
        "and its exception is lost. Keep a reference and await it, or use "
        "taskward.aio.safe_create_task.",
    ),
    Kind.UNSUPERVISED: (
        "unsupervised-task",
        "Task kept but never awaited",
        "The task is kept, but nothing awaits it or adds a done callback that reads its "
        "exception, so a failure goes unnoticed.",
    ),
    Kind.FINE: (
        "supervised-task",
        "Supervised task",
        "The task is awaited, gathered, started in a TaskGroup or otherwise supervised.",
    ),
}


@dataclass(frozen=True, slots=True)
class View:
    """A report and how to show it: which kinds are printed, which fail the run."""

    report: AuditReport
    shown: frozenset[Kind]
    failing: frozenset[Kind]

    @property
    def findings(self) -> list[Finding]:
        """The findings to print."""
        return [f for f in self.report.findings if f.kind in self.shown]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(view: View) -> str:
    """Return the one-line summary printed after the text findings."""
    report = view.report
    counts = ", ".join(f"{report.count(kind)} {kind}" for kind in Kind)
    parts = [f"{counts}; scanned {_plural(report.files_scanned, 'file')}"]
    fixable = sum(f.fixable for f in report.findings)
    if fixable:
        parts.append(f"{fixable} fixable with --fix")
    if report.suppressed:
        parts.append(f"{report.suppressed} suppressed")
    if report.errors:
        parts.append(f"{_plural(len(report.errors), 'path')} could not be scanned")
    return "; ".join(parts) + "."


def _text(view: View) -> tuple[str, str]:
    lines = []
    for f in view.findings:
        mark = " [fixable]" if f.fixable else ""
        lines.append(
            f"{f.path}:{f.line}:{f.col}: {f.kind}: {f.call} in {f.function}: {f.reason}{mark}"
        )
    lines.append(summary(view))
    return "\n".join(lines) + "\n", _errors_text(view)


def _errors_text(view: View) -> str:
    return "".join(f"{e.path}: error: {e.message}\n" for e in view.report.errors)


def _json(view: View) -> tuple[str, str]:
    return json.dumps([f.to_dict() for f in view.findings], indent=2) + "\n", _errors_text(view)


def _github_escape(text: str, *, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def _github(view: View) -> tuple[str, str]:
    lines = []
    for f in view.findings:
        level = (
            "error"
            if f.kind in view.failing
            else "warning"
            if f.kind is not Kind.FINE
            else "notice"
        )
        props = ",".join(
            [
                f"file={_github_escape(f.path, property_value=True)}",
                f"line={f.line}",
                f"col={f.col}",
                f"endLine={f.end_line}",
                f"endColumn={f.end_col}",
                f"title={_github_escape(f'taskward audit: {f.kind} task', property_value=True)}",
            ]
        )
        lines.append(
            f"::{level} {props}::{_github_escape(f'{f.call} in {f.function}: {f.reason}')}"
        )
    for e in view.report.errors:
        path = _github_escape(e.path, property_value=True)
        lines.append(f"::error file={path}::{_github_escape(f'cannot scan: {e.message}')}")
    lines.append(summary(view))
    return "\n".join(lines) + "\n", ""


def _uri(path: str) -> tuple[str, str | None]:
    """Return a SARIF artifact URI: relative to the working folder when under it."""
    absolute = Path(path).resolve()
    try:
        relative = absolute.relative_to(Path(os.getcwd()).resolve())
    except ValueError:
        return absolute.as_uri(), None
    return quote(relative.as_posix()), "%SRCROOT%"


def _location(path: str, region: dict[str, int] | None = None) -> dict[str, Any]:
    uri, base = _uri(path)
    artifact: dict[str, Any] = {"uri": uri}
    if base is not None:
        artifact["uriBaseId"] = base
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if region is not None:
        physical["region"] = region
    return {"physicalLocation": physical}


def _sarif_result(f: Finding, view: View, rule_index: dict[Kind, int]) -> dict[str, Any]:
    level = "error" if f.kind in view.failing else "warning" if f.kind is not Kind.FINE else "note"
    region = {
        "startLine": f.line,
        "startColumn": f.col,
        "endLine": f.end_line,
        "endColumn": f.end_col,
    }
    return {
        "ruleId": _RULES[f.kind][0],
        "ruleIndex": rule_index[f.kind],
        "level": level,
        "message": {"text": f"{f.call} in {f.function}: {f.reason}"},
        "locations": [_location(f.path, region)],
        "properties": {"kind": str(f.kind), "fixable": f.fixable},
    }


def _sarif(view: View) -> tuple[str, str]:
    kinds = [kind for kind in Kind if kind in view.shown]
    rules = [
        {
            "id": _RULES[kind][0],
            "name": _RULES[kind][0].title().replace("-", ""),
            "shortDescription": {"text": _RULES[kind][1]},
            "fullDescription": {"text": _RULES[kind][2]},
            "defaultConfiguration": {"level": "error" if kind in view.failing else "warning"},
        }
        for kind in kinds
    ]
    rule_index = {kind: i for i, kind in enumerate(kinds)}
    notifications = [
        {"level": "error", "message": {"text": e.message}, "locations": [_location(e.path)]}
        for e in view.report.errors
    ]
    run = {
        "tool": {"driver": {"name": "taskward-audit", "version": AUDIT_VERSION, "rules": rules}},
        "columnKind": "unicodeCodePoints",
        "results": [_sarif_result(f, view, rule_index) for f in view.findings],
        "invocations": [
            {
                "executionSuccessful": not view.report.errors,
                "toolExecutionNotifications": notifications,
            }
        ],
    }
    log = {"$schema": _SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2) + "\n", ""


FORMATS: dict[str, Callable[[View], tuple[str, str]]] = {
    "text": _text,
    "json": _json,
    "sarif": _sarif,
    "github": _github,
}


def render(view: View, output_format: str) -> tuple[str, str]:
    """Return what to print on stdout and on stderr for ``view`` in ``output_format``."""
    return FORMATS[output_format](view)
