"""The taskward exception tree and the outcome signals a job may raise.

Every error that taskward raises at its edge is a :class:`TaskwardError`, so callers can catch
one base class. Errors about bad input are raised *before* anything is written.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskward.jobs import ErrorRecord, Job


class TaskwardError(Exception):
    """Base class of every error taskward raises."""


class JobNotFound(TaskwardError, LookupError):
    """No job with the given id exists (it may have been pruned)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found (it never existed or was cleaned up)")
        self.job_id = job_id


class ScheduleNotFound(TaskwardError, LookupError):
    """No recurring schedule has the given name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no recurring schedule named {name!r}")
        self.name = name


class WorkflowNotFound(TaskwardError, LookupError):
    """No workflow has the given id."""

    def __init__(self, workflow_id: int) -> None:
        super().__init__(f"no workflow with id {workflow_id}")
        self.workflow_id = workflow_id


class ScheduleOverlap(TaskwardError):
    """Run now refused: the schedule's ``overlap`` is ``skip`` and its previous run is active."""

    def __init__(self, name: str, note: str) -> None:
        super().__init__(f"schedule {name!r} not run now: overlap=skip and its {note}")
        self.name = name
        self.note = note

    def __reduce__(self) -> tuple[type[ScheduleOverlap], tuple[str, str]]:
        # Rebuilt from its two values, not the message (so it survives a pickle round trip).
        return (type(self), (self.name, self.note))


class JobRunning(TaskwardError):
    """The job is running, so it cannot be deleted: cancel it first, then delete it."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} is running: cancel it first, then delete it")
        self.job_id = job_id


class UnknownTask(TaskwardError, LookupError):
    """The task name is not registered here (a worker never imports what a stored name says).

    At enqueue: a name that is neither registered nor a well-formed ``module:function``.
    """


class InvalidJob(TaskwardError, ValueError):
    """The job or its options are invalid; nothing was written."""


class InvalidOptions(InvalidJob):
    """An option (queue name, priority, max_attempts, delay, timeout…) is out of range."""


class PayloadTooLarge(InvalidJob):
    """The encoded args/kwargs exceed the configured size limit."""


class NotSerializable(InvalidJob, TypeError):
    """Args, kwargs or a result cannot be encoded as JSON (taskward never pickles)."""


class InvalidCron(InvalidJob):
    """A cron expression or time zone is invalid."""


class NotSupported(TaskwardError):
    """The configured backend does not support the requested feature."""


class BackendUnavailable(TaskwardError, ConnectionError):
    """The backend (database, server) cannot be reached; nothing was written."""


class PortalClosed(TaskwardError, RuntimeError):
    """``manager.sync`` was shut down: its blocking calls are refused, or were cancelled."""


class JobFailed(TaskwardError):
    """The awaited job ended ``failed`` (no attempt left, or an error that allows no retry).

    ``job`` is the job as stored; ``error`` its last :class:`~taskward.jobs.ErrorRecord`
    (kind, message, traceback), or None if it has none. Raised by ``wait_for`` and
    ``job.wait()``; the job is not changed.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.error: ErrorRecord | None = job.errors[-1] if job.errors else None
        reason = f"{self.error.kind}: {self.error.message}" if self.error else "no error recorded"
        super().__init__(f"job {job.id} ({job.task}) ended {job.state.value}: {reason}")

    def __reduce__(self) -> tuple[type[JobFailed], tuple[Job]]:
        # Rebuilt from the job, not the message (a process pool pickles what a call raised).
        return (type(self), (_plain(self.job),))


class JobDiscarded(JobFailed):
    """The awaited job ended ``discarded`` (a dead letter: the job or its policy gave up)."""


class JobCancelled(TaskwardError):
    """The awaited job ended ``cancelled`` (by an operator, the job itself, or its workflow).

    ``job`` is the job as stored; ``error`` its last error record (the cancel's reason).
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.error: ErrorRecord | None = job.errors[-1] if job.errors else None
        reason = f": {self.error.message}" if self.error else ""
        super().__init__(f"job {job.id} ({job.task}) was cancelled{reason}")

    def __reduce__(self) -> tuple[type[JobCancelled], tuple[Job]]:
        # Rebuilt from the job, not the message (a process pool pickles what a call raised).
        return (type(self), (_plain(self.job),))


class WaitTimeout(TaskwardError, TimeoutError):
    """The awaited job had not ended within the timeout; it is left as it was.

    Both a :class:`TaskwardError` and the builtin :class:`TimeoutError`.
    """

    def __init__(self, job_id: int, timeout: float) -> None:
        super().__init__(f"job {job_id} has not ended within {timeout:g} s (it was not changed)")
        self.job_id = job_id
        self.timeout = timeout

    def __reduce__(self) -> tuple[type[WaitTimeout], tuple[int, float]]:
        # Rebuilt from its two values, not the message (so it survives a pickle round trip).
        return (type(self), (self.job_id, self.timeout))


def _plain(job: Job) -> Job:
    """``job`` as a plain :class:`~taskward.jobs.Job` (a BoundJob's manager is left out).

    A pickle must never carry the manager: it holds connections and locks.
    """
    from taskward.jobs import Job  # at call time: jobs.py imports this module

    if type(job) is Job:
        return job
    return Job(**{name: getattr(job, name) for name in job.__dataclass_fields__})


class JobSignal(Exception):
    """Base of the outcome signals a job function may raise to choose its own outcome."""


class Snooze(JobSignal):
    """Raise inside a job to run it again after ``seconds``, without spending an attempt.

    ``seconds`` must be a finite number >= 0; a delay beyond 100 years is capped to it.
    """

    def __init__(self, seconds: float) -> None:
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            value = math.nan
        # `not 0 <= value < inf` also refuses NaN, which every comparison answers False.
        if isinstance(seconds, bool) or not 0 <= value < math.inf:
            raise InvalidOptions(f"Snooze seconds must be a finite number >= 0, got {seconds!r}")
        super().__init__(f"snoozed for {seconds}s")
        self.seconds = value


class RateLimited(Snooze):
    """Raise inside a job when an upstream said "not now" (an HTTP 429 with ``Retry-After``).

    The job runs again after ``retry_after`` seconds without spending an attempt, like
    :class:`Snooze`, **and** its queue is held back for as long on every node: no job of the
    queue starts anywhere before then, so the other workers stop calling the upstream too.
    In a partitioned queue only the job's key is held (its tenant, its API host), unless
    ``whole_queue=True``.
    """

    def __init__(self, retry_after: float, *, whole_queue: bool = False) -> None:
        super().__init__(retry_after)
        self.retry_after = self.seconds
        self.whole_queue = bool(whole_queue)


class Cancel(JobSignal):
    """Raise inside a job to stop it for good, in state ``cancelled``."""

    def __init__(self, reason: str = "cancelled by the job") -> None:
        super().__init__(reason)
        self.reason = reason


class Discard(JobSignal):
    """Raise inside a job to move it to the dead letters (``discarded``) without retrying."""

    def __init__(self, reason: str = "discarded by the job") -> None:
        super().__init__(reason)
        self.reason = reason
