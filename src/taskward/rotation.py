"""Key rotation: every sealed value of a store sealed again with the first key of the ring.

After a new key is put first in ``encryption_keys`` (the old ones kept after it, so running
workers and stored jobs still open), :func:`rotate_keys` walks the store by ranges of job ids
and rewrites each sealed job holding an envelope of an older key, with ``Backend.reseal``:
fenced on the job's state, attempt and number of errors, so a job that changed meanwhile (a
worker finished it, an operator retried it) is left alone and counted in ``changed``; run
the rotation again until ``changed`` is 0. Then the old key can be dropped from the list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskward.backends.base import Backend
from taskward.encryption import EncryptionError, KeyRing
from taskward.errors import InvalidOptions
from taskward.jobs import Job, JobFilter, Reseal
from taskward.sealing import SEALED_KWARG, is_sealed, reseal

__all__ = ["MAX_BATCH", "RotationReport", "rotate_keys"]

logger = logging.getLogger("taskward")

MAX_BATCH = 1000
"""The most jobs read and written per store call (a page of ``list_jobs``)."""


@dataclass(slots=True)
class RotationReport:
    """What one rotation pass did, in jobs."""

    examined: int = 0
    """Jobs read."""
    sealed: int = 0
    """Sealed jobs among them."""
    resealed: int = 0
    """Sealed jobs rewritten with the first key."""
    changed: int = 0
    """Sealed jobs with an older key that changed between the read and the write: run again."""
    unreadable: list[int] = field(default_factory=list)
    """Ids of sealed jobs no key of the ring opens (sealed with a key no longer listed)."""

    @property
    def done(self) -> bool:
        """True when every sealed job this pass saw is sealed with the first key."""
        return self.changed == 0 and not self.unreadable


async def rotate_keys(backend: Backend, ring: KeyRing, *, batch_size: int = 500) -> RotationReport:
    """Seal again every sealed value of an older key, ``batch_size`` jobs at a time."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise InvalidOptions(f"batch_size must be an integer, not {batch_size!r}")
    if not 1 <= batch_size <= MAX_BATCH:
        raise InvalidOptions(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
    report = RotationReport()
    newest = await backend.list_jobs(JobFilter(per_page=1, sort_by="-id"))
    if not newest.items:
        return report
    last_id = newest.items[0].id
    # By ranges of ids, not by pages: a page's offset shifts when jobs before it are deleted
    # meanwhile (a prune, an operator), and the jobs shifted past it would never be read.
    # Jobs inserted after this began have greater ids and are sealed with the first key.
    for start in range(1, last_id + 1, batch_size):
        found = await backend.get_jobs(list(range(start, min(start + batch_size, last_id + 1))))
        rewrites = _rewrites(ring, found, report)
        if rewrites:
            written = await backend.reseal(rewrites)
            report.resealed += sum(written)
            report.changed += len(written) - sum(written)
    if report.unreadable:
        logger.warning(
            "key rotation: %d sealed jobs open with no listed key (first ids: %s)",
            len(report.unreadable),
            ", ".join(map(str, report.unreadable[:10])),
        )
    return report


def _rewrites(ring: KeyRing, jobs: Sequence[Job], report: RotationReport) -> list[Reseal]:
    """The rewrites of one page's sealed jobs that hold an envelope of an older key."""
    rewrites = []
    for job in jobs:
        report.examined += 1
        if not is_sealed(job):
            continue
        report.sealed += 1
        try:
            changes = reseal(ring, job)
        except (EncryptionError, ValueError):
            report.unreadable.append(job.id)
            continue
        if changes is not None:
            # The fence: every write that changes a sealed value changes one of these.
            rewrites.append(
                Reseal(
                    job_id=job.id,
                    state=job.state,
                    attempt=job.attempt,
                    errors_count=len(job.errors),
                    envelope=job.kwargs.get(SEALED_KWARG) if not job.args else None,
                    **changes,
                )
            )
    return rewrites
