"""The vocabulary of explanations: reasons, the explanation, the store reads, the words.

:mod:`taskward.explain` builds an :class:`Explanation` from :class:`Reason` values; the
queue-level checks (:mod:`taskward.blocks`) read the store through one :class:`Inquiry` per
explanation, so each read happens at most once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskward.backends.base import Backend
from taskward.jobs import ErrorRecord, Job, JobFilter, JobState, Page, WorkerInfo
from taskward.limits import QueueFlow, QueueLimits

__all__ = [
    "MESSAGE_CHARS",
    "Check",
    "Explanation",
    "Inquiry",
    "Reason",
    "attempts_text",
    "cut",
    "error_data",
    "error_text",
    "iso",
    "span",
    "time_text",
]

MESSAGE_CHARS = 200
"""An error message is cut to this many characters in a reason's text (``data`` has it all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """One cause of a job not running now (or, for ``running``, what it is doing).

    ``code``: short and stable, for programs (``scheduled``, ``backoff``, ``paused``,
    ``held``, ``global_limit``, ``rate_limit``, ``partition_held``, ``partition_limit``,
    ``partition_rate``, ``no_worker``, ``waiting``, ``running``, ``finished``); ``text``: the
    same in plain words for people; ``data``: the facts behind it, JSON-able (times as ISO
    8601 strings).
    """

    code: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"code", "text", "data"}``."""
        return {"code": self.code, "text": self.text, "data": self.data}


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Why job ``job["id"]`` is or is not running at ``at``.

    ``job``: the job as shown to people (:func:`taskward.tasks.shown_job`: sensitive
    arguments as ``"***"``, no unique key); ``running``: whether it runs now; ``reasons``:
    every cause, in order (never empty).
    """

    job: dict[str, Any]
    running: bool
    reasons: tuple[Reason, ...]
    at: datetime

    @property
    def codes(self) -> tuple[str, ...]:
        """The reasons' codes, in order."""
        return tuple(r.code for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (``at`` as ISO 8601)."""
        return {
            "job": self.job,
            "running": self.running,
            "reasons": [r.to_dict() for r in self.reasons],
            "at": self.at.isoformat(),
        }


class Inquiry:
    """What the checks read from the store for one explanation, each read at most once."""

    def __init__(self, backend: Backend, *, now: datetime, alive_since: datetime) -> None:
        self.backend = backend
        self.now = now
        self.alive_since = alive_since
        """A worker that heartbeat at or after this time counts as live."""
        self._paused: set[str] | None = None
        self._flows: dict[str, QueueFlow] | None = None
        self._keys: dict[tuple[str, str], QueueFlow] = {}
        self._workers: list[WorkerInfo] | None = None

    async def paused(self) -> set[str]:
        """The paused queues."""
        if self._paused is None:
            self._paused = await self.backend.paused_queues()
        return self._paused

    async def flow(self, queue: str) -> QueueFlow:
        """``queue``'s limits, hold and rate window (empty when it has none)."""
        if self._flows is None:
            self._flows = await self.backend.queue_flow()
        return self._flows.get(queue, QueueFlow())

    async def key_flow(self, job: Job) -> QueueFlow | None:
        """Where ``job``'s key stands, when its queue is partitioned (else None)."""
        if (await self.flow(job.queue)).limits.partition_by is None:
            return None
        key = job.partition_key or ""
        if (job.queue, key) not in self._keys:
            self._keys[(job.queue, key)] = await self.backend.partition_flow(job.queue, key)
        return self._keys[(job.queue, key)]

    async def limits(self, queue: str) -> QueueLimits:
        """``queue``'s limits (empty when it has none)."""
        return (await self.flow(queue)).limits

    async def workers(self) -> list[WorkerInfo]:
        """The live workers."""
        if self._workers is None:
            self._workers = await self.backend.list_workers(alive_since=self.alive_since)
        return self._workers

    async def jobs(self, queue: str, state: JobState, *, first: int) -> Page[Job]:
        """The first ``first`` jobs of ``queue`` in ``state`` by id, with their total."""
        flt = JobFilter(states=frozenset({state}), queue=queue, per_page=first, sort_by="id")
        return await self.backend.list_jobs(flt)


Check = Callable[[Job, Inquiry], Awaitable[Reason | None]]
"""A queue-level block: the reason it holds this waiting job back now, or None."""


def iso(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 (None stays None)."""
    return value.isoformat() if value is not None else None


def time_text(value: datetime | None) -> str:
    """``value`` as people read it, in UTC."""
    if value is None:
        return "an unknown time"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(seconds: float) -> str:
    """``seconds`` in the unit people read: "42 s", "5 min", "3 h", "2 days"."""
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def attempts_text(n: int) -> str:
    """How many attempts, in words: 1 attempt, 3 attempts."""
    return f"{n} attempt{'s' if n != 1 else ''}"


def cut(text: str) -> str:
    """``text`` cut to MESSAGE_CHARS characters."""
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def error_text(error: ErrorRecord) -> str:
    """An error in a sentence: its kind and its (cut) message."""
    return f"{error.kind}: {cut(error.message)}"


def error_data(error: ErrorRecord | None) -> dict[str, Any] | None:
    """An error as JSON-able data."""
    if error is None:
        return None
    return {
        "attempt": error.attempt,
        "at": error.at.isoformat(),
        "kind": error.kind,
        "message": error.message,
    }
