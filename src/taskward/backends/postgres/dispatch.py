"""Direct dispatch: idle workers offer slots, and a producer hands one due job straight over.

An idle queue loop offers one slot (a row in the UNLOGGED ``taskward_offers``) while the
LISTEN connection is up; ``insert_job_dispatch`` (PL/pgSQL, migration 0005), used for one
plain due job with a small payload outside a caller's transaction, takes a standing offer
and inserts the job running, leased to that worker, whose listener receives it by NOTIFY.
A queue with a global limit is never dispatched (migration 0006): no worker offers a slot of
it, and the function stores its jobs pending, to be claimed and counted against the limit.
This module owns the offers and chooses the statement of a lone plain insert. A store that
refuses the dispatch statements (migration 0005 not applied, or no rights on the table)
switches dispatch off for the process, once, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Final

import psycopg

from taskward.backends.postgres import rows
from taskward.backends.postgres.connections import Connections
from taskward.backends.postgres.listener import Listener
from taskward.jobs import Job, JobState, NewJob

__all__ = ["DISPATCH_STATEMENTS", "NO_DISPATCH", "Offers", "plain_insert"]

logger = logging.getLogger(__name__)
# A NOTIFY payload holds at most 8,000 bytes; the dispatched row carries task, args and kwargs
# (at most 4 bytes a character) besides about 600 bytes of other columns.
DISPATCH_MAX_CHARS: Final = 1_500
DISPATCH_STATEMENTS: Final = frozenset({"insert_job_dispatch", "insert_job_probe"})
# The store refuses insert_job_dispatch: migration 0005 not applied (migrate_on_start=false)
# or a producer role without DELETE on taskward_offers. Dispatch is then switched off.
NO_DISPATCH: Final = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.InsufficientPrivilege,
)


def plain_insert(
    jobs: Sequence[NewJob], now: datetime, *, dispatch: bool | None
) -> tuple[str, dict[str, Any]]:
    """The one statement (name, parameters) inserting jobs that have no unique key.

    ``dispatch`` (None: never) for a lone plain job that is due, with a payload small enough
    for a NOTIFY: True, it may go straight to an idle worker (``insert_job_dispatch``);
    False, it looks whether one offers a slot (``insert_job_probe``).
    """
    if len(jobs) == 1:
        name, params = rows.insert_statement(jobs[0], now)
        if (
            dispatch is not None
            and name == "insert_job_basic"
            and jobs[0].state is JobState.PENDING
            and len(params["task"]) + len(params["args"]) + len(params["kwargs"])
            <= DISPATCH_MAX_CHARS
        ):
            return ("insert_job_dispatch" if dispatch else "insert_job_probe"), params
        return name, params
    return "insert_jobs", {"now": now, "rows": rows.insert_rows(jobs)}


class Offers:
    """The slots this process's workers offer, and whether dispatch is on for the process."""

    def __init__(self, connections: Connections, listener: Listener) -> None:
        self._connections = connections
        self._listener = listener
        self.enabled = True  # False once the store refused insert_job_dispatch
        self._seen: dict[str, bool] = {}  # by queue: did the last insert see an offer?

    def single_insert(self, jobs: Sequence[NewJob], now: datetime) -> tuple[str, dict[str, Any]]:
        """The insert of jobs without unique keys from the pool: may dispatch a lone job."""
        if not self.enabled or len(jobs) != 1:
            return plain_insert(jobs, now, dispatch=None)
        return plain_insert(jobs, now, dispatch=self._seen.get(jobs[0].queue, False))

    def note(self, name: str, jobs: Sequence[NewJob], found: list[Any]) -> None:
        """Remember whether the queue had a standing offer (the next insert dispatches then)."""
        if name in DISPATCH_STATEMENTS and found:
            self._seen[jobs[0].queue] = bool(found[0][3])

    def without_dispatch(
        self, name: str, exc: psycopg.Error, jobs: Sequence[NewJob], now: datetime
    ) -> tuple[str, dict[str, Any]]:
        """The insert to run again when ``exc`` refused a dispatch statement (else re-raise)."""
        if name not in DISPATCH_STATEMENTS:
            raise exc
        self.switch_off(exc)
        return plain_insert(jobs, now, dispatch=None)

    def switch_off(self, exc: psycopg.Error) -> None:
        """Insert without dispatch from now on: the store lacks migration 0005, or our rights."""
        was, self.enabled = self.enabled, False
        if not was:
            return
        logger.warning(
            "direct dispatch is off for this process (%s): run `taskward migrate`, or grant "
            "this role DELETE on taskward_offers; jobs are claimed as usual meanwhile",
            exc,
        )

    async def offer(
        self,
        *,
        worker_id: str,
        queue: str,
        lease_seconds: float,
        now: datetime,
        receive: Callable[[Job], None],
    ) -> bool:
        """Offer one slot of ``queue`` to producers while the LISTEN connection is up.

        Without it the dispatched job's NOTIFY would reach nobody (PgBouncer in transaction
        mode, a reconnect in progress): no offer then, and jobs are claimed as usual.
        """
        if not self._connections.config.prepare or not self.enabled:
            # prepare=false means PgBouncer in transaction mode: a LISTEN through it may well
            # "succeed" on a server connection that other clients then get.
            return False
        # Known before the listener is up: its first LISTEN then wakes this worker to offer.
        self._listener.receivers[worker_id] = receive
        if not self._listener.listening:
            self._listener.start()
            return False
        params = {
            "worker_id": worker_id, "queue": queue, "lease_seconds": lease_seconds, "now": now
        }  # fmt: skip
        try:
            # No row: the queue has a global limit, and its jobs are never dispatched.
            return await self._connections.execute("offer_slot", params) > 0
        except NO_DISPATCH as exc:
            self.switch_off(exc)
            return False

    async def withdraw(self, *, worker_id: str, queue: str) -> bool:
        """Take the offer back; False if a producer took it (its job is on its way)."""
        params = {"worker_id": worker_id, "queue": queue}
        try:
            found = await self._connections.fetchall("withdraw_slot", params)
        except NO_DISPATCH as exc:  # no DELETE right: it may have been taken, look for it
            self.switch_off(exc)
            return False
        return bool(found)

    async def dispatched_to(
        self, *, worker_id: str, queue: str, known: Collection[int]
    ) -> list[Job]:
        """The running jobs of ``queue`` leased to ``worker_id`` but not in ``known``."""
        params = {"worker_id": worker_id, "queue": queue, "known": list(known)}
        found = await self._connections.fetchall("dispatched_to", params)
        return [rows.job_from_row(row) for row in found]

    async def forget(self, worker_id: str) -> None:
        """Stop receiving for ``worker_id``, and remove any slot it still offers."""
        if self._listener.receivers.pop(worker_id, None) is not None and self.enabled:
            try:
                await self._connections.execute("remove_offers", {"id": worker_id})
            except NO_DISPATCH as exc:
                self.switch_off(exc)
