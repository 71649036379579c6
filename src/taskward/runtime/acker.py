"""Acker: writes job outcomes in batches, one ``finish`` call per batch.

Every write is fenced, so a worker that lost a lease cannot overwrite the outcome of the
rescued run: the store answers False for that outcome and the Acker logs it.
"""

from __future__ import annotations

import asyncio
import logging

from taskward.backends.base import Backend
from taskward.jobs import JobUpdate

logger = logging.getLogger(__name__)


class Acker:
    """Collects outcomes and writes them in batches, one ``finish`` call per batch.

    A batch the store refuses for a reason other than being unreachable (``OSError``, which
    includes ``BackendUnavailable``) is written again row by row: one outcome the store cannot
    take must not hold back every later one. An outcome refused while others of its batch were
    written is logged and dropped; its job stays ``running`` until its lease expires, and the
    Rescuer gives it an outcome then.
    """

    def __init__(self, backend: Backend, worker_id: str) -> None:
        self.backend = backend
        self.worker_id = worker_id
        self._pending: list[JobUpdate] = []
        self._lock = asyncio.Lock()

    def add(self, update: JobUpdate) -> None:
        """Queue one outcome for the next flush."""
        self._pending.append(update)

    async def flush(self) -> None:
        """Write every queued outcome; whoever holds the lock writes for the others too."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                written = await self._finish(batch)
            except OSError:
                # Keep them for the next flush: losing an outcome would re-run a finished job.
                self._pending[:0] = batch
                raise
            except Exception:
                logger.warning("writing %d outcome(s) failed; writing them one by one", len(batch))
                await self._finish_each(batch)
                return
        for update, ok in zip(batch, written, strict=True):
            _report(update, ok)

    async def _finish(self, updates: list[JobUpdate]) -> list[bool]:
        # Shielded: once a batch is handed to the store it completes even if the caller is
        # cancelled, so no outcome is dropped or written twice.
        return await asyncio.shield(self.backend.finish(updates, worker_id=self.worker_id))

    async def _finish_each(self, batch: list[JobUpdate]) -> None:
        refused: list[tuple[JobUpdate, Exception]] = []
        for n, update in enumerate(batch):
            try:
                (ok,) = await self._finish([update])
            except OSError:
                self._pending[:0] = [u for u, _ in refused] + batch[n:]  # the store went away
                raise
            except Exception as error:
                refused.append((update, error))
                continue
            _report(update, ok)
        if len(refused) == len(batch):
            # Every row failed: the store is at fault (disk full…), not a row. Keep them all.
            self._pending[:0] = batch
            raise refused[-1][1]
        for update, reason in refused:
            logger.error(
                "job %s: the store refused its outcome (%s); dropped, the job is rescued when "
                "its lease expires",
                update.job_id,
                update.state,
                exc_info=reason,
                extra={"job_id": update.job_id},
            )


def _report(update: JobUpdate, written: bool) -> None:
    if not written:
        logger.warning(
            "job %s: lease lost before its outcome (%s) was written; another run owns it",
            update.job_id,
            update.state,
            extra={"job_id": update.job_id},
        )
