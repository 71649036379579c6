"""Domain values: jobs, their states, and the inputs and outputs of the backend contract.

Everything here is a frozen, slotted, keyword-only dataclass or a ``StrEnum``: values carry no I/O
and are changed with :func:`dataclasses.replace`. The same fields exist in every backend.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from taskward.errors import InvalidOptions, NotSupported

T = TypeVar("T")

QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MIN_PRIORITY = 0
MAX_PRIORITY = 9
MAX_ATTEMPTS = 2**31 - 1
"""The largest ``max_attempts``: it must fit the 32-bit integer column of every backend."""
MAX_DELAY_SECONDS = 100 * 365 * 86_400.0
"""The longest delay, window or timeout accepted (100 years).

Anything longer cannot be told apart from "never", and ``now + delay`` must stay a
representable date in every backend (Python's ``datetime`` ends at year 9999).
"""


class JobState(StrEnum):
    """Where a job is in its life. See the state machine in ``states.py``."""

    BLOCKED = "blocked"
    """A workflow step waiting for its dependencies to end (see ``taskward.graph``)."""
    SCHEDULED = "scheduled"
    """Waiting for its ``scheduled_at`` time."""
    PENDING = "pending"
    """Due: waiting for a worker."""
    RUNNING = "running"
    """Leased by a worker that is running it."""
    RETRYABLE = "retryable"
    """An attempt failed; waiting for its backoff before the next attempt."""
    COMPLETED = "completed"
    """The function returned."""
    FAILED = "failed"
    """Every attempt failed: a dead letter."""
    DISCARDED = "discarded"
    """The job raised ``Discard``: a dead letter."""
    CANCELLED = "cancelled"
    """Cancelled by an operator or by the job itself."""


WAITING_STATES = frozenset(
    {JobState.BLOCKED, JobState.SCHEDULED, JobState.PENDING, JobState.RETRYABLE}
)
"""Not started yet, and cancellable without a worker's help."""
FINISHED_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.DISCARDED, JobState.CANCELLED}
)
DEAD_STATES = frozenset({JobState.FAILED, JobState.DISCARDED})
RETRIABLE_BY_OPERATOR = frozenset({JobState.FAILED, JobState.DISCARDED, JobState.CANCELLED})
# A unique job counts as a duplicate of an earlier one in these states (Oban's default set):
# a job that died or was cancelled does not block a fresh enqueue.
UNIQUE_BLOCKING_STATES = frozenset(
    {
        JobState.BLOCKED,
        JobState.SCHEDULED,
        JobState.PENDING,
        JobState.RUNNING,
        JobState.RETRYABLE,
        JobState.COMPLETED,
    }
)


def validate_queue_name(queue: str) -> str:
    """Return ``queue`` if it is a valid queue name, else raise :class:`InvalidOptions`."""
    if not isinstance(queue, str) or not QUEUE_NAME_RE.fullmatch(queue):
        raise InvalidOptions(
            f"invalid queue name {queue!r}: use 1-64 characters from [A-Za-z0-9_.-]"
        )
    return queue


def validate_priority(priority: int) -> int:
    """Return ``priority`` if it is an int in 0..9 (0 runs first), else raise."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidOptions(f"priority must be an int 0..9, got {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidOptions(f"priority must be between 0 (first) and 9 (last), got {priority}")
    return priority


def validate_max_attempts(max_attempts: int) -> int:
    """Return ``max_attempts`` if it is an int in 1..MAX_ATTEMPTS, else raise."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise InvalidOptions(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    if not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise InvalidOptions(
            f"max_attempts must be between 1 and {MAX_ATTEMPTS:,}, got {max_attempts}"
        )
    return max_attempts


def validate_seconds(name: str, value: float | None, *, allow_zero: bool = True) -> float | None:
    """Return ``value`` as float if it is a finite number of seconds (or None), else raise.

    At most :data:`MAX_DELAY_SECONDS`: a longer value would overflow a date computed from it.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOptions(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidOptions(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value}")
    if value > MAX_DELAY_SECONDS:
        raise InvalidOptions(
            f"{name} must be at most {MAX_DELAY_SECONDS:.0f} seconds (100 years), got {value:g}"
        )
    return float(value)


def validate_tags(tags: object) -> tuple[str, ...]:
    """Return ``tags`` (a list, tuple or set of strings; None for none) as a tuple, else raise.

    A lone string is refused rather than split into characters (``tags="urgent"``). A set is
    sorted, so the stored order does not depend on hashing.
    """
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise InvalidOptions(f"tags must be a list of strings: write tags=[{tags!r}]")
    if not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidOptions(f"tags must be a list of strings, got {tags!r}")
    for tag in tags:
        if not isinstance(tag, str) or not tag or not _is_utf8(tag):
            raise InvalidOptions(f"each tag must be a non-empty string, got {tag!r}")
    return tuple(sorted(tags)) if isinstance(tags, set | frozenset) else tuple(tags)


def _is_utf8(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (which no backend can store as UTF-8)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRecord:
    """One failed attempt: when, what kind of error, its message and traceback."""

    attempt: int
    at: datetime
    kind: str
    message: str
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (``at`` as ISO 8601)."""
        return {
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "message": self.message,
            "traceback": self.traceback,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorRecord:
        """Build a record from :meth:`to_dict` output."""
        return cls(
            attempt=int(data["attempt"]),
            at=datetime.fromisoformat(data["at"]),
            kind=str(data["kind"]),
            message=str(data["message"]),
            traceback=data.get("traceback"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A durable job as stored: what to run, with what, and what happened so far."""

    id: int
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    state: JobState
    priority: int
    attempt: int
    max_attempts: int
    scheduled_at: datetime
    inserted_at: datetime
    attempted_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    discarded_at: datetime | None = None
    attempted_by: str | None = None
    lease_until: datetime | None = None
    errors: tuple[ErrorRecord, ...] = ()
    result: Any = None
    progress: Any = None
    unique_key: str | None = None
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[int, ...] = ()
    timeout: float | None = None
    cancel_requested: bool = False
    partition_key: str | None = None
    """The job's key in a partitioned queue (see ``QueueLimits.partition_by``); None when its
    queue was not partitioned when it was stored and its task gave no key."""

    @property
    def last_error(self) -> ErrorRecord | None:
        """The most recent failed attempt, if any."""
        return self.errors[-1] if self.errors else None

    @property
    def is_finished(self) -> bool:
        """True once the job reached a final state (it may still be retried by an operator)."""
        return self.state in FINISHED_STATES

    async def wait(self, *, timeout: float | None = None) -> Any:
        """Wait until this job ends; return its result (``TaskManager.wait_for``'s rules).

        Works on the job an enqueue returned (``await task.enqueue(...)``,
        ``task.enqueue_sync(...)``, ``manager.enqueue_task``): it knows its manager. Raises
        ``JobFailed``/``JobDiscarded``/``JobCancelled`` when it ends otherwise, ``WaitTimeout``
        (a ``TimeoutError``) after ``timeout`` seconds (None: no limit), leaving the job as it was.
        """
        return await _outcomes_of(self).wait_for(self.id, timeout=timeout)

    def wait_sync(self, *, timeout: float | None = None) -> Any:
        """Blocking twin of :meth:`wait`, for sync code (``manager.sync.wait_for``)."""
        return _outcomes_of(self).wait_for_blocking(self.id, timeout=timeout)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict of every field (datetimes as ISO 8601)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif name == "errors":
                value = [e.to_dict() for e in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


class OutcomeSource(Protocol):
    """What :meth:`Job.wait` needs from its manager (``TaskManager`` implements it)."""

    async def wait_for(self, job_id: int, *, timeout: float | None = None) -> Any:
        """Wait until job ``job_id`` ends; return its result."""
        ...

    def wait_for_blocking(self, job_id: int, *, timeout: float | None = None) -> Any:
        """:meth:`wait_for` from sync code, blocking the calling thread."""
        ...


class BoundJob(Job):
    """A :class:`Job` as an enqueue returned it: the same values, and the manager to wait on.

    Not a dataclass of its own: the back-reference is a slot, not a field, so ``to_dict``,
    ``dataclasses.fields`` and ``replace`` see a Job's fields only (``replace`` gives an
    unbound copy). It compares equal to a plain :class:`Job` with the same values (and hashes
    the same), and its ``repr`` is a Job's.
    """

    __slots__ = ("_outcomes",)

    @classmethod
    def bind(cls, job: Job, outcomes: OutcomeSource) -> BoundJob:
        """``job``'s values with ``outcomes`` (the manager) to wait on."""
        bound = object.__new__(cls)
        for name in job.__dataclass_fields__:
            object.__setattr__(bound, name, getattr(job, name))
        object.__setattr__(bound, "_outcomes", outcomes)
        return bound

    def __eq__(self, other: object) -> bool:
        # A plain Job's own __eq__ refuses another class; Python then asks this one (a
        # subclass), so equality holds both ways.
        if not isinstance(other, Job):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__dataclass_fields__)

    __hash__ = Job.__hash__

    def __repr__(self) -> str:
        text = Job.__repr__(self)
        return "Job" + text[len(type(self).__qualname__) :]

    def __copy__(self) -> BoundJob:
        return self  # immutable: a copy would be the same values

    def __deepcopy__(self, memo: dict[int, Any]) -> Job:
        # Never deep-copy the manager: a deep copy is a plain Job of copied values.
        values = {n: copy.deepcopy(getattr(self, n), memo) for n in self.__dataclass_fields__}
        return Job(**values)


def _outcomes_of(job: Job) -> OutcomeSource:
    """The manager ``job`` was enqueued through, or a clear error for a job read back."""
    outcomes: OutcomeSource | None = getattr(job, "_outcomes", None)
    if outcomes is None:
        raise NotSupported(
            f"job {job.id} does not know its TaskManager (only an enqueue's result does): "
            "use await manager.wait_for(job.id) or manager.sync.wait_for(job.id)"
        )
    return outcomes


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """A validated job ready to insert. Built by the manager; backends only store it.

    ``unique_key`` with ``unique_window`` seconds: an earlier job with the same key, inserted
    within the window and in a state of ``UNIQUE_BLOCKING_STATES``, is returned instead of a new
    insert. ``unique_key`` with ``unique_window=None`` blocks forever, in any state (cron slots).
    """

    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    max_attempts: int
    scheduled_at: datetime
    state: JobState
    args_json: str | None = None
    kwargs_json: str | None = None
    timeout: float | None = None
    unique_key: str | None = None
    unique_window: float | None = None
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[int, ...] = ()
    partition_key: str | None = None
    """A key the producer computed (a task's ``partition_key`` function); None: the store
    computes it from its queue's ``partition_by`` rule, if the queue has one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedPayload:
    """A job's args and kwargs, validated, normalised and encoded once."""

    args: list[Any]
    """The positional arguments as the worker will receive them (tuples became lists)."""
    kwargs: dict[str, Any]
    """The keyword arguments as the worker will receive them."""
    args_json: str
    """``args`` as compact JSON text (a list), ready to store."""
    kwargs_json: str
    """``kwargs`` as compact JSON text (an object), ready to store."""
    size: int
    """UTF-8 size in bytes of ``args_json`` plus ``kwargs_json``; what the limit applies to."""
    partition_key: str | None = None
    """As ``NewJob.partition_key``, for this job of a batch."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewJobBatch:
    """Jobs alike but for their arguments: a chunk of a bulk enqueue, one payload per job.

    ``template`` carries every field the jobs share (its own args and kwargs are none of
    theirs); ``payloads`` are each job's validated, encoded arguments, in order. Building one
    NewJob per call cost a third of a bulk enqueue's client time, and the store needs the
    shared fields only once. Each job gets its own copy of ``template.meta``.
    """

    template: NewJob
    payloads: Sequence[EncodedPayload]

    def __len__(self) -> int:
        return len(self.payloads)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inserted:
    """The answer to one insert: the stored job, and whether it already existed (unique)."""

    job: Job
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class JobUpdate:
    """An outcome to persist, computed by ``states.next_update``; backends write it fenced.

    The write happens only if the job is still ``running`` at ``attempt`` and leased by the
    writer; with ``lease_expired_before`` set (orphan rescue) the lease must also have expired.
    """

    job_id: int
    attempt: int
    state: JobState
    at: datetime
    scheduled_at: datetime | None = None
    error: ErrorRecord | None = None
    result: Any = None
    refund_attempt: bool = False
    lease_expired_before: datetime | None = None
    dependents: bool = False
    """The job is a workflow step others wait for: a final state must release or cancel them
    in the same transaction (``taskward.graph``). False lets the store skip the lookup."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseReport:
    """Heartbeat answer: jobs this worker no longer owns, and jobs an operator cancelled."""

    lost: frozenset[int] = frozenset()
    cancel_requested: frozenset[int] = frozenset()


SORTABLE_FIELDS = frozenset(
    {"id", "inserted_at", "scheduled_at", "attempted_at", "completed_at", "priority", "attempt"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFilter:
    """Which jobs to list, in what order, which page. ``sort_by`` "-field" sorts descending."""

    states: frozenset[JobState] | None = None
    queue: str | None = None
    task: str | None = None
    workflow: int | None = None
    """Only the steps of this workflow."""
    page: int = 1
    per_page: int = 50
    sort_by: str = "-id"

    def __post_init__(self) -> None:
        if self.page < 1:
            raise InvalidOptions(f"page must be >= 1, got {self.page}")
        if not 1 <= self.per_page <= 1000:
            raise InvalidOptions(f"per_page must be between 1 and 1000, got {self.per_page}")
        for label, name in (("queue", self.queue), ("task", self.task)):
            if name is not None and "\x00" in name:  # PostgreSQL text cannot hold one
                raise InvalidOptions(f"{label} filter {name!r} contains a NUL character")
        if self.offset > 2**63 - 1:  # a store's OFFSET is a signed 64-bit integer
            raise InvalidOptions(f"page {self.page} is too large for {self.per_page} per page")
        if self.sort_field not in SORTABLE_FIELDS:
            raise InvalidOptions(
                f"cannot sort by {self.sort_by!r}; choose one of {sorted(SORTABLE_FIELDS)}"
                " (prefix '-' for descending)"
            )

    @property
    def sort_field(self) -> str:
        """The field name without its direction prefix."""
        return self.sort_by.lstrip("-")

    @property
    def descending(self) -> bool:
        """True when ``sort_by`` starts with '-'."""
        return self.sort_by.startswith("-")

    @property
    def offset(self) -> int:
        """How many rows come before this page."""
        return (self.page - 1) * self.per_page


@dataclass(frozen=True, slots=True, kw_only=True)
class Page(Generic[T]):
    """One page of a listing, with the totals needed to page through the rest.

    ``total_is_estimate``: the store counted exactly up to a cap, then estimated (PostgreSQL
    past 10,000 matches: an exact count of a million rows costs more than the page).
    """

    items: Sequence[T]
    total_entries: int
    page_number: int
    page_size: int
    total_is_estimate: bool = False

    @property
    def total_pages(self) -> int:
        """Number of pages (at least 1, so an empty listing still has page 1)."""
        return max(1, -(-self.total_entries // self.page_size))


class CatchUp(StrEnum):
    """A schedule's policy for fire times missed while no scheduler ran (issue 25)."""

    SKIP = "skip"
    """Record the missed times as skipped (one summary row); the next normal fire runs."""
    LATEST = "latest"
    """Insert only the most recent missed time (``caught_up``); skip the others."""
    ALL = "all"
    """Insert each missed time (``caught_up``), at most ``max_catch_up``; skip the older rest."""


class Overlap(StrEnum):
    """A schedule's policy for a fire time that comes while its previous job has not ended."""

    ALLOW = "allow"
    """Insert the new job anyway."""
    SKIP = "skip"
    """Insert nothing; record the fire time as skipped."""
    CANCEL_RUNNING = "cancel_running"
    """Request the cancel of the previous job (as an operator would), then insert the new one."""


class CronOutcome(StrEnum):
    """What a scheduler did with one fire time of a schedule."""

    INSERTED = "inserted"
    """A job was inserted at its fire time."""
    CAUGHT_UP = "caught_up"
    """A job was inserted late, for a fire time missed while no scheduler ran."""
    SKIPPED = "skipped"
    """No job: missed (``count`` may summarise many times) or the previous run still running."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A durable recurring job definition: insert ``task`` at every fire time of ``cron``."""

    name: str
    task: str
    cron: str
    timezone: str = "UTC"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    created_at: datetime | None = None
    catch_up: CatchUp = CatchUp.SKIP
    """What to do with fire times missed while no scheduler ran (see :class:`CatchUp`)."""
    max_catch_up: int = 10
    """With ``catch_up="all"``: at most this many missed fire times are inserted (the newest)."""
    catch_up_within: float | None = None
    """Only missed fire times younger than this many seconds are caught up (None: any age)."""
    overlap: Overlap = Overlap.ALLOW
    """What to do at a fire time while the previous run has not ended (see :class:`Overlap`)."""
    last_fire_at: datetime | None = None
    """The newest fire time a scheduler handled (kept by the store; ``save_schedule`` keeps it)."""
    last_job_id: int | None = None
    """The job the schedule inserted last (kept by the store; ``save_schedule`` keeps it)."""
    paused: bool = False
    """An operator paused it: no scheduler fires it (kept by the store; ``save_schedule`` keeps
    it, so a pause survives the app saving its schedules again at start)."""


CRON_HISTORY_KEEP = 100
"""How many fire records a store keeps per schedule (the newest; older ones are trimmed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CronFire:
    """One record of a schedule's fire history: a planned time and what became of it.

    A summary of many skipped times is one record: ``planned_at`` is the newest of them,
    ``count`` how many, and ``reason`` names the first and the last.
    """

    planned_at: datetime
    outcome: CronOutcome
    job_id: int | None = None
    reason: str = ""
    count: int = 1
    recorded_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """A live worker process as it last reported itself."""

    id: str
    hostname: str
    pid: int
    queues: dict[str, int]
    started_at: datetime
    heartbeat_at: datetime
    running: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """Counts of jobs by queue and state, and the paused queues.

    ``estimated``: the (queue, state) pairs whose count is an estimate; every other count is
    exact. Empty except on PostgreSQL, which estimates the jobs of one queue in one finished
    state (completed, failed, discarded, cancelled) past 10,000 of them: counting those
    exactly costs a scan of most of the table. Waiting and running jobs are always exact.
    """

    counts: dict[str, dict[JobState, int]]
    paused: frozenset[str] = frozenset()
    estimated: frozenset[tuple[str, JobState]] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEdit:
    """What an operator's retry changes, written in the same atomic step as the retry.

    Built and validated by the manager (``TaskManager.retry_task`` with changes); a backend
    only stores it (``Backend.retry(..., edit=)``). ``None`` leaves a field as stored.
    ``args_json``/``kwargs_json`` are the encoded new arguments (given together with ``args``/
    ``kwargs``). ``partition_key``: the key the task's key function gave for the new
    arguments (the producer's, as ``NewJob.partition_key``); without one, a store whose job
    changes arguments or queue re-reads the key by the (new) queue's rule, and keeps the job's
    key when that queue has none. ``replay``: the history record appended to the job's
    ``meta["taskward.replays"]`` (see ``taskward.edits``); already redacted.
    """

    replay: dict[str, Any]
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    args_json: str | None = None
    kwargs_json: str | None = None
    queue: str | None = None
    priority: int | None = None
    partition_key: str | None = None

    @property
    def rekeys(self) -> bool:
        """True when the job's partition key must follow its new arguments or queue."""
        return self.args is not None or self.kwargs is not None or self.queue is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reseal:
    """Sealed values of one job written again with the current key (key rotation).

    Written only if the job still has the ``state``, ``attempt`` and number of errors it had
    when it was read: every write that changes its arguments, result or errors changes one of
    them, so a rotation never overwrites a newer value (it retries the job next pass).
    ``None`` keeps a field. ``result`` is the new envelope (a JSON string value); ``kwargs``
    the sealed job's one stored kwarg; ``errors`` the whole list (``taskward.sealing``).
    """

    job_id: int
    state: JobState
    attempt: int
    errors_count: int
    envelope: str | None = None
    """The arguments' envelope as read (``kwargs["taskward.sealed"]``), part of the fence:
    an operator's replay with new arguments seals them anew, so an edit followed by a cancel
    (which may bring state, attempt and error count back) still changes it."""
    kwargs: dict[str, Any] | None = None
    result: str | None = None
    errors: tuple[ErrorRecord, ...] | None = None
