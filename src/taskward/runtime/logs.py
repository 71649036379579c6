"""The worker's job log lines (spec 10.3): INFO start/complete, WARNING retry, ERROR dead letter.

Each record carries ``job_id``, ``task``, ``queue`` and ``attempt`` in its extras so structured
log handlers can index them. Task names come from the store, where anyone with write access may
have put escape sequences: messages show them escaped (:func:`taskward.text.inert`), the extras
keep the raw values.
"""

from __future__ import annotations

import logging

from taskward.jobs import Job, JobState, JobUpdate
from taskward.text import inert

logger = logging.getLogger("taskward.worker")


def _extra(job: Job) -> dict[str, object]:
    return {"job_id": job.id, "task": job.task, "queue": job.queue, "attempt": job.attempt}


def log_start(job: Job) -> None:
    """Log that a job started."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "job %s (%s) started, attempt %d/%d",
            job.id,
            inert(job.task),
            job.attempt,
            job.max_attempts,
            extra=_extra(job),
        )


def log_outcome(job: Job, update: JobUpdate, seconds: float) -> None:
    """Log how an attempt ended, at the level its outcome deserves."""
    if update.state is JobState.COMPLETED and not logger.isEnabledFor(logging.INFO):
        return  # the common case, once per job: build nothing
    extra = {**_extra(job), "state": update.state.value, "duration": seconds}
    error = update.error
    reason = f"{error.kind}: {error.message}" if error else ""
    match update.state:
        case JobState.COMPLETED:
            logger.info(
                "job %s (%s) completed in %.3fs", job.id, inert(job.task), seconds, extra=extra
            )
        case JobState.RETRYABLE:
            assert update.scheduled_at is not None
            logger.warning(
                "job %s (%s) attempt %d/%d failed (%s); retry at %s",
                job.id,
                inert(job.task),
                job.attempt,
                job.max_attempts,
                reason,
                update.scheduled_at.isoformat(),
                extra=extra,
            )
        case JobState.FAILED | JobState.DISCARDED:
            logger.error(
                "job %s (%s) moved to the dead letters as %s after attempt %d: %s\n%s",
                job.id,
                inert(job.task),
                update.state.value,
                job.attempt,
                reason,
                (error.traceback or "") if error else "",
                extra=extra,
            )
        case JobState.CANCELLED:
            logger.info("job %s (%s) cancelled: %s", job.id, inert(job.task), reason, extra=extra)
        case JobState.SCHEDULED:
            logger.info(
                "job %s (%s) snoozed until %s",
                job.id,
                inert(job.task),
                update.scheduled_at,
                extra=extra,
            )
        case _:  # pragma: no cover - next_update yields no other state
            logger.info("job %s (%s) is now %s", job.id, inert(job.task), update.state, extra=extra)
