"""Response and request models of the admin API (pydantic lives here, at the edge only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from taskward.graph import WorkflowRecord
from taskward.jobs import Job, Schedule
from taskward.observe.history import HistoryEntry
from taskward.sealing import masked
from taskward.web.queries import JobListing, Timeline, shown_arguments


class ErrorOut(BaseModel):
    """One failed attempt."""

    attempt: int
    at: datetime
    kind: str
    message: str
    traceback: str | None = None


class JobSummaryOut(BaseModel):
    """A job in a listing (errors reduced to the last one's kind and message)."""

    id: int
    task: str
    queue: str
    state: str
    priority: int
    attempt: int
    max_attempts: int
    args: list[Any]
    kwargs: dict[str, Any]
    payload_error: str | None = Field(
        None, description="why the stored args cannot run (not written by taskward)"
    )
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None
    completed_at: datetime | None
    last_error: str | None

    @classmethod
    def of(cls, job: Job) -> JobSummaryOut:
        """Build from a Job."""
        job = masked(job)
        last = job.last_error
        shown = shown_arguments(job)
        return cls(
            id=job.id,
            task=job.task,
            queue=job.queue,
            state=job.state.value,
            priority=job.priority,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            args=shown.args,
            kwargs=shown.kwargs,
            payload_error=shown.problem,
            inserted_at=job.inserted_at,
            scheduled_at=job.scheduled_at,
            attempted_at=job.attempted_at,
            completed_at=job.completed_at or job.cancelled_at or job.discarded_at,
            last_error=f"{last.kind}: {last.message}" if last else None,
        )


class JobOut(BaseModel):
    """Every stored field of a job but its ``unique_key`` (``unique`` says if it has one).

    The key is a hash over the task, queue and arguments, sensitive ones included: a short
    secret (a 6-digit code) could be found from it by trying every value, so it never leaves
    the store through the web.
    """

    id: int
    task: str
    queue: str
    state: str
    priority: int
    attempt: int
    max_attempts: int
    args: list[Any]
    kwargs: dict[str, Any]
    payload_error: str | None = None
    scheduled_at: datetime
    inserted_at: datetime
    attempted_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    discarded_at: datetime | None
    attempted_by: str | None
    errors: list[ErrorOut]
    result: Any
    progress: Any
    tags: list[str]
    meta: dict[str, Any]
    timeout: float | None
    cancel_requested: bool
    unique: bool = Field(False, description="whether the job has a unique key (never shown)")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """Build from a Job (sensitive args as "***", an unreadable payload as its problem)."""
        job = masked(job)  # values no key here opens are shown as "encrypted"
        shown = shown_arguments(job)
        stored = job.to_dict()
        # Dropped here, not only left out of the fields: a later field named like it, or a
        # model that allows extra keys, must not bring it back.
        stored.pop("unique_key", None)
        if not isinstance(stored.get("meta"), dict):  # unreadable stored meta: shown as none
            stored["meta"] = {}
        return cls.model_validate(
            {
                **stored,
                "args": shown.args,
                "kwargs": shown.kwargs,
                "payload_error": shown.problem,
                "unique": job.unique_key is not None,
            }
        )


class HistoryOut(BaseModel):
    """One step of a job's audit trail; ``source`` is "row" (stored) or "event" (live)."""

    at: datetime
    kind: str
    summary: str
    attempt: int | None
    traceback: str | None
    source: str

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryOut:
        """Build from a history entry."""
        return cls(
            at=entry.at,
            kind=entry.kind,
            summary=entry.summary,
            attempt=entry.attempt,
            traceback=entry.traceback,
            source=entry.source,
        )


class TimingsOut(BaseModel):
    """Seconds waited (due → last start) and run (last start → finish), when known."""

    wait_seconds: float | None
    run_seconds: float | None


class JobDetailOut(JobOut):
    """A job with its timings and its history."""

    timings: TimingsOut
    history: list[HistoryOut]


class JobListOut(BaseModel):
    """One page of jobs. With a search, ``search_scanned`` jobs were read (newest first).

    ``search_truncated``: the scan cap was reached; ``search_timed_out``: the search's time
    ran out first. Either way older matches may exist.

    ``total_is_estimate``: past 10,000 matches PostgreSQL estimates ``total`` (and ``pages``).
    """

    items: list[JobSummaryOut]
    total: int
    total_is_estimate: bool = False
    page: int
    per_page: int
    pages: int
    search_scanned: int | None = None
    search_truncated: bool = False
    search_timed_out: bool = Field(
        False, description="the search ran out of time: the matches are partial"
    )

    @classmethod
    def of(cls, listing: JobListing) -> JobListOut:
        """Build from a listing."""
        return cls(
            items=[JobSummaryOut.of(j) for j in listing.items],
            total=listing.total,
            total_is_estimate=listing.total_is_estimate,
            page=listing.page,
            per_page=listing.per_page,
            pages=listing.pages,
            search_scanned=listing.scanned,
            search_truncated=listing.truncated,
            search_timed_out=listing.timed_out,
        )


class BulkIn(BaseModel):
    """Which jobs a bulk action targets (retry defaults to failed jobs, cancel to waiting)."""

    state: str | None = Field(None, description="state, comma list, 'dead' or 'waiting'")
    queue: str | None = None
    task: str | None = None
    q: str | None = Field(None, description="text to find in args, kwargs or errors")
    limit: int = Field(1000, ge=1, le=1000)


class BulkOut(BaseModel):
    """How many jobs matched, and the ids that changed."""

    matched: int
    changed: list[int]
    refused: dict[int, str] | None = Field(
        default=None, description="a replay's refused jobs: id -> why it was left unchanged"
    )


class DeletedOut(BaseModel):
    """Whether a job was deleted (False: none, or it is running)."""

    deleted: bool


class QueueOut(BaseModel):
    """A queue: counts by state, paused, live workers and their total concurrency.

    ``estimated``: the states whose count is an estimate, not an exact count (PostgreSQL past
    10,000 jobs of the queue in one finished state); empty when all are exact.
    """

    name: str
    counts: dict[str, int]
    estimated: list[str] = []
    paused: bool
    concurrency: int
    workers: int


class ScheduleOut(BaseModel):
    """A recurring schedule and its next fire time."""

    name: str
    task: str
    cron: str
    timezone: str
    queue: str | None
    next_run_at: datetime | None
    catch_up: str = "skip"
    max_catch_up: int = 10
    catch_up_within: float | None = None
    overlap: str = "allow"
    last_fire_at: datetime | None = None
    """The newest fire time a scheduler handled (its history: ``/schedules/{name}/history``)."""
    paused: bool = False
    """An operator paused it: no fire time inserts a job until it is resumed."""

    @classmethod
    def of(cls, schedule: Schedule, next_run_at: datetime | None) -> ScheduleOut:
        """Build from a stored schedule and its next fire time (None if it cannot fire)."""
        return cls(
            name=schedule.name,
            task=schedule.task,
            cron=schedule.cron,
            timezone=schedule.timezone,
            queue=schedule.queue,
            next_run_at=next_run_at,
            catch_up=str(schedule.catch_up),
            max_catch_up=schedule.max_catch_up,
            catch_up_within=schedule.catch_up_within,
            overlap=str(schedule.overlap),
            last_fire_at=schedule.last_fire_at,
            paused=schedule.paused,
        )


class CronFireOut(BaseModel):
    """One record of a schedule's fire history: a planned time and what became of it.

    ``outcome``: ``inserted``, ``caught_up`` (inserted late, after missed fire times) or
    ``skipped`` (``reason`` says why; ``count`` > 1 for a summary of missed fire times).
    """

    planned_at: datetime
    outcome: str
    job_id: int | None
    count: int
    reason: str
    recorded_at: datetime | None


class TimelineOut(BaseModel):
    """Jobs completed and dead-lettered per minute, oldest minute first."""

    start: datetime
    minutes: list[datetime]
    completed: list[int]
    failed: list[int]

    @classmethod
    def of(cls, t: Timeline) -> TimelineOut:
        """Build from a timeline."""
        return cls(
            start=t.start,
            minutes=t.minutes,
            completed=t.completed,
            failed=t.failed,
        )


class WorkerOut(BaseModel):
    """A live worker."""

    id: str
    queues: dict[str, int]
    running: int
    heartbeat_at: datetime


class StatsOut(BaseModel):
    """Queues, workers and the last hour's throughput."""

    queues: list[QueueOut]
    workers: list[WorkerOut]
    timeline: TimelineOut


class ReasonOut(BaseModel):
    """One reason a job is not running now (see :mod:`taskward.explain`)."""

    code: str = Field(description="short and stable: scheduled, backoff, paused, ...")
    text: str = Field(description="the reason in plain words")
    data: dict[str, Any] = Field(description="the facts behind it (times as ISO 8601)")


class ExplanationOut(BaseModel):
    """Why a job is not running right now: every reason, in words and as data."""

    job: JobOut
    running: bool
    reasons: list[ReasonOut]
    at: datetime = Field(description="when the explanation was made")


class QueueLimitsOut(BaseModel):
    """A queue's limits as stored (null: no limit), and its hold."""

    queue: str
    global_limit: int | None = Field(
        description="at most this many of its jobs run at once, across every worker"
    )
    rate_limit: str | None = Field(
        default=None,
        description="at most that many of its jobs start per fixed window, e.g. '100/s'",
    )
    partition_by: str | None = Field(
        default=None,
        description="the queue is split by this argument ('kwarg:tenant', 'arg:0'); the limits "
        "apply to each key",
    )
    held_until: datetime | None = Field(
        default=None, description="no job of the queue starts before then (RateLimited)"
    )
    waits: dict[str, int] = Field(
        default_factory=dict,
        description="how many claims a limit turned away while jobs were due, by reason "
        "(held, global_limit, rate_limit), since the queue's limits were first set",
    )


class QueueLimitsIn(BaseModel):
    """A queue's new limits; they replace its old ones (null or absent: no such limit)."""

    model_config = ConfigDict(extra="forbid")

    global_limit: StrictInt | None = Field(
        default=None,
        description="at most this many of its jobs run at once, across every worker; "
        "null for no limit",
    )
    rate_limit: StrictStr | None = Field(
        default=None,
        description="at most that many of its jobs start per fixed window aligned to the "
        "epoch, across every worker: '100/s', '5000/m', '2/h', '10/5s'; null for no limit",
    )
    partition_by: StrictStr | StrictInt | None = Field(
        default=None,
        description="split the queue by a kwarg name ('tenant') or an args position (0): the "
        "limits then apply to each key, and keys take turns; null: not split",
    )


class QueueHoldIn(BaseModel):
    """Hold a queue back on every node (a hold only grows)."""

    model_config = ConfigDict(extra="forbid")

    seconds: StrictFloat | StrictInt = Field(description="how long no job of the queue starts")
    key: StrictStr | None = Field(
        default=None, description="hold only this key of a partitioned queue"
    )


class EventOut(BaseModel):
    """An event seen by this process."""

    name: str
    at: datetime
    job_id: int | None
    queue: str | None
    task: str | None
    data: dict[str, Any]


class WorkflowStepOut(BaseModel):
    """One step of a workflow: its name, job, state and the steps it waits for."""

    name: str
    job_id: int
    task: str
    queue: str
    state: str
    depends_on: list[str]
    on_failure: str
    finalizer: bool


class WorkflowOut(BaseModel):
    """A workflow: its id, name, overall state and steps (no arguments: see each job)."""

    id: int
    name: str | None
    state: str
    inserted_at: datetime
    steps: list[WorkflowStepOut]

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowOut:
        """The API's view of a stored workflow."""
        return cls.model_validate(record.to_dict())
