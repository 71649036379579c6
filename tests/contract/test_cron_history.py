"""Contract: a schedule's fire history and state (issue 25): written, read newest first,
bounded, kept when the schedule is replaced, and deleted with the schedule.

``record_cron_fires`` also keeps the schedule's ``last_fire_at`` (never moving back) and
``last_job_id`` (the newest record carrying a job, unless a newer fire time is already stored),
read back by ``list_schedules``; a planned time recorded twice (two schedulers on one slot)
keeps its first record.
"""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.jobs import CatchUp, CronFire, CronOutcome, Overlap, Schedule

from .helpers import NOW, at

Out = CronOutcome


def schedule(name: str = "hourly", **overrides: object) -> Schedule:
    fields: dict[str, object] = {"name": name, "task": "app:report", "cron": "0 * * * *"}
    fields.update(overrides)
    return Schedule(**fields)  # type: ignore[arg-type]


def fire(hour: int, outcome: CronOutcome = Out.INSERTED, **fields: object) -> CronFire:
    return CronFire(planned_at=at(hour * 3600), outcome=outcome, **fields)  # type: ignore[arg-type]


async def only(backend: Backend, name: str) -> Schedule:
    (found,) = [s for s in await backend.list_schedules() if s.name == name]
    return found


async def test_records_read_back_newest_first_with_every_field(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    written = [
        fire(0, Out.INSERTED, job_id=7),
        fire(2, Out.SKIPPED, reason="previous run 7 still running (running)"),
        fire(1, Out.CAUGHT_UP, job_id=9),
    ]
    await backend.record_cron_fires("hourly", written, now=at(10_000))
    found = await backend.cron_history("hourly")
    assert [(f.planned_at, f.outcome, f.job_id, f.reason, f.count) for f in found] == [
        (at(7200), Out.SKIPPED, None, "previous run 7 still running (running)", 1),
        (at(3600), Out.CAUGHT_UP, 9, "", 1),
        (at(0), Out.INSERTED, 7, "", 1),
    ]
    assert {f.recorded_at for f in found} == {at(10_000)}
    assert (await backend.cron_history("hourly", limit=1))[0].planned_at == at(7200)


async def test_a_summary_record_keeps_its_count(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    summary = fire(3, Out.SKIPPED, reason="missed: 4 fire times", count=4)
    await backend.record_cron_fires("hourly", [summary], now=NOW)
    (found,) = await backend.cron_history("hourly")
    assert (found.count, found.reason, found.job_id) == (4, "missed: 4 fire times", None)


async def test_history_is_trimmed_to_the_newest_records(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    for hour in range(12):
        await backend.record_cron_fires("hourly", [fire(hour, job_id=hour + 1)], now=NOW, keep=5)
    found = await backend.cron_history("hourly")
    assert [f.planned_at for f in found] == [at(h * 3600) for h in range(11, 6, -1)]
    # One call with more than `keep` records keeps the newest of them too.
    await backend.record_cron_fires("hourly", [fire(h) for h in range(20, 30)], now=NOW, keep=3)
    assert [f.planned_at for f in await backend.cron_history("hourly")] == [
        at(h * 3600) for h in (29, 28, 27)
    ]


async def test_a_planned_time_recorded_twice_keeps_its_first_record(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    await backend.record_cron_fires("hourly", [fire(1, job_id=5)], now=NOW)
    await backend.record_cron_fires("hourly", [fire(1, Out.SKIPPED, reason="again")], now=at(9))
    (found,) = await backend.cron_history("hourly")
    assert (found.outcome, found.job_id, found.recorded_at) == (Out.INSERTED, 5, NOW)


async def test_state_follows_the_records_and_never_moves_back(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    assert (await only(backend, "hourly")).last_fire_at is None
    await backend.record_cron_fires("hourly", [fire(1, job_id=11), fire(2, job_id=12)], now=NOW)
    state = await only(backend, "hourly")
    assert (state.last_fire_at, state.last_job_id) == (at(7200), 12)
    # A skip moves the fire time on and keeps the last job; an older record moves nothing back.
    await backend.record_cron_fires("hourly", [fire(3, Out.SKIPPED, reason="x")], now=NOW)
    await backend.record_cron_fires("hourly", [fire(0, Out.SKIPPED, reason="late")], now=NOW)
    state = await only(backend, "hourly")
    assert (state.last_fire_at, state.last_job_id) == (at(3 * 3600), 12)


async def test_a_stale_scheduler_does_not_move_the_last_job_back(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    await backend.record_cron_fires("hourly", [fire(5, job_id=50)], now=NOW)
    # A second scheduler, behind the first, records an older fire time with its job late.
    await backend.record_cron_fires("hourly", [fire(3, job_id=30)], now=NOW)
    state = await only(backend, "hourly")
    assert (state.last_fire_at, state.last_job_id) == (at(5 * 3600), 50)
    # The same planned time again (two schedulers on one slot) may name the job; newer ones do.
    await backend.record_cron_fires("hourly", [fire(5, job_id=50)], now=NOW)
    await backend.record_cron_fires("hourly", [fire(4, job_id=40), fire(6, job_id=60)], now=NOW)
    state = await only(backend, "hourly")
    assert (state.last_fire_at, state.last_job_id) == (at(6 * 3600), 60)


async def test_replacing_a_schedule_keeps_history_and_state(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    await backend.record_cron_fires("hourly", [fire(1, job_id=3)], now=NOW)
    replaced = schedule(
        cron="30 * * * *",
        catch_up=CatchUp.ALL,
        max_catch_up=4,
        catch_up_within=7200.0,
        overlap=Overlap.CANCEL_RUNNING,
    )
    await backend.save_schedule(replaced)
    stored = await only(backend, "hourly")
    assert (stored.cron, stored.catch_up, stored.max_catch_up) == ("30 * * * *", "all", 4)
    assert (stored.catch_up_within, stored.overlap) == (7200.0, "cancel_running")
    assert (stored.last_fire_at, stored.last_job_id) == (at(3600), 3)
    assert len(await backend.cron_history("hourly")) == 1


async def test_history_is_deleted_with_the_schedule(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    await backend.save_schedule(schedule("other"))
    await backend.record_cron_fires("hourly", [fire(1, job_id=3)], now=NOW)
    await backend.record_cron_fires("other", [fire(1, job_id=4)], now=NOW)
    assert await backend.delete_schedule("hourly")
    assert await backend.cron_history("hourly") == []
    # Saved again under the same name: a fresh schedule, without the old state or records.
    await backend.save_schedule(schedule())
    fresh = await only(backend, "hourly")
    assert (fresh.last_fire_at, fresh.last_job_id) == (None, None)
    assert await backend.cron_history("hourly") == []
    assert [f.job_id for f in await backend.cron_history("other")] == [4]


async def test_nothing_is_recorded_for_a_missing_schedule(backend: Backend) -> None:
    await backend.record_cron_fires("ghost", [fire(1, job_id=3)], now=NOW)
    assert await backend.cron_history("ghost") == []
    assert await backend.list_schedules() == []


@pytest.mark.any_store
async def test_no_history_for_an_unknown_schedule(backend: Backend) -> None:
    assert await backend.cron_history("never") == []
    await backend.record_cron_fires("never", [], now=NOW)
