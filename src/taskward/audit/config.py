"""``[tool.taskward.audit]`` in ``pyproject.toml``, and which paths its globs exclude.

The table is looked for in the nearest ``pyproject.toml`` above each scanned path that has
one, as ruff does. Its ``exclude`` globs are matched against a file's or folder's name, and
its path relative to the folder holding that ``pyproject.toml``::

    [tool.taskward.audit]
    exclude = ["examples/legacy_*.py", "generated"]

A malformed table is an error of the run (exit status 2), not something to guess around.
"""

from __future__ import annotations

import contextlib
import fnmatch
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConfigError", "ProjectConfig", "excluded", "find_config", "project_root"]

_KNOWN_KEYS = frozenset({"exclude"})


class ConfigError(Exception):
    """A ``pyproject.toml`` whose ``[tool.taskward.audit]`` table cannot be used."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """The audit's settings from one ``pyproject.toml``, and the folder they are relative to."""

    root: Path
    exclude: tuple[str, ...] = ()


def find_config(path: Path, seen: dict[Path, ProjectConfig | None]) -> ProjectConfig | None:
    """Return the settings that apply to ``path`` (None without any); ``seen`` caches folders."""
    start = path.resolve()
    folder = start if start.is_dir() else start.parent
    visited: list[Path] = []
    found: ProjectConfig | None = None
    for candidate in (folder, *folder.parents):
        if candidate in seen:
            found = seen[candidate]
            break
        visited.append(candidate)
        found = _load(candidate / "pyproject.toml")
        if found is not None:
            break
    for candidate in visited:
        seen[candidate] = found
    return found


def project_root(path: Path) -> Path | None:
    """Return the nearest folder above ``path`` holding a ``pyproject.toml``, if any."""
    start = path.resolve()
    folder = start if start.is_dir() else start.parent
    return next((c for c in (folder, *folder.parents) if (c / "pyproject.toml").is_file()), None)


def _load(file: Path) -> ProjectConfig | None:
    if not file.is_file():
        return None
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(file, f"cannot read it: {exc}") from exc
    table = data.get("tool", {}).get("taskward", {}).get("audit")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(file, "[tool.taskward.audit] must be a table")
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        known = ", ".join(sorted(_KNOWN_KEYS))
        raise ConfigError(file, f"unknown key {unknown[0]!r} in [tool.taskward.audit] ({known})")
    exclude = table.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(g, str) for g in exclude):
        raise ConfigError(file, "[tool.taskward.audit] exclude must be a list of strings")
    return ProjectConfig(root=file.parent, exclude=tuple(g.rstrip("/") for g in exclude))


def excluded(path: Path, globs: Sequence[str], root: Path | None) -> bool:
    """Whether a glob matches the path, its name, or (under ``root``) a folder it is in.

    Relative to ``root`` each leading part counts, so ``generated`` excludes
    ``generated/client.py`` when that file is named on the command line too.
    """
    if not globs:
        return False
    names = {path.name, path.as_posix()}
    if root is not None:
        # A path outside root can only match by its name or the path itself.
        with contextlib.suppress(ValueError):
            parts = path.resolve().relative_to(root.resolve()).parts
            names.update("/".join(parts[: i + 1]) for i in range(len(parts)))
            names.update(parts)
    return any(fnmatch.fnmatchcase(name, glob) for name in names for glob in globs)
