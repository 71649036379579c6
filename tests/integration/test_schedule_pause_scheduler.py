"""Pausing and resuming a schedule (issue 26) with the scheduler, on every store.

An hourly schedule fires at 10:00, is paused at 10:30 and resumed at 13:20: schedulers run
through 11:00, 12:00 and 13:00 and insert nothing, write nothing; the resume records those
three fire times as one skipped summary (reason "paused") and moves ``last_fire_at`` to 13:00,
so even ``catch_up="all"`` inserts no burst; 14:00 fires as usual. A pause survives the app
saving its schedules again at start. "Run now" applies ``overlap`` as a fire does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.errors import ScheduleNotFound, ScheduleOverlap
from taskward.jobs import CronOutcome, Job
from taskward.runtime.scheduler import CronScheduler
from taskward.schedule_ops import find_schedule, run_schedule_now

Out = CronOutcome
DAY = datetime(2026, 3, 2, tzinfo=UTC)
TASK = "tests_support.jobs:add"


def h(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


@pytest.fixture
async def cron_tw(manager_url: str) -> AsyncIterator[TaskManager]:
    clock = FrozenClock(h(9, 59, 30))
    async with TaskManager(manager_url, clock=clock) as manager:
        yield manager


async def at(tw: TaskManager, when: datetime) -> None:
    """Move the clock to ``when`` and run one round of a freshly started scheduler there."""
    tw.clock.set(when)  # type: ignore[attr-defined]
    await CronScheduler(
        tw.backend,
        tw.clock,
        make_job=tw.schedule_job,
        cancel_job=lambda job_id, reason: tw.cancel_task(job_id, reason=reason),
    ).run_once()


async def fired(tw: TaskManager) -> list[datetime]:
    return sorted(job.scheduled_at for job in (await tw.list_tasks(per_page=100)).items)


async def register(tw: TaskManager, **options: object) -> None:
    """What the app does at every start: save its schedule's definition."""
    await tw.schedule_recurring_task("hourly", TASK, cron="0 * * * *", args=[1], **options)


async def test_a_paused_schedule_fires_nothing_and_resumes_without_a_burst(
    cron_tw: TaskManager,
) -> None:
    tw = cron_tw
    await register(tw, catch_up="all")
    await at(tw, h(10, 0, 10))
    tw.clock.set(h(10, 30))  # type: ignore[attr-defined]
    paused = await tw.pause_schedule("hourly")
    assert (paused.name, paused.paused, paused.last_fire_at) == ("hourly", True, h(10))
    for hour in (11, 12, 13):
        await at(tw, h(hour, 0, 5))
    assert await fired(tw) == [h(10)]
    assert [f.planned_at for f in await tw.cron_history("hourly")] == [h(10)]  # nothing written

    tw.clock.set(h(13, 20))  # type: ignore[attr-defined]
    resumed = await tw.resume_schedule("hourly")
    assert (resumed.paused, resumed.last_fire_at) == (False, h(13))
    newest = (await tw.cron_history("hourly"))[0]
    assert (newest.planned_at, newest.outcome, newest.count, newest.job_id) == (
        h(13),
        Out.SKIPPED,
        3,
        None,
    )
    assert newest.reason == (
        "paused: 3 fire times from 2026-03-02T11:00:00+00:00 to 2026-03-02T13:00:00+00:00 "
        "passed while paused; not caught up at resume"
    )
    await at(tw, h(13, 20, 30))  # catch_up="all" finds nothing missed: no burst
    assert await fired(tw) == [h(10)]
    await at(tw, h(14, 0, 5))
    assert await fired(tw) == [h(10), h(14)]
    outcomes = [(f.planned_at, f.outcome) for f in await tw.cron_history("hourly")]
    assert outcomes == [(h(14), Out.INSERTED), (h(13), Out.SKIPPED), (h(10), Out.INSERTED)]


async def test_a_pause_survives_the_app_registering_its_schedules_again(
    cron_tw: TaskManager,
) -> None:
    tw = cron_tw
    await register(tw)
    await at(tw, h(10, 0, 10))
    await tw.pause_schedule("hourly")
    await register(tw, catch_up="latest")  # a deploy: the app starts and saves its definition
    (schedule,) = await tw.list_recurring_tasks()
    assert (schedule.paused, schedule.catch_up, schedule.last_fire_at) == (True, "latest", h(10))
    await at(tw, h(11, 0, 5))
    assert await fired(tw) == [h(10)]


async def test_resume_just_after_a_first_fire_time_does_not_insert_it(
    cron_tw: TaskManager,
) -> None:
    # Never fired, so no last_fire_at: 10:00 passed while paused, and at 10:00:30 it is still
    # within the on-time window a round would insert: the resume's record is what stops it.
    tw = cron_tw
    await register(tw)
    await tw.pause_schedule("hourly")
    await at(tw, h(10, 0, 5))
    tw.clock.set(h(10, 0, 30))  # type: ignore[attr-defined]
    await tw.resume_schedule("hourly")
    await at(tw, h(10, 0, 40))
    assert await fired(tw) == []
    (record,) = await tw.cron_history("hourly")
    assert (record.planned_at, record.outcome, record.count) == (h(10), Out.SKIPPED, 1)
    assert record.reason.startswith("paused: fire time 2026-03-02T10:00:00+00:00 passed")
    await at(tw, h(11, 0, 5))
    assert await fired(tw) == [h(11)]


async def test_pause_and_resume_twice_change_nothing_more(cron_tw: TaskManager) -> None:
    tw = cron_tw
    await register(tw)
    await at(tw, h(10, 0, 10))
    await tw.pause_schedule("hourly")
    assert (await tw.pause_schedule("hourly")).paused is True
    tw.clock.set(h(11, 30))  # type: ignore[attr-defined]
    await tw.resume_schedule("hourly")
    tw.clock.set(h(12, 30))  # type: ignore[attr-defined]
    again = await tw.resume_schedule("hourly")  # not paused: records nothing
    assert (again.paused, again.last_fire_at) == (False, h(11))
    assert [f.planned_at for f in await tw.cron_history("hourly")] == [h(11), h(10)]


async def test_an_unknown_schedule_raises(cron_tw: TaskManager) -> None:
    with pytest.raises(ScheduleNotFound):
        await cron_tw.pause_schedule("never")
    with pytest.raises(ScheduleNotFound):
        await cron_tw.resume_schedule("never")


@pytest.mark.parametrize("manager_url", ["sqlite"], indirect=True)
def test_the_sync_twins(manager_url: str) -> None:
    tw = TaskManager(manager_url, clock=FrozenClock(h(9)))
    try:
        tw.sync.schedule_recurring_task("hourly", TASK, cron="0 * * * *", args=[1])
        assert tw.sync.pause_schedule("hourly").paused is True
        assert tw.sync.resume_schedule("hourly").paused is False
        with pytest.raises(ScheduleNotFound):
            tw.sync.pause_schedule("never")
    finally:
        tw.sync.shutdown()


# -- run now and overlap -----------------------------------------------------------------------


async def claim(tw: TaskManager) -> Job:
    now = tw.clock.now()
    (job,) = await tw.backend.fetch(
        queue="default", limit=1, worker_id="w1", now=now, lease_until=now + timedelta(hours=9)
    )
    return job


async def run_now(tw: TaskManager, asked: list[tuple[int, str]] | None = None) -> Job:
    """Run the schedule now as the API does; ``asked`` collects the cancels it requests."""

    async def cancel(job_id: int, reason: str) -> Job:
        if asked is not None:
            asked.append((job_id, reason))
        return await tw.cancel_task(job_id, reason=reason)

    schedule = await find_schedule(tw.backend, "hourly")
    inserted = await run_schedule_now(
        tw.backend, schedule, tw.schedule_job, tw.clock.now(), cancel_job=cancel
    )
    return inserted.job


@pytest.mark.parametrize("overlap", ["allow", "skip", "cancel_running"])
async def test_run_now_applies_overlap(cron_tw: TaskManager, overlap: str) -> None:
    tw = cron_tw
    await register(tw, overlap=overlap)
    await at(tw, h(10, 0, 5))
    first = await claim(tw)  # the 10:00 run is still running at 10:20
    tw.clock.set(h(10, 20))  # type: ignore[attr-defined]
    if overlap == "skip":
        with pytest.raises(ScheduleOverlap) as refused:
            await run_now(tw)
        assert str(refused.value) == (
            f"schedule 'hourly' not run now: overlap=skip and its previous run {first.id} "
            "still running (running)"
        )
        assert await fired(tw) == [h(10)]
        return
    asked: list[tuple[int, str]] = []
    manual = await run_now(tw, asked)
    assert manual.meta["run_now"] is True
    assert manual.state is JobState.PENDING
    assert await fired(tw) == [h(10), h(10, 20)]
    previous = await tw.get_task_status(first.id)
    assert previous.state is JobState.RUNNING
    assert previous.cancel_requested is (overlap == "cancel_running")
    if overlap == "cancel_running":
        reason = (
            "cancelled by schedule 'hourly': run now at 2026-03-02T10:20:00+00:00 came while "
            "it was running (overlap=cancel_running)"
        )
        assert asked == [(first.id, reason)]
    else:
        assert asked == []


async def test_run_now_with_skip_runs_once_the_previous_run_ended(cron_tw: TaskManager) -> None:
    tw = cron_tw
    await register(tw, overlap="skip")
    await at(tw, h(10, 0, 5))
    (job,) = (await tw.list_tasks()).items
    await tw.cancel_task(job.id)  # still waiting, so cancelled now: it has ended
    tw.clock.set(h(10, 20))  # type: ignore[attr-defined]
    assert (await run_now(tw)).meta["run_now"] is True


async def test_a_paused_schedule_can_still_be_run_now(cron_tw: TaskManager) -> None:
    tw = cron_tw
    await register(tw)
    await tw.pause_schedule("hourly")
    tw.clock.set(h(10, 20))  # type: ignore[attr-defined]
    manual = await run_now(tw)
    assert manual.scheduled_at == h(10, 20)
    assert (await tw.list_recurring_tasks())[0].paused is True


async def test_pause_and_resume_are_events_naming_the_schedule(cron_tw: TaskManager) -> None:
    tw = cron_tw
    await register(tw)
    seen: list[tuple[str, object]] = []
    tw.on("*", lambda event: seen.append((event.name, event.data.get("schedule"))))
    await tw.pause_schedule("hourly")
    await tw.pause_schedule("hourly")  # paused already: no change, no event
    await tw.resume_schedule("hourly")
    await tw.resume_schedule("hourly")
    assert seen == [("cron.paused", "hourly"), ("cron.resumed", "hourly")]


async def test_with_skip_a_manual_run_still_going_blocks_the_next_run_and_the_next_fire(
    cron_tw: TaskManager,
) -> None:
    tw = cron_tw
    await register(tw, overlap="skip")
    tw.clock.set(h(9, 30))  # type: ignore[attr-defined]
    manual = await run_now(tw)  # no fire record names it: the judge must still see it
    tw.clock.set(h(9, 40))  # type: ignore[attr-defined]
    with pytest.raises(ScheduleOverlap, match=f"previous run {manual.id} still running"):
        await run_now(tw)
    await at(tw, h(10, 0, 5))  # the 10:00 fire comes while the manual run waits
    assert await fired(tw) == [h(9, 30)]
    newest = (await tw.cron_history("hourly"))[0]
    assert (newest.planned_at, newest.outcome) == (h(10), Out.SKIPPED)
    await tw.cancel_task(manual.id)  # ended: the next fire runs
    await at(tw, h(11, 0, 5))
    assert await fired(tw) == [h(9, 30), h(11)]


async def test_cancel_running_cancels_a_manual_run_too(cron_tw: TaskManager) -> None:
    tw = cron_tw
    await register(tw, overlap="cancel_running")
    tw.clock.set(h(9, 30))  # type: ignore[attr-defined]
    manual = await run_now(tw)
    await at(tw, h(10, 0, 5))
    assert (await tw.get_task_status(manual.id)).state is JobState.CANCELLED
    assert await fired(tw) == [h(9, 30), h(10)]


@pytest.mark.parametrize("overlap", ["allow", "skip", "cancel_running"])
async def test_a_double_click_within_one_second_answers_the_first_job(
    cron_tw: TaskManager, overlap: str
) -> None:
    tw = cron_tw
    await register(tw, overlap=overlap)
    tw.clock.set(h(9, 30) + timedelta(microseconds=100_000))  # type: ignore[attr-defined]
    first = await run_now(tw)
    tw.clock.set(h(9, 30) + timedelta(microseconds=900_000))  # type: ignore[attr-defined]
    schedule = await find_schedule(tw.backend, "hourly")
    again = await run_schedule_now(tw.backend, schedule, tw.schedule_job, tw.clock.now())
    assert again.duplicate is True
    assert again.job.id == first.id
    assert (await tw.get_task_status(first.id)).state is JobState.PENDING  # not cancelled
    assert await fired(tw) == [h(9, 30)]


async def test_a_job_with_unreadable_meta_does_not_stop_the_judge(
    cron_tw: TaskManager, manager_url: str
) -> None:
    if not manager_url.startswith("sqlite"):
        pytest.skip("meta is written unreadable with SQL, on SQLite")
    tw = cron_tw
    await register(tw, overlap="skip")
    stray = await tw.enqueue_task(TASK, args=[1])
    path = manager_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:  # as someone with SQL access could
        db.execute("UPDATE taskward_jobs SET meta = '[1,2]' WHERE id = ?", (stray.id,))
    tw.clock.set(h(9, 30))  # type: ignore[attr-defined]
    manual = await run_now(tw)  # the stray job is no manual run: nothing overlaps
    assert manual.id != stray.id
    await at(tw, h(10, 0, 5))  # the fire judges the same jobs: the manual run blocks it
    newest = (await tw.cron_history("hourly"))[0]
    assert (newest.planned_at, newest.outcome) == (h(10), Out.SKIPPED)
