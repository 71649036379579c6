"""Events: what happened to jobs, queues and schedules, delivered to hooks you register.

The manager and the worker runtime call :meth:`EventBus.emit` at each step of a job's life;
metrics, the audit trail and the dead-letter notifier are ordinary subscribers. A hook may be a
plain function or a coroutine function. A hook that raises is logged and counted, never
propagated: an observer must not break an enqueue or a worker.

Events are in-process: a hook sees what *this* process did (a web process sees the enqueues
and operator actions it made; a worker process sees the runs it made).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from taskward.clock import Clock
from taskward.jobs import Job, JobState, JobUpdate
from taskward.tasks import SENSITIVE_META_KEY, redact

__all__ = [
    "EVENT_NAMES",
    "OUTCOME_EVENTS",
    "Event",
    "EventBus",
    "EventRecorder",
    "Hook",
    "emit_outcome",
    "emit_started",
    "outcome_event_name",
]

logger = logging.getLogger(__name__)

EVENT_NAMES = frozenset(
    {
        "job.enqueued",
        "job.started",
        "job.completed",
        "job.failed_attempt",
        "job.snoozed",
        "job.retried",
        "job.discarded",
        "job.failed",
        "job.cancelled",
        "job.rescued",
        "queue.paused",
        "queue.resumed",
        "queue.configured",
        "queue.held",
        "cron.inserted",
        "cron.paused",
        "cron.resumed",
    }
)
"""Every event name the system emits; ``on("*", hook)`` receives them all.

- ``job.enqueued``: a new job was stored (not a unique duplicate). Manager.
- ``job.started``: a worker began an attempt; ``data["wait"]`` = seconds since it was due.
- ``job.completed`` / ``job.failed_attempt`` (retryable) / ``job.failed`` (no attempt left) /
  ``job.discarded`` / ``job.cancelled`` / ``job.snoozed``: how an attempt ended, with
  ``state``, ``duration`` and ``error``. Worker (``job.cancelled`` also from an operator).
- ``job.retried``: an operator moved a dead or cancelled job back to pending. Manager.
- ``job.rescued``: the Rescuer gave an orphaned job (its worker died) its outcome ``state``.
- ``queue.paused`` / ``queue.resumed``: an operator paused or resumed ``queue``. Manager.
- ``queue.configured``: an operator set or cleared ``queue``'s limits. Manager.
- ``queue.held``: a job (``data["job_id"]``) raised ``RateLimited``; ``queue`` (only its key
  ``data["key"]`` when not None) is held back on every node until ``data["until"]``, when the
  job is due again. Worker.
- ``cron.inserted``: the scheduler inserted one slot of ``data["schedule"]``.
- ``cron.paused`` / ``cron.resumed``: an operator paused or resumed the schedule
  ``data["schedule"]``. Manager.
"""

OUTCOME_EVENTS: Mapping[JobState, str] = {
    JobState.COMPLETED: "job.completed",
    JobState.RETRYABLE: "job.failed_attempt",
    JobState.FAILED: "job.failed",
    JobState.DISCARDED: "job.discarded",
    JobState.CANCELLED: "job.cancelled",
    JobState.SCHEDULED: "job.snoozed",
}
"""The event that reports an attempt ending in each state."""


def outcome_event_name(state: JobState) -> str:
    """Return the event name for an attempt that ended in ``state``."""
    return OUTCOME_EVENTS.get(state, f"job.{state.value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One thing that happened. ``job`` is the job as this process knew it at that moment.

    A job whose task marks arguments ``sensitive`` is a copy with those values as ``"***"``
    and without its ``unique_key`` (a hash of them): a hook that logs the event logs no secret.

    ``data`` holds what the name implies: ``state``, ``duration`` and ``error`` for outcomes,
    ``wait`` for ``job.started`` (seconds from due to start), ``fire_at`` for cron.
    """

    name: str
    at: datetime
    job: Job | None = None
    queue: str | None = None
    task: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_job(cls, name: str, job: Job, at: datetime, **data: Any) -> Event:
        """Build the event ``name`` about ``job``.

        Two per job attempt, so the slots are set directly: the generated keyword
        ``__init__`` of a frozen dataclass costs twice as much.
        """
        event = _new(cls)
        _SET_NAME(event, name)
        _SET_AT(event, at)
        _SET_JOB(event, _without_secrets(job) if SENSITIVE_META_KEY in job.meta else job)
        _SET_QUEUE(event, job.queue)
        _SET_TASK(event, job.task)
        _SET_DATA(event, data)
        return event

    @property
    def job_id(self) -> int | None:
        """The id of the job this event is about, if any."""
        return self.job.id if self.job is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible summary (no args: they may be large or sensitive)."""
        return {
            "name": self.name,
            "at": self.at.isoformat(),
            "job_id": self.job_id,
            "queue": self.queue,
            "task": self.task,
            "data": {k: _plain(v) for k, v in self.data.items()},
        }


_new = object.__new__
_SET_NAME, _SET_AT, _SET_JOB, _SET_QUEUE, _SET_TASK, _SET_DATA = (
    Event.__dict__[f].__set__ for f in ("name", "at", "job", "queue", "task", "data")
)


def emit_started(bus: EventBus, job: Job, clock: Clock) -> None:
    """Emit ``job.started`` (with ``wait``: seconds from due to start) if anyone listens."""
    if bus.wants("job.started"):
        now = clock.now()  # read only when someone listens: once per job on the hot path
        wait = (now - max(job.scheduled_at, job.inserted_at)).total_seconds()
        bus.emit(Event.for_job("job.started", job, now, wait=max(wait, 0.0)))


def emit_outcome(bus: EventBus, job: Job, update: JobUpdate, duration: float | None) -> None:
    """Report how an attempt ended (computed, before the fenced write of the Acker)."""
    name = outcome_event_name(update.state)
    if bus.wants(name):
        error = update.error
        bus.emit(
            Event.for_job(
                name,
                job,
                update.at,
                state=update.state.value,
                duration=duration,
                error=f"{error.kind}: {error.message}" if error else None,
            )
        )


def _without_secrets(job: Job) -> Job:
    """A copy of ``job`` as hooks see it: sensitive arguments redacted, no unique key."""
    args, kwargs = redact(job.args, job.kwargs, job.meta)
    return replace(job, args=args, kwargs=kwargs, unique_key=None)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


Hook = Callable[[Event], Awaitable[None] | None]


class EventBus:
    """Delivers events to hooks subscribed by name (or ``"*"`` for every event).

    Thread-safe to subscribe; ``emit`` runs sync hooks inline (keep them fast) and schedules
    coroutine hooks on the running loop, holding a reference until they finish.
    """

    def __init__(self) -> None:
        self._hooks: dict[str, tuple[Hook, ...]] = {}
        # The hooks each name is delivered to, "*" included: built on (un)subscribe, so emit,
        # which runs several times per job, does one dict lookup.
        self._delivery: dict[str, tuple[Hook, ...]] = {}
        self._every: tuple[Hook, ...] = ()
        self._lock = threading.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self.hook_failures = 0
        """How many hook calls raised (each is logged with its traceback)."""

    def on(self, name: str, hook: Hook) -> Hook:
        """Call ``hook(event)`` for each event ``name`` (``"*"``: all); return ``hook``."""
        if name != "*" and name not in EVENT_NAMES:
            raise ValueError(f"unknown event {name!r}; choose from {sorted(EVENT_NAMES)} or '*'")
        with self._lock:
            self._hooks[name] = (*self._hooks.get(name, ()), hook)
            self._rebuild()
        return hook

    def _rebuild(self) -> None:
        every = self._every = self._hooks.get("*", ())
        self._delivery = {name: (*self._hooks.get(name, ()), *every) for name in EVENT_NAMES}

    def off(self, name: str, hook: Hook) -> bool:
        """Unsubscribe ``hook`` from ``name``; False if it was not subscribed."""
        with self._lock:
            hooks = self._hooks.get(name, ())
            if hook not in hooks:
                return False
            self._hooks[name] = tuple(h for h in hooks if h is not hook)
            self._rebuild()
            return True

    def wants(self, name: str) -> bool:
        """True if any hook would receive ``name`` (callers skip building unwanted events)."""
        return bool(self._delivery.get(name, self._every))

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to its hooks; never raises."""
        for hook in self._delivery.get(event.name, self._every):
            try:
                result = hook(event)
                if result is not None and inspect.isawaitable(result):
                    self._schedule(hook, event, result)
            except Exception:
                self._failed(hook, event)

    def emit_many(self, events: Iterable[Event]) -> None:
        """Deliver several events in order."""
        for event in events:
            self.emit(event)

    async def wait_idle(self) -> None:
        """Wait until every coroutine hook scheduled so far has finished (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _schedule(self, hook: Hook, event: Event, awaitable: Awaitable[None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Emitted from a thread without a loop: run the coroutine hook to completion here.
            try:
                asyncio.run(_awaited(awaitable))
            except Exception:
                self._failed(hook, event)
            return
        task = loop.create_task(_awaited(awaitable), name=f"taskward-hook-{event.name}")
        self._pending.add(task)
        task.add_done_callback(lambda t: self._hook_done(t, hook, event))

    def _hook_done(self, task: asyncio.Task[None], hook: Hook, event: Event) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failed(hook, event, task.exception())

    def _failed(self, hook: Hook, event: Event, exc: BaseException | None = None) -> None:
        self.hook_failures += 1
        logger.error(
            "event hook %r raised on %s (job %s); the event goes on to the other hooks",
            getattr(hook, "__qualname__", hook),
            event.name,
            event.job_id,
            exc_info=exc or True,
            extra={"job_id": event.job_id, "event": event.name},
        )


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


class EventRecorder:
    """Keeps the most recent events of this process (the live part of the audit trail).

    A bounded ring: memory stays constant however many jobs run. The durable part of a job's
    history comes from its stored row (see :mod:`taskward.observe.history`).
    """

    def __init__(self, maxlen: int = 2000) -> None:
        self._events: deque[Event] = deque(maxlen=maxlen)

    def __call__(self, event: Event) -> None:
        """Record one event (a hook for ``bus.on("*", recorder)``)."""
        self._events.append(event)

    def recent(self, *, limit: int = 100, job_id: int | None = None) -> list[Event]:
        """Return up to ``limit`` recent events, newest first, optionally of one job."""
        out: list[Event] = []
        for event in reversed(list(self._events)):  # a copy: another thread may append
            if job_id is None or event.job_id == job_id:
                out.append(event)
                if len(out) >= limit:
                    break
        return out
