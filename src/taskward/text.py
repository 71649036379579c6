r"""Stored text made safe to show on a terminal or in a log: control characters escaped.

A task name, a queue name or an error message read from the store may hold escape sequences
a terminal acts on (screen clears, OSC 8 links, cursor moves) or characters that split or
reorder a line. Shown through :func:`inert`, each is written as an escape instead, ESC as the
four characters ``\x1b``.
"""

from __future__ import annotations

import re

# C0 controls but tab (newline is handled apart: it splits a line), DEL, C1 controls (\x9b is
# an 8-bit CSI to some terminals), the Unicode line separators and the bidi controls, which
# split or reorder what is shown ("Trojan Source").
_CONTROLS = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\n{_CONTROLS}]")
_UNSAFE_IN_LINES = re.compile(f"[{_CONTROLS}]")
UNSAFE_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What ``json.dumps`` leaves raw (it escapes C0 itself) but a terminal acts on."""
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def inert(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character escaped; ``lines`` keeps newlines (a traceback)."""
    if text.isprintable():  # the common case, checked in C: nothing to escape
        return text
    return (_UNSAFE_IN_LINES if lines else _UNSAFE).sub(_escape, text)
