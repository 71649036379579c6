"""Acker: writes job outcomes in batches, one ``finish`` call per batch.

Every write is fenced, so a worker that lost a lease cannot overwrite the outcome of the
rescued run: the store answers False for that outcome and the Acker logs it. A write whose
reply was lost (the connection dropped after the commit) is sent again and refused by the
same fence; the Acker then reads the job back, so that it does not blame another run.
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
        self._unsure: set[tuple[int, int]] = set()
        """(job id, attempt) of outcomes sent in a write that failed: maybe stored already."""
        self._held: set[int] = set()
        """Jobs whose outcome is queued or being written: the heartbeat keeps them leased."""

    @property
    def held(self) -> frozenset[int]:
        """Ids of the jobs whose outcome this Acker holds and has not yet seen written."""
        return frozenset(self._held)

    def add(self, update: JobUpdate) -> None:
        """Queue one outcome for the next flush."""
        self._pending.append(update)
        self._held.add(update.job_id)

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
                self._unsure.update(map(_key, batch))
                raise
            except Exception:
                logger.warning("writing %d outcome(s) failed; writing them one by one", len(batch))
                await self._finish_each(batch)
                return
        await self._report(batch, written)

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
                self._unsure.add(_key(update))
                raise
            except Exception as error:
                refused.append((update, error))
                continue
            await self._report([update], [ok])
        if len(refused) == len(batch):
            # Every row failed: the store is at fault (disk full…), not a row. Keep them all.
            self._pending[:0] = batch
            raise refused[-1][1]
        for update, reason in refused:
            self._unsure.discard(_key(update))
            self._held.discard(update.job_id)
            logger.error(
                "job %s: the store refused its outcome (%s); dropped, the job is rescued when "
                "its lease expires",
                update.job_id,
                update.state,
                exc_info=reason,
                extra={"job_id": update.job_id},
            )

    async def _report(self, updates: list[JobUpdate], written: list[bool]) -> None:
        """Log each outcome the fence refused: the lease was lost, or it was stored already."""
        for update, ok in zip(updates, written, strict=True):
            unsure = _key(update) in self._unsure
            self._unsure.discard(_key(update))
            self._held.discard(update.job_id)
            if ok:
                continue
            if unsure and await self._stored_already(update):
                logger.info(
                    "job %s: its outcome (%s) was stored before the store's reply was lost",
                    update.job_id,
                    update.state,
                    extra={"job_id": update.job_id},
                )
                continue
            logger.warning(
                "job %s: lease lost before its outcome (%s) was written; another run owns it",
                update.job_id,
                update.state,
                extra={"job_id": update.job_id},
            )

    async def _stored_already(self, update: JobUpdate) -> bool:
        """True if the job holds this very outcome, written by this worker at this attempt."""
        try:
            job = await self.backend.get(update.job_id)
        except Exception:
            return False  # gone or unreadable: the warning is the safer report
        attempt = update.attempt - 1 if update.refund_attempt else update.attempt
        return (job.state, job.attempt, job.attempted_by) == (update.state, attempt, self.worker_id)


def _key(update: JobUpdate) -> tuple[int, int]:
    return (update.job_id, update.attempt)
