"""A job's audit trail: its history rebuilt from the stored row, plus this process's events.

Where it comes from, honestly:

- **Durable, from the row** (every backend, every process): inserted, scheduled for later,
  each attempt's failure (attempt, time, kind, message, traceback, from ``errors``), the last
  attempt's start and worker (``attempted_at``, ``attempted_by``), and the final
  ``completed_at`` / ``cancelled_at`` / ``discarded_at``. Earlier attempts' start times are
  not stored, only their errors.
- **Live, from events** (this process only, the last few thousand): operator retries and
  cancels, rescues and outcomes seen by a worker in this process. An operator retry clears the
  final timestamps of the row, so the event is the only trace of it once the process restarts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskward.jobs import Job, JobState
from taskward.observe.events import Event

__all__ = ["HistoryEntry", "job_history"]

# Events already told by the row: skipped when the row has the same kind at (almost) that time.
_SAME_MOMENT = timedelta(milliseconds=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One step in a job's life."""

    at: datetime
    kind: str
    """A short name: enqueued, scheduled, started, failed_attempt, completed, failed, …"""
    summary: str
    attempt: int | None = None
    traceback: str | None = None
    source: str = "row"
    """``row`` (stored, durable) or ``event`` (seen live by this process)."""


def _row_entries(job: Job) -> list[HistoryEntry]:
    out = [HistoryEntry(at=job.inserted_at, kind="enqueued", summary=f"enqueued on {job.queue}")]
    if job.scheduled_at - job.inserted_at > timedelta(seconds=1) and not job.errors:
        out.append(
            HistoryEntry(at=job.inserted_at, kind="scheduled", summary=f"due {job.scheduled_at}")
        )
    for error in job.errors:
        kind = {"Cancelled": "cancelled", "Discarded": "discarded"}.get(error.kind, "")
        out.append(
            HistoryEntry(
                at=error.at,
                kind=kind or "failed_attempt",
                summary=f"{error.kind}: {error.message}",
                attempt=error.attempt,
                traceback=error.traceback,
            )
        )
    if job.attempted_at is not None:
        out.append(
            HistoryEntry(
                at=job.attempted_at,
                kind="started",
                summary=f"attempt {job.attempt} started on {job.attempted_by or 'a worker'}",
                attempt=job.attempt,
            )
        )
    out.extend(_final_entries(job))
    return out


def _final_entries(job: Job) -> list[HistoryEntry]:
    out: list[HistoryEntry] = []
    if job.completed_at is not None:
        kind = "failed" if job.state is JobState.FAILED else "completed"
        text = "every attempt failed: dead letter" if kind == "failed" else "completed"
        out.append(HistoryEntry(at=job.completed_at, kind=kind, summary=text, attempt=job.attempt))
    if job.discarded_at is not None and not any(e.kind == "Discarded" for e in job.errors):
        out.append(HistoryEntry(at=job.discarded_at, kind="discarded", summary="discarded"))
    if job.cancelled_at is not None and not any(e.kind == "Cancelled" for e in job.errors):
        out.append(HistoryEntry(at=job.cancelled_at, kind="cancelled", summary="cancelled"))
    return out


def _event_entry(event: Event) -> HistoryEntry:
    kind = event.name.removeprefix("job.")
    details = ", ".join(f"{k}={v}" for k, v in event.data.items() if v is not None)
    return HistoryEntry(
        at=event.at,
        kind=kind,
        summary=f"{kind} ({details})" if details else kind,
        attempt=event.job.attempt if event.job is not None else None,
        source="event",
    )


def job_history(job: Job, events: Iterable[Event] = ()) -> list[HistoryEntry]:
    """Return ``job``'s history, oldest first: row-derived steps merged with live ``events``.

    An event that the row already tells (same kind within a few milliseconds) is dropped, so
    a job run in this process is not listed twice.
    """
    entries = _row_entries(job)
    for event in events:
        if event.job_id != job.id:
            continue
        entry = _event_entry(event)
        if not any(e.kind == entry.kind and abs(e.at - entry.at) <= _SAME_MOMENT for e in entries):
            entries.append(entry)
    return sorted(entries, key=lambda e: e.at)
