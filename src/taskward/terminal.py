r"""How taskward prints what it read from the store to a terminal: as inert text.

A stored string (a task name, an error message, a traceback) may hold rich markup (``[/x]``
crashes a command with a MarkupError) or escape sequences a terminal acts on (screen clears,
OSC 8 links, cursor moves). Everything from the store goes through :func:`plain`,
:func:`say` or :func:`json_text`, which show each such character escaped (ESC as ``\x1b``).

Used by the CLI (:mod:`taskward.cli`) and the demo (:mod:`taskward.demo`); also owns
:func:`stats_table`, which both show. It imports neither, nor typer.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.table import Table
from rich.text import Text

from taskward.jobs import JobState
from taskward.text import UNSAFE_IN_JSON, inert

_SECRET_QUERY_KEYS = frozenset({"password"})


def plain(value: object, *, lines: bool = False) -> Text:
    r"""``value`` (read from the store) as inert text: no markup, control characters escaped.

    Rich would read ``[...]`` as markup (``[/x]`` crashes the command with a MarkupError) and
    would pass escape sequences on to the terminal (screen clears, OSC 8 links, cursor moves):
    each control character is shown escaped instead, ESC as the four characters ``\x1b``.
    ``lines`` keeps newlines, for a multi-line block such as a traceback.
    """
    return Text(inert(value if isinstance(value, str) else str(value), lines=lines))


def say(console: Console, template: str, *values: object) -> None:
    """Print one line: ``template`` is our own markup, each ``{}`` in it a value as plain text.

    Soft-wrapped: a long line stays one line in a pipe or a log (the terminal folds it).
    """
    first, *rest = template.split("{}")
    line = Text.from_markup(first)
    for value, piece in zip(values, rest, strict=True):
        line.append_text(plain(value))
        line.append_text(Text.from_markup(piece))
    console.print(line, soft_wrap=True)


def json_text(data: Any) -> Text:
    r"""``data`` as indented, highlighted JSON, each character a terminal acts on as ``\uXXXX``."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    text = UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return JSONHighlighter()(text)


def display_url(url: str) -> str:
    """``url`` fit to print: a password in it (``user:password@`` or ``?password=``) as ``***``."""
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    netloc = f"{user.partition(':')[0]}:***@{host}" if at and ":" in user else parts.netloc
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret = any(key.lower() in _SECRET_QUERY_KEYS for key, _ in pairs)
    if netloc == parts.netloc and not secret:
        return url  # nothing to hide (and sqlite:/// URLs stay exactly as given)
    query = urlencode(
        [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*"
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query if secret else parts.query))


def stats_table(data: dict[str, Any]) -> Table:
    """Render ``get_statistics()`` as a table; an estimated count reads "~N".

    Queue names are shown as plain text (see :func:`plain`): they come from the store.
    """
    table = Table(title="taskward statistics")
    table.add_column("queue")
    for s in JobState:
        table.add_column(s.value, justify="right")
    estimated: dict[str, list[str]] = data.get("estimated", {})
    for queue, counts in data["queues"].items():
        label = f"{queue} (paused)" if queue in data["paused"] else queue
        guessed = estimated.get(queue, [])
        table.add_row(
            plain(label),
            *(f"{'~' if s.value in guessed else ''}{counts[s.value]}" for s in JobState),
        )
    w = data["workers"]
    caption = f"workers: {w['total']} · busy slots {w['busy_slots']}/{w['total_slots']}"
    if estimated:
        caption += "\n~ estimated: past 10,000 finished jobs of a queue in one state"
    table.caption = caption
    return table
