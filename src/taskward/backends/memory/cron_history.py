"""Cron fire history and schedule state of the memory backend (the reference for issue 25).

:class:`MemoryCronHistory` owns, per schedule name, the records of what schedulers did with
each fire time (newest planned time first, at most ``keep``) and the schedule's state: the
newest fire time handled, the last job inserted and whether an operator paused it. The
backend's schedule methods keep the definitions; this class only ever adds the state to a
listed schedule and forgets a deleted one, so replacing a schedule keeps its history, state
and pause, as in the SQL stores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from taskward.jobs import CronFire, Schedule

__all__ = ["MemoryCronHistory"]


class MemoryCronHistory:
    """Fire records and last fire/job per schedule, in this process's memory."""

    def __init__(self) -> None:
        self._records: dict[str, list[CronFire]] = {}
        self._state: dict[str, tuple[datetime | None, int | None]] = {}
        self._paused: set[str] = set()

    def with_state(self, schedule: Schedule) -> Schedule:
        """Return ``schedule`` carrying its stored last fire time, last job id and pause."""
        last_fire_at, last_job_id = self._state.get(schedule.name, (None, None))
        return dataclasses.replace(
            schedule,
            last_fire_at=last_fire_at,
            last_job_id=last_job_id,
            paused=schedule.name in self._paused,
        )

    def set_paused(self, name: str, paused: bool) -> None:
        """Pause or resume schedule ``name`` (the caller knows it exists)."""
        if paused:
            self._paused.add(name)
        else:
            self._paused.discard(name)

    def forget(self, name: str) -> None:
        """Drop the history, state and pause of a deleted schedule."""
        self._records.pop(name, None)
        self._state.pop(name, None)
        self._paused.discard(name)

    def record(self, name: str, fires: Sequence[CronFire], *, now: datetime, keep: int) -> None:
        """Add ``fires`` (a planned time already recorded is kept as it was), then trim."""
        records = self._records.setdefault(name, [])
        seen = {record.planned_at for record in records}
        for fire in fires:
            if fire.planned_at in seen:
                continue
            seen.add(fire.planned_at)
            records.append(dataclasses.replace(fire, recorded_at=now))
        records.sort(key=lambda record: record.planned_at, reverse=True)
        del records[max(keep, 1) :]
        self._advance(name, fires)

    def _advance(self, name: str, fires: Sequence[CronFire]) -> None:
        """Move the last fire time forward (never back) and take the newest job id given.

        The job id only when this call's newest fire time is not older than the stored one: a
        stale scheduler recording an older round must not move ``last_job_id`` back.
        """
        if not fires:
            return
        last_fire_at, last_job_id = self._state.get(name, (None, None))
        newest = max(fire.planned_at for fire in fires)
        with_jobs = [fire for fire in fires if fire.job_id is not None]
        if with_jobs and (last_fire_at is None or newest >= last_fire_at):
            last_job_id = max(with_jobs, key=lambda fire: fire.planned_at).job_id
        if last_fire_at is None or newest > last_fire_at:
            last_fire_at = newest
        self._state[name] = (last_fire_at, last_job_id)

    def history(self, name: str, limit: int) -> list[CronFire]:
        """The newest ``limit`` records of ``name``, newest planned time first."""
        return list(self._records.get(name, [])[: max(limit, 0)])
