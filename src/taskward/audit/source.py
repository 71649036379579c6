"""Reading, parsing and locating Python source: encodings, warnings, columns, comments.

``ast`` counts columns in UTF-8 bytes; findings and edits need characters, as editors do.
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
import warnings
from pathlib import Path

__all__ = ["Positions", "describe", "parse", "read_source", "suppressions"]

_IGNORE = re.compile(r"#\s*taskward:\s*ignore(?:\[(?P<kinds>[^\]]*)\])?")
# A line that ruff's RUF006 ("store a reference to the return value") was told to accept
# says the same thing as a taskward ignore, so it is honoured too.
_NOQA = re.compile(r"#\s*noqa:[^#]*\bRUF006\b")


class Positions:
    """Converts ast positions (line, UTF-8 byte column) into character offsets of the source."""

    def __init__(self, source: str) -> None:
        # Split only on \n, \r\n and \r, exactly the line breaks the tokenizer counts.
        self._lines = io.StringIO(source, newline="").readlines()
        self._starts = list(itertools.accumulate(map(len, self._lines), initial=0))

    def column(self, line: int, byte_col: int) -> int:
        """Return the 0-based character column of a byte column on a 1-based line."""
        text = self._lines[line - 1] if 0 < line <= len(self._lines) else ""
        return len(text.encode()[:byte_col].decode(errors="replace"))

    def offset(self, line: int, byte_col: int) -> int:
        """Return the character offset in the source of a (line, byte column) position."""
        return self._starts[line - 1] + self.column(line, byte_col)

    def span(self, node: ast.expr) -> tuple[int, int]:
        """Return the start and end character offsets of an expression node."""
        end_line = node.lineno if node.end_lineno is None else node.end_lineno
        end_col = node.col_offset if node.end_col_offset is None else node.end_col_offset
        return self.offset(node.lineno, node.col_offset), self.offset(end_line, end_col)


def parse(source: str, path: str) -> ast.Module:
    """Parse ``source``; raises SyntaxError (and ValueError for null bytes)."""
    # Scanned code may hold invalid escapes and the like; its warnings are not ours to raise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, filename=path)


def read_source(path: Path) -> tuple[str, str]:
    """Return a file's text and encoding, honouring coding cookies and a UTF-8 BOM."""
    return decode(path.read_bytes())


def decode(data: bytes) -> tuple[str, str]:
    """Return the text of a Python file's bytes and its encoding."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding), encoding


def describe(exc: BaseException) -> str:
    """Return a one-line description of why a file could not be read or parsed."""
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return f"syntax error: {exc.msg}{where}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, RecursionError):
        return "code is nested too deeply to analyse"
    return str(exc)


def suppressions(source: str) -> dict[int, frozenset[str] | None]:
    """Map each line with a ``# taskward: ignore[...]`` comment to the kinds it silences.

    ``None`` silences every kind. Comments are found with the tokenizer, so the text inside
    a string never counts; the tokenizer only runs when the text could hold one.
    """
    if "taskward" not in source and "RUF006" not in source:
        return {}
    found: dict[int, frozenset[str] | None] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return {}
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _IGNORE.search(token.string)
        if match is not None:
            kinds = match.group("kinds")
            found[token.start[0]] = (
                None if kinds is None else frozenset(k.strip().lower() for k in kinds.split(","))
            )
        elif _NOQA.search(token.string):
            found[token.start[0]] = None
    return found
