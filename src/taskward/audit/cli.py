"""``taskward audit``: the command line, with its own argparse parser.

taskward's Typer CLI forwards the arguments after ``audit`` to :func:`main`, so the audit
runs (and is tested) without Typer, and ``python -m taskward.audit`` works the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from taskward.audit.cache import default_cache_dir
from taskward.audit.config import project_root
from taskward.audit.fix import fix_source, unified_diff
from taskward.audit.model import AuditReport, Kind, ScanFailure
from taskward.audit.output import FORMATS, View, render
from taskward.audit.plan import SAFE_NAME
from taskward.audit.scan import scan_paths
from taskward.audit.source import describe, read_source

__all__ = ["main"]

_EPILOG = """\
kinds: dangling (the task is not kept anywhere: it can be garbage-collected and its
exception is lost), unsupervised (kept, but nothing awaits it or reads its exception),
fine (awaited, gathered, in a TaskGroup, or given to taskward.aio).

exit status: 0 when clean, 1 when a dangling task is found (or an unsupervised one with
--strict), 2 on bad usage, bad settings or input that cannot be parsed.

Silence a line with "# taskward: ignore" (or "# taskward: ignore[unsupervised]"); skip paths
with [tool.taskward.audit] exclude = ["glob", ...] in pyproject.toml.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskward audit",
        description="Report asyncio tasks that are dangling or unsupervised.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to scan")
    parser.add_argument("--format", choices=tuple(FORMATS), default="text", help="output format")
    parser.add_argument("--strict", action="store_true", help="exit 1 on unsupervised tasks too")
    parser.add_argument("--show-fine", action="store_true", help="also list fine tasks")
    parser.add_argument(
        "--fix", action="store_true", help=f"rewrite dangling calls in place to {SAFE_NAME}"
    )
    parser.add_argument(
        "--diff", action="store_true", help="print what --fix would change; change nothing"
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files and directories matching GLOB (repeatable)",
    )
    parser.add_argument(
        "--isolated", action="store_true", help="ignore [tool.taskward.audit] in pyproject.toml"
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache folder (default: .taskward_cache/audit beside pyproject.toml)",
    )
    parser.add_argument(
        "-j", "--jobs", type=int, metavar="N", help="worker processes (default: one per CPU)"
    )
    return parser


def _cache_dir(args: argparse.Namespace) -> Path | None:
    if args.no_cache:
        return None
    if args.cache_dir is not None:
        return Path(args.cache_dir)
    existing = next((Path(p) for p in args.paths if Path(p).exists()), None)
    return default_cache_dir(project_root(existing) if existing is not None else None)


def _scan(args: argparse.Namespace) -> AuditReport:
    return scan_paths(
        args.paths,
        exclude=args.exclude,
        use_config=not args.isolated,
        cache_dir=_cache_dir(args),
        jobs=args.jobs,
    )


def _rewrite_files(
    report: AuditReport, *, write: bool, out: TextIO
) -> tuple[list[ScanFailure], int]:
    """Fix (or, without ``write``, diff) every file with a fixable finding."""
    errors: list[ScanFailure] = []
    total = 0
    for name in sorted({f.path for f in report.findings if f.fixable}):
        path = Path(name)
        try:
            source, encoding = read_source(path)
            fixed, count = fix_source(source, name)
            if count and write:
                path.write_bytes(fixed.encode(encoding))
                print(f"{name}: rewrote {count} call{'s' * (count != 1)} to {SAFE_NAME}", file=out)
            elif count:
                out.write(unified_diff(name, source, fixed))
        except (SyntaxError, OSError, ValueError, RecursionError) as exc:
            errors.append(ScanFailure(path=name, message=f"cannot fix: {describe(exc)}"))
        else:
            total += count
    return errors, total


def _status(view: View) -> int:
    if view.report.errors:
        return 2
    return 1 if any(f.kind in view.failing for f in view.report.findings) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``taskward audit`` with ``argv`` (the arguments after ``audit``); return the status.

    The status is 0 when clean, 1 when a dangling task is found (or, with ``--strict``, an
    unsupervised one), and 2 on bad usage, bad settings, or a path that is missing or cannot
    be parsed (even if tasks were found too). ``--fix`` rewrites files first and the status
    reflects what remains; ``--diff`` prints the rewrite as a diff and changes nothing.
    """
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; we return instead.
        return 0 if exc.code in (0, None) else 2
    report = _scan(args)
    failing = frozenset({Kind.DANGLING, Kind.UNSUPERVISED} if args.strict else {Kind.DANGLING})
    shown = frozenset(Kind) if args.show_fine else frozenset({Kind.DANGLING, Kind.UNSUPERVISED})
    if args.diff:
        errors, total = _rewrite_files(report, write=False, out=sys.stdout)
        print(
            f"{total} call{'s' * (total != 1)} would be rewritten to {SAFE_NAME}.", file=sys.stderr
        )
        for error in errors:
            print(f"{error.path}: error: {error.message}", file=sys.stderr)
        return _status(View(report, shown, failing)) if not errors else 2
    if args.fix:
        out = sys.stdout if args.format == "text" else sys.stderr
        errors, _ = _rewrite_files(report, write=True, out=out)
        report = _scan(args)
        report = dataclasses.replace(report, errors=(*report.errors, *errors))
    view = View(report, shown, failing)
    stdout, stderr = render(view, args.format)
    sys.stderr.write(stderr)
    sys.stdout.write(stdout)
    return _status(view)
