"""The job lists' parameters: filters, error kind and sort from a query string or a form.

One reading for the list, its polled fragment and its bulk forms, so "all matching" in a
bulk action means exactly what the list showed. Bad input raises ``ValueError``,
``TaskwardError`` or ``HTTPException(400)``: the dashboard answers its 400 page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from fastapi import HTTPException

from taskward.jobs import SORTABLE_FIELDS
from taskward.web.admin import MAX_JOB_ID, job_query
from taskward.web.queries import JobQuery

__all__ = ["FILTERS", "MAX_KIND_CHARS", "list_query"]

FILTERS = ("state", "queue", "task", "q", "workflow", "error_kind")
"""The query parameters a list keeps across its links (pages, sorting) and forms."""
MAX_KIND_CHARS = 200
"""The longest error kind a filter accepts (a Python exception's qualified name)."""


def _sort(value: str | None) -> str:
    """The ``sort`` parameter (``-field`` descending), checked: a bad one is a 400 page."""
    sort = value or "-id"
    if sort.removeprefix("-") not in SORTABLE_FIELDS:
        raise HTTPException(
            400,
            f"cannot sort by {sort!r}; choose one of {sorted(SORTABLE_FIELDS)}"
            " ('-' first: descending)",
        )
    return sort


def _workflow(value: str | None) -> int | None:
    """The ``workflow`` parameter: a workflow id, or None when empty (ValueError otherwise)."""
    if not value:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_JOB_ID)):
        raise ValueError(f"workflow must be a whole number from 1 to {MAX_JOB_ID}")
    workflow = int(text)
    if not 1 <= workflow <= MAX_JOB_ID:
        raise ValueError(f"workflow must be a whole number from 1 to {MAX_JOB_ID}")
    return workflow


def list_query(params: Mapping[str, str], *, dead: bool, page: int = 1) -> JobQuery:
    """The list's query from request parameters (raises ValueError or TaskwardError)."""
    workflow = _workflow(params.get("workflow"))
    kind = params.get("error_kind") or None
    if kind is not None and len(kind) > MAX_KIND_CHARS:
        raise ValueError(f"error_kind must be at most {MAX_KIND_CHARS} characters")
    query = job_query(
        "dead" if dead else params.get("state", ""),
        params.get("queue"),
        params.get("task"),
        params.get("q"),
        page,
        sort_by=_sort(params.get("sort")),
        workflow=workflow,
    )
    return dataclasses.replace(query, error_kind=kind)
