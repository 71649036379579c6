"""What the dashboard's job page shows of one job, computed from the job and ``now``.

Pure functions, no I/O: the times that fit the job's state (:func:`times_of`), its progress as
a bar when it has ``done``/``total`` (:func:`progress_of`), the meta a user wrote (internal
``taskward.*`` keys hidden, :func:`user_meta`), what a schedule's meta says in words
(:func:`schedule_note`) and the actions that fit its state (:func:`actions_for`).
:mod:`taskward.web.job_page` reads the job and the manager's clock and passes them in, so
each polled fragment recomputes "running for" from the same clock the worker stamps times
with, and a test can pin ``now``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from taskward.jobs import RETRIABLE_BY_OPERATOR, WAITING_STATES, Job, JobState
from taskward.sealing import SEALED_META
from taskward.tasks import SENSITIVE_META_KEY
from taskward.web.formatting import duration, relative, seconds, when

__all__ = [
    "INTERNAL_META_PREFIX",
    "MAX_SHOWN_CHARS",
    "Actions",
    "Progress",
    "Time",
    "actions_for",
    "compact",
    "internal_notes",
    "progress_of",
    "schedule_note",
    "times_of",
    "user_meta",
]

INTERNAL_META_PREFIX: Final = "taskward."
"""Meta keys taskward writes for itself (sensitive markers, replays, workflow steps)."""
MAX_SHOWN_CHARS: Final = 2000
"""How much of a progress value or a progress message the page shows; the rest is cut."""
EXACT_LIMIT: Final = 2**53
"""Beyond this a count is not exact as a float: a progress bar of such numbers is not drawn."""
PROGRESS_TEXT_KEYS: Final = ("stage", "message")
"""Progress keys whose string value is shown as text beside the bar."""
RUN_NOW_KEY: Final = "run_now"
"""Meta a schedule's "Run now" marks its job with (outside ``taskward.*``): said in words."""


def compact(value: Any) -> str:
    """``value`` as one line of JSON, cut to :data:`MAX_SHOWN_CHARS`."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True, kw_only=True)
class Time:
    """One line of the page's times: ``Running for  6 min 12 s``.

    ``at``: the moment it is about (an absolute time on hover), if any; ``absolute``: also
    written out beside it (when the job died, when it is due); ``note``: where it comes from
    (``from the task``), if said; ``flag``: a warning shown beside it (``past its timeout``),
    if any.
    """

    label: str
    text: str
    at: datetime | None = None
    absolute: bool = False
    note: str | None = None
    flag: str | None = None


def times_of(
    job: Job, now: datetime, timeout: float | None, timeout_from: str | None = None
) -> list[Time]:
    """The times that fit ``job``'s state at ``now``.

    ``timeout``: the run's limit, if any (one that is not a finite number is not known);
    ``timeout_from``: where it is set (``job``, ``task``, ``default``), said beside it.
    """
    state = job.state
    if state is JobState.RUNNING:
        known = timeout if timeout is not None and math.isfinite(timeout) else None
        return _running(job, now, known, timeout_from)
    if state in (JobState.SCHEDULED, JobState.RETRYABLE):
        label = "Next attempt" if state is JobState.RETRYABLE else "Due"
        due = job.scheduled_at
        text = relative(due, now)
        return [Time(label=label, text=text, at=due, absolute=True), _inserted(job, now)]
    if state is JobState.PENDING:
        since = max(job.scheduled_at, job.inserted_at)
        return [Time(label="Waiting for", text=duration(_seconds(now, since)), at=since)]
    if state is JobState.BLOCKED:
        return [
            Time(label="Waiting for", text="the jobs it depends on"),
            _inserted(job, now),
        ]
    return _finished(job, now)


def _running(
    job: Job, now: datetime, timeout: float | None, timeout_from: str | None
) -> list[Time]:
    started = job.attempted_at
    ran = _seconds(now, started) if started else None
    shown = [Time(label="Running for", text=duration(ran), at=started)]
    if timeout is not None:
        late = ran is not None and ran > timeout
        note = f"from the {timeout_from}" if timeout_from else None
        flag = "past its timeout" if late else None
        shown.append(Time(label="Timeout", text=duration(timeout), note=note, flag=flag))
    if job.lease_until is not None:
        shown.append(
            Time(label="Lease until", text=relative(job.lease_until, now), at=job.lease_until)
        )
    return shown


def _finished(job: Job, now: datetime) -> list[Time]:
    state = job.state
    if state is JobState.COMPLETED:
        label, at = "Finished", job.completed_at
    elif state is JobState.CANCELLED:
        label, at = "Cancelled", job.cancelled_at
    else:  # failed or discarded: when its last attempt died
        last = job.last_error.at if job.last_error else None
        label, at = "Died", job.discarded_at or job.completed_at or last
    shown = [Time(label=label, text=relative(at, now) if at else "—", at=at, absolute=True)]
    started = _last_run_start(job)
    if started is not None and at is not None and at >= started:
        shown.append(Time(label="Ran", text=_run_time((at - started).total_seconds())))
    if started is not None:
        waited = (started - job.scheduled_at).total_seconds()
        shown.append(Time(label="Waited", text=_run_time(waited)))
    return shown


def _last_run_start(job: Job) -> datetime | None:
    """When the run that ended ``job`` started; None if it did not end in a run.

    ``attempted_at`` outlives a retry (which makes the job due again, later than it) and an
    attempt that failed (its error is later than it): a job cancelled while it waited after
    either did not run until its cancellation, so no "Ran" is measured from that old start.
    """
    started = job.attempted_at
    if started is None or started < job.scheduled_at:
        return None
    last = job.last_error
    if job.state is JobState.CANCELLED and last is not None and last.at >= started:
        return None
    return started


def _inserted(job: Job, now: datetime) -> Time:
    return Time(label="Inserted", text=relative(job.inserted_at, now), at=job.inserted_at)


def _seconds(now: datetime, since: datetime) -> float:
    return max(0.0, (now - since).total_seconds())


def _run_time(value: float) -> str:
    return duration(value) if value >= 60 else seconds(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """A job's progress as shown: a bar when it counts ``done`` of ``total``, else JSON.

    ``fraction``: 0..1 for the bar (None: no bar); ``label``: ``3 / 10 (30%)``; ``notes``:
    its ``stage``/``message`` strings; ``rest``: what else it holds, as compact JSON (None
    when nothing).
    """

    fraction: float | None
    label: str
    notes: tuple[str, ...]
    rest: str | None
    done: float | None = None
    total: float | None = None


def _count(value: Any) -> float | None:
    """A usable count: a finite, non-negative, not huge int or float (never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value < 0 or value > EXACT_LIMIT:
        return None
    return float(value)


def _count_text(value: float) -> str:
    if value.is_integer():
        return f"{int(value):,}"
    if value < 1:  # 0.0000001 stays readable (two decimals would say 0)
        return f"{value:.3g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _percent(done: float, total: float) -> int:
    """Whole percent done, rounded down (never 100 before it is all done), at most 100."""
    if done.is_integer() and total.is_integer():
        exact = int(done) * 100 // int(total)  # 29 of 100 is 29%, not 28.999...%
    else:  # floats: drop the last bits' noise (0.29 * 100 is 28.999999999999996) first
        try:
            share = done * 100 / total
        except OverflowError:  # a subnormal total: all of it, as far as a bar can say
            return 100
        if not math.isfinite(share):
            return 100
        exact = math.floor(round(share, 9))
    return min(100, exact)


def progress_of(value: Any) -> Progress | None:
    """``job.progress`` as shown: None when there is none."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return Progress(fraction=None, label="", notes=(), rest=compact(value))
    done, total = _count(value.get("done")), _count(value.get("total"))
    notes = tuple(
        _cut(value[k]) for k in PROGRESS_TEXT_KEYS if isinstance(value.get(k), str) and value[k]
    )
    bar = done is not None and total is not None and total > 0
    # What the bar and the notes show is not repeated; anything else is kept as JSON.
    said = {k for k in PROGRESS_TEXT_KEYS if isinstance(value.get(k), str)}
    if bar:
        said |= {"done", "total"}
    others = {k: v for k, v in value.items() if k not in said}
    rest = compact(others) if others else None
    if not bar or done is None or total is None:
        return Progress(fraction=None, label="", notes=notes, rest=rest)
    fraction = min(1.0, done / total)  # more done than the total: a full bar, the count as said
    label = f"{_count_text(done)} / {_count_text(total)} ({_percent(done, total)}%)"
    return Progress(fraction=fraction, label=label, notes=notes, rest=rest, done=done, total=total)


def user_meta(meta: Any) -> dict[str, Any]:
    """The meta the application wrote: every key but taskward's own (``taskward.*``).

    A schedule's "Run now" mark is said by :func:`schedule_note` instead. Meta that is not a
    mapping (an unreadable stored value) has nothing to show.
    """
    if not isinstance(meta, Mapping):
        return {}
    marked = _run_now(meta)
    return {
        k: v
        for k, v in meta.items()
        if not str(k).startswith(INTERNAL_META_PREFIX) and not (marked and k == RUN_NOW_KEY)
    }


def _run_now(meta: Mapping[str, Any]) -> bool:
    return meta.get(RUN_NOW_KEY) is True and isinstance(meta.get("schedule"), str)


def schedule_note(meta: Any) -> str | None:
    """``inserted by schedule nightly for its fire time ...`` when a schedule inserted it."""
    if not isinstance(meta, Mapping) or not isinstance(meta.get("schedule"), str):
        return None
    name = meta["schedule"]
    if _run_now(meta):
        return f"inserted by schedule {name}'s Run now"
    fire_at = meta.get("fire_at")
    try:
        at = datetime.fromisoformat(fire_at) if isinstance(fire_at, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        return f"inserted by schedule {name}"
    return f"inserted by schedule {name} for its fire time {when(at)}"


def internal_notes(meta: Any) -> list[str]:
    """What taskward's own meta says that an operator should know, in words.

    The workflow step and the replays have their own places on the page; the rest (which
    arguments are sensitive, where) is internal and stays off it.
    """
    if not isinstance(meta, Mapping):
        return []
    notes = []
    if meta.get(SENSITIVE_META_KEY):
        notes.append("some arguments are sensitive: they are shown as ***")
    if meta.get(SEALED_META):
        notes.append("its arguments and result are encrypted at rest")
    return notes


@dataclass(frozen=True, slots=True, kw_only=True)
class Actions:
    """The actions that fit a job's state (each still checked by the store when posted)."""

    retry: bool
    cancel: bool
    stop: bool
    delete: bool


def actions_for(job: Job) -> Actions:
    """Retry a dead or cancelled job; cancel a waiting one; ask a running one to stop.

    Delete anything but a running job (its worker still holds it).
    """
    running = job.state is JobState.RUNNING
    return Actions(
        retry=job.state in RETRIABLE_BY_OPERATOR,
        cancel=job.state in WAITING_STATES,
        stop=running and not job.cancel_requested,
        delete=not running,
    )
