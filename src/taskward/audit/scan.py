"""Scanning files and folders: discovery, exclusion, the cache and parallel analysis.

Files are read and hashed in this process; those the cache does not know are analysed in a
pool of processes when there are enough of them to repay starting it (parsing is CPU-bound,
so threads would not help), and one by one otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from taskward.audit.cache import Cache
from taskward.audit.config import ConfigError, ProjectConfig, excluded, find_config
from taskward.audit.detect import FileResult, analyze_source
from taskward.audit.model import AuditReport, ScanFailure
from taskward.audit.source import decode, describe

__all__ = ["DEFAULT_SKIP_DIRS", "scan_paths"]

DEFAULT_SKIP_DIRS: frozenset[str] = frozenset(
    {
        ".venv",
        "venv",
        ".git",
        ".hg",
        "__pycache__",
        "node_modules",
        "build",
        "dist",
        ".tox",
        ".nox",
        "site-packages",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".taskward_cache",
    }
)
"""Directory names never entered while walking a directory (named paths are always scanned)."""

# Below this many files to analyse, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 48


@dataclass
class _Discovery:
    files: dict[str, Path] = field(default_factory=dict)
    errors: list[ScanFailure] = field(default_factory=list)
    configs: dict[Path, ProjectConfig | None] = field(default_factory=dict)


def scan_paths(
    paths: Sequence[str | Path],
    *,
    exclude: Sequence[str] = (),
    use_config: bool = True,
    cache_dir: Path | None = None,
    jobs: int | None = None,
) -> AuditReport:
    """Scan files and folders (recursively, ``*.py``) and report every finding and failure.

    Folders named in :data:`DEFAULT_SKIP_DIRS` are not entered. An ``exclude`` glob skips a
    discovered file or folder, or a named file, when it matches its name, its path, or its
    path relative to the folder being walked; with ``use_config`` the ``exclude`` globs of
    ``[tool.taskward.audit]`` apply too. ``cache_dir`` enables the cache; ``jobs`` caps the
    worker processes (1: none; default: one per CPU). Nothing is raised for bad input:
    missing, unreadable and unparseable paths (and bad settings) become failures.
    """
    found = _discover(paths, exclude, use_config)
    cache = Cache(cache_dir) if cache_dir is not None else None
    results, errors = _analyse(list(found.files.values()), cache, jobs)
    if cache is not None:
        cache.save()
    findings = [f for result in results for f in result.findings]
    return AuditReport(
        findings=tuple(sorted(findings, key=lambda f: (f.path, f.line, f.col))),
        errors=tuple(sorted([*found.errors, *errors], key=lambda e: e.path)),
        files_scanned=len(found.files),
        suppressed=sum(result.suppressed for result in results),
    )


def _discover(paths: Sequence[str | Path], exclude: Sequence[str], use_config: bool) -> _Discovery:
    found = _Discovery()
    for raw in paths:
        path = Path(raw)
        config = _config(path, found) if use_config else None
        if path.is_dir():
            found.files.update((os.fspath(p), p) for p in _walk(path, exclude, config, found))
        elif path.is_file():
            if not _skipped(path, exclude, None, config):
                found.files[os.fspath(path)] = path
        else:
            message = "not a file or directory" if path.exists() else "no such file or directory"
            found.errors.append(ScanFailure(path=os.fspath(path), message=message))
    return found


def _config(path: Path, found: _Discovery) -> ProjectConfig | None:
    try:
        return find_config(path, found.configs)
    except ConfigError as exc:
        failure = ScanFailure(path=os.fspath(exc.path), message=exc.message)
        if failure not in found.errors:
            found.errors.append(failure)
        return None
    except OSError:
        return None  # an unreadable parent folder: scan without settings


def _skipped(
    path: Path, exclude: Sequence[str], root: Path | None, config: ProjectConfig | None
) -> bool:
    if excluded(path, exclude, root):
        return True
    return config is not None and excluded(path, config.exclude, config.root)


def _walk(
    root: Path, exclude: Sequence[str], config: ProjectConfig | None, found: _Discovery
) -> Iterator[Path]:
    def on_error(exc: OSError) -> None:
        found.errors.append(ScanFailure(path=str(exc.filename or root), message=describe(exc)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        base = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in DEFAULT_SKIP_DIRS and not _skipped(base / d, exclude, root, config)
        )
        for name in sorted(filenames):
            if name.endswith(".py") and not _skipped(base / name, exclude, root, config):
                yield base / name


def analyse_file(path: str, data: bytes) -> FileResult | str:
    """Return the findings of one file's bytes, or why it cannot be analysed."""
    try:
        source, _ = decode(data)
        return analyze_source(source, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return describe(exc)


def _analyse(
    files: list[Path], cache: Cache | None, jobs: int | None
) -> tuple[list[FileResult], list[ScanFailure]]:
    results: list[FileResult] = []
    errors: list[ScanFailure] = []
    pending: list[tuple[str, bytes, str]] = []
    for path in files:
        name = os.fspath(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            errors.append(ScanFailure(path=name, message=describe(exc)))
            continue
        key = Cache.key(data) if cache is not None else ""
        hit = cache.get(key, name) if cache is not None else None
        if hit is None:
            pending.append((name, data, key))
        else:
            _collect(name, hit, results, errors)
    for (name, _, key), outcome in zip(pending, _run(pending, jobs), strict=True):
        if cache is not None:
            cache.put(key, outcome)
        _collect(name, outcome, results, errors)
    return results, errors


def _collect(
    name: str, outcome: FileResult | str, results: list[FileResult], errors: list[ScanFailure]
) -> None:
    if isinstance(outcome, str):
        errors.append(ScanFailure(path=name, message=outcome))
    else:
        results.append(outcome)


def _context() -> multiprocessing.context.BaseContext:
    # Forking is the cheapest start (the audit is already imported), but only safe while this
    # process has a single thread; otherwise a fresh server process forks the workers.
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context()


def _run(pending: list[tuple[str, bytes, str]], jobs: int | None) -> list[FileResult | str]:
    workers = min(jobs or os.cpu_count() or 1, max(1, len(pending) // 16))
    if workers > 1 and len(pending) >= PARALLEL_THRESHOLD:
        # Largest first, in small batches: one huge generated module must not be the last
        # thing a worker picks up while the others sit idle.
        order = sorted(range(len(pending)), key=lambda i: -len(pending[i][1]))
        names = [pending[i][0] for i in order]
        blobs = [pending[i][1] for i in order]
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
                chunk = max(1, min(8, len(pending) // (workers * 16)))
                outcomes = list(pool.map(analyse_file, names, blobs, chunksize=chunk))
        except (OSError, BrokenProcessPool):
            pass  # no processes here (a sandbox, a frozen app): analyse in this one
        else:
            results: list[FileResult | str] = [""] * len(pending)
            for index, outcome in zip(order, outcomes, strict=True):
                results[index] = outcome
            return results
    return [analyse_file(name, data) for name, data, _ in pending]
