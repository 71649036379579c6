"""Findings per file content, so an unchanged file is never parsed twice.

An entry is keyed by a hash of the file's bytes and of the audit's own code: editing the audit
(or upgrading taskward) starts a new cache file and removes the old one. Paths are not part of
the key, so a file moved or copied is still a hit. The cache is one JSON file written
atomically (a temporary file, then a rename): two runs at once cannot corrupt it, the later
simply wins. Failing to read or write it only costs time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from taskward.audit.detect import FileResult
from taskward.audit.model import AUDIT_VERSION, Finding, Kind

__all__ = ["Cache", "default_cache_dir"]

# Entries of files no longer seen are kept up to this many, for other trees of the project.
_MAX_ENTRIES = 50_000
_PREFIX = "findings-"


@functools.cache
def _fingerprint() -> str:
    digest = hashlib.blake2b(AUDIT_VERSION.encode(), digest_size=8)
    for file in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def default_cache_dir(project: Path | None) -> Path:
    """Return ``.taskward_cache/audit`` in the project, or the user's cache folder without one."""
    if project is not None:
        return project / ".taskward_cache" / "audit"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "taskward" / "audit"


class Cache:
    """A file's findings by the hash of its bytes (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file = directory / f"{_PREFIX}{_fingerprint()}.json"
        self._entries: dict[str, Any] = self._read()
        self._used: set[str] = set()
        self._dirty = False

    @staticmethod
    def key(data: bytes) -> str:
        """Return the cache key of a file's bytes."""
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    def get(self, key: str, path: str) -> FileResult | str | None:
        """Return the cached result for ``key`` (a message for a file that failed), or None."""
        entry = self._entries.get(key)
        if not isinstance(entry, dict):
            return None
        self._used.add(key)
        if "error" in entry:
            return str(entry["error"])
        try:
            findings = tuple(_finding(path, row) for row in entry["findings"])
            return FileResult(findings, int(entry["suppressed"]))
        except (KeyError, TypeError, ValueError):
            return None  # an entry from a damaged file: analyse again

    def put(self, key: str, result: FileResult | str) -> None:
        """Store the result of one file."""
        if isinstance(result, str):
            entry: dict[str, Any] = {"error": result}
        else:
            rows = [_row(f) for f in result.findings]
            entry = {"findings": rows, "suppressed": result.suppressed}
        self._entries[key] = entry
        self._used.add(key)
        self._dirty = True

    def save(self) -> None:
        """Write the cache back if anything changed; never raises."""
        if not self._dirty:
            return
        with contextlib.suppress(OSError):
            self._write()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self._file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self) -> None:
        entries = self._entries
        if len(entries) > _MAX_ENTRIES:
            unused = [k for k in entries if k not in self._used]
            for key in unused[: len(entries) - _MAX_ENTRIES]:
                del entries[key]
        self._prepare()
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(entries, out, separators=(",", ":"))
            os.replace(temporary, self._file)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        for old in self.directory.glob(f"{_PREFIX}*.json"):
            if old != self._file:
                with contextlib.suppress(OSError):
                    old.unlink()

    def _prepare(self) -> None:
        fresh = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        top = self.directory.parent
        if fresh and top.name == ".taskward_cache":
            # Like .mypy_cache and .ruff_cache: ignored by git without a .gitignore entry.
            (top / ".gitignore").write_text("# Created by taskward audit\n*\n", encoding="utf-8")


def _row(finding: Finding) -> list[Any]:
    return [
        finding.line,
        finding.col,
        finding.end_line,
        finding.end_col,
        finding.call,
        finding.function,
        finding.kind.value,
        finding.reason,
        finding.fixable,
    ]


def _finding(path: str, row: list[Any]) -> Finding:
    line, col, end_line, end_col, call, function, kind, reason, fixable = row
    return Finding(
        path=path,
        line=int(line),
        col=int(col),
        end_line=int(end_line),
        end_col=int(end_col),
        call=str(call),
        function=str(function),
        kind=Kind(kind),
        reason=str(reason),
        fixable=bool(fixable),
    )
