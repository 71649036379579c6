"""Cron catch-up and overlap (issue 25, item 2), on every store, with an injected clock.

An hourly schedule fires at 10:00; then no scheduler runs for over three hours (11:00, 12:00
and 13:00 pass); a newly started scheduler runs at 13:20, and a normal round at 14:00. For each
``catch_up`` setting the jobs inserted and the fire history are exactly what the policy says.
Overlap: the 10:00 job is claimed by a worker and still running at 11:00; each ``overlap``
setting inserts, skips or cancels as documented, and the history says so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskward import FrozenClock, JobState, TaskManager
from taskward.backoff import ConstantBackoff
from taskward.encryption import generate_key
from taskward.jobs import CronOutcome, Job, Schedule
from taskward.runtime.scheduler import CronScheduler
from taskward.sealing import SEALED_KWARG
from taskward.states import Completed, next_update

Out = CronOutcome
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def h(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


@pytest.fixture
async def cron_tw(manager_url: str) -> AsyncIterator[TaskManager]:
    clock = FrozenClock(h(9, 59, 30))
    async with TaskManager(manager_url, clock=clock) as manager:
        yield manager


def scheduler(tw: TaskManager) -> CronScheduler:
    """A freshly started scheduler: it knows only what the store knows."""
    return CronScheduler(
        tw.backend,
        tw.clock,
        make_job=tw.schedule_job,
        events=tw.events,
        cancel_job=lambda job_id, reason: tw.cancel_task(job_id, reason=reason),
    )


async def at(tw: TaskManager, when: datetime) -> None:
    """Move the clock to ``when`` and run one round of a new scheduler there."""
    tw.clock.set(when)  # type: ignore[attr-defined]
    await scheduler(tw).run_once()


async def history(tw: TaskManager) -> list[tuple[Any, ...]]:
    return [
        (f.planned_at, f.outcome, f.job_id is not None, f.count, f.reason)
        for f in await tw.cron_history("hourly")
    ]


async def jobs_by_fire(tw: TaskManager) -> dict[datetime, Job]:
    items = (await tw.list_tasks(per_page=100)).items
    return {job.scheduled_at: job for job in items}


def missed(count: int, first: str, last: str, why: str) -> str:
    if count == 1:
        return f"missed: no scheduler ran at {first}; {why}"
    return f"missed: {count} fire times from {first} to {last} while no scheduler ran; {why}"


T11, T12, T13 = (
    "2026-03-02T11:00:00+00:00",
    "2026-03-02T12:00:00+00:00",
    "2026-03-02T13:00:00+00:00",
)

CASES = {
    "skip": ({}, [], [(h(13), 3, missed(3, T11, T13, "catch_up=skip"))]),
    "latest": (
        {"catch_up": "latest"},
        [h(13)],
        [(h(12), 2, missed(2, T11, T12, "catch_up=latest (only the newest)"))],
    ),
    "all": ({"catch_up": "all"}, [h(11), h(12), h(13)], []),
    "all_bounded": (
        {"catch_up": "all", "max_catch_up": 2},
        [h(12), h(13)],
        [(h(11), 1, missed(1, T11, T11, "catch_up=all (max_catch_up=2)"))],
    ),
    "all_within": (
        {"catch_up": "all", "catch_up_within": 2 * 3600},  # at 13:20: younger than 11:20
        [h(12), h(13)],
        [(h(11), 1, missed(1, T11, T11, "catch_up=all (max_catch_up=10, catch_up_within=7200s)"))],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_scheduler_down_for_three_hours_catches_up_by_policy(
    cron_tw: TaskManager, case: str
) -> None:
    tw = cron_tw
    options, caught_up, skipped = CASES[case]
    await tw.schedule_recurring_task(
        "hourly", "tests_support.jobs:add", cron="0 * * * *", args=[1], **options
    )
    await at(tw, h(10, 0, 10))
    await at(tw, h(10, 30))  # a quiet round writes nothing
    assert [(f[0], f[1]) for f in await history(tw)] == [(h(10), Out.INSERTED)]

    await at(tw, h(13, 20))  # restarted after 3h20m: 11:00, 12:00 and 13:00 were missed
    await at(tw, h(13, 20, 30))  # a second round finds nothing new
    await at(tw, h(14, 0, 5))  # the next normal fire runs

    jobs = await jobs_by_fire(tw)
    assert sorted(jobs) == sorted([h(10), *caught_up, h(14)])
    assert all(job.state is JobState.PENDING for job in jobs.values())
    expected = [(h(14), Out.INSERTED, True, 1, ""), (h(10), Out.INSERTED, True, 1, "")]
    expected += [(t, Out.CAUGHT_UP, True, 1, "") for t in caught_up]
    expected += [(t, Out.SKIPPED, False, n, reason) for t, n, reason in skipped]
    assert await history(tw) == sorted(expected, key=lambda row: row[0], reverse=True)
    recorded = {f.planned_at: f.job_id for f in await tw.cron_history("hourly")}
    assert all(recorded[t] == jobs[t].id for t in jobs)
    (state,) = await tw.list_recurring_tasks()
    assert (state.last_fire_at, state.last_job_id) == (h(14), jobs[h(14)].id)


async def test_a_month_down_writes_one_summary_row(cron_tw: TaskManager) -> None:
    tw = cron_tw
    await tw.schedule_recurring_task(
        "hourly", "tests_support.jobs:add", cron="* * * * *", args=[1], catch_up="latest"
    )
    await at(tw, h(10, 0, 10))
    await at(tw, h(10, 0, 10) + timedelta(days=30))
    found = await tw.cron_history("hourly")
    assert [(f.outcome, f.count) for f in found] == [
        (Out.INSERTED, 1),  # 10:00 on day 30, on time
        (Out.CAUGHT_UP, 1),  # 09:59, the newest missed
        (Out.SKIPPED, 30 * 24 * 60 - 2),  # every minute between the first 10:00 and 09:59
        (Out.INSERTED, 1),
    ]
    assert (await tw.list_tasks()).total_entries == 3


async def claim(tw: TaskManager) -> Job:
    now = tw.clock.now()
    (job,) = await tw.backend.fetch(
        queue="default", limit=1, worker_id="w1", now=now, lease_until=now + timedelta(hours=9)
    )
    return job


async def finish(tw: TaskManager, job: Job) -> None:
    update = next_update(job, Completed(None), tw.clock.now(), ConstantBackoff(1))
    assert await tw.backend.finish([update], worker_id="w1") == [True]


@pytest.mark.parametrize("overlap", ["allow", "skip", "cancel_running"])
async def test_overlap_with_a_long_running_job(cron_tw: TaskManager, overlap: str) -> None:
    tw = cron_tw
    await tw.schedule_recurring_task(
        "hourly", "tests_support.jobs:add", cron="0 * * * *", args=[1], overlap=overlap
    )
    await at(tw, h(10, 0, 5))
    first = await claim(tw)  # the 10:00 run is still running at 11:00
    await at(tw, h(11, 0, 5))
    jobs = await jobs_by_fire(tw)
    rows = await history(tw)
    if overlap == "skip":
        assert sorted(jobs) == [h(10)]
        reason = f"previous run {first.id} still running (running)"
        assert rows[0] == (h(11), Out.SKIPPED, False, 1, reason)
        await finish(tw, first)  # once it has ended, the next fire time runs again
        await at(tw, h(12, 0, 5))
        assert sorted(await jobs_by_fire(tw)) == [h(10), h(12)]
        assert (await history(tw))[0][:3] == (h(12), Out.INSERTED, True)
        return
    assert sorted(jobs) == [h(10), h(11)]
    note = f"cancel of previous run {first.id} requested (running)"
    assert rows[0] == (h(11), Out.INSERTED, True, 1, note if overlap == "cancel_running" else "")
    previous = await tw.get_task_status(first.id)
    assert previous.state is JobState.RUNNING
    assert previous.cancel_requested is (overlap == "cancel_running")


async def test_a_previous_job_still_waiting_counts_as_running(cron_tw: TaskManager) -> None:
    tw = cron_tw
    cancelled: list[int] = []
    tw.on("job.cancelled", lambda event: cancelled.append(event.job_id))
    await tw.schedule_recurring_task(
        "hourly", "tests_support.jobs:add", cron="0 * * * *", args=[1], overlap="cancel_running"
    )
    await at(tw, h(10, 0, 5))
    await at(tw, h(11, 0, 5))  # the 10:00 job never started: cancelled now, as by an operator
    jobs = await jobs_by_fire(tw)
    assert jobs[h(10)].state is JobState.CANCELLED
    assert jobs[h(11)].state is JobState.PENDING
    assert cancelled == [jobs[h(10)].id]
    assert (await history(tw))[0] == (
        h(11),
        Out.INSERTED,
        True,
        1,
        f"cancel of previous run {jobs[h(10)].id} requested (pending)",
    )


async def test_a_job_that_no_longer_builds_is_recorded_once(cron_tw: TaskManager) -> None:
    tw = cron_tw

    @tw.task(name="needs_one")
    def needs_one(a: int) -> int:
        return a

    # Saved by an older release (or by hand) with arguments the task no longer accepts.
    await tw.backend.save_schedule(Schedule(name="hourly", task="needs_one", cron="0 * * * *"))
    await at(tw, h(10, 0, 5))
    await at(tw, h(10, 0, 6))  # not retried every round: the fire time was handled
    (record,) = await tw.cron_history("hourly")
    assert (record.planned_at, record.outcome, record.job_id) == (h(10), Out.SKIPPED, None)
    assert record.reason == "its job does not build (InvalidJob); see the scheduler's log"
    assert (await tw.list_tasks()).total_entries == 0


async def test_a_build_failure_keeps_argument_values_out_of_the_history(
    cron_tw: TaskManager, caplog: pytest.LogCaptureFixture
) -> None:
    tw = cron_tw
    regions = {"eu": "eu-1"}

    @tw.task(name="by_region", partition_key=lambda region: regions[region])
    def by_region(region: str) -> str:
        return region

    # The key function's error quotes the argument: the history (read by the dashboard, the
    # API and the CLI) gets the exception type only, the log keeps the whole message.
    secret = "tenant-SECRET-7731"
    await tw.schedule_recurring_task("hourly", "by_region", cron="0 * * * *", args=["eu"])
    # A region since dropped (as saved by an older release, or by hand).
    (saved,) = await tw.list_recurring_tasks()
    await tw.backend.save_schedule(replace(saved, args=[secret]))
    await at(tw, h(10, 0, 5))
    (record,) = await tw.cron_history("hourly")
    assert (record.outcome, record.job_id) == (Out.SKIPPED, None)
    assert record.reason == "its job does not build (InvalidOptions); see the scheduler's log"
    assert secret in caplog.text


async def test_a_schedule_of_an_encrypted_task_runs_sealed(manager_url: str) -> None:
    """The schedule keeps its clear arguments; each fire's job is sealed like any job."""
    secret = "CARD-4111-cron-SECRET"
    clock = FrozenClock(h(9, 59, 30))
    keys = [generate_key()]
    async with TaskManager(manager_url, clock=clock, encryption_keys=keys) as tw:

        @tw.task(name="charge_hourly", encrypted=True, max_attempts=1)
        def charge_hourly(card: str, amount: int) -> str:
            return f"charged {amount} to {card[-6:]}"

        await tw.schedule_recurring_task(
            "hourly", "charge_hourly", cron="0 * * * *", args=[secret], kwargs={"amount": 12}
        )
        (stored,) = await tw.list_recurring_tasks()
        assert (stored.args, stored.kwargs) == ([secret], {"amount": 12})
        await at(tw, h(10, 0, 5))
        (record,) = await tw.cron_history("hourly")
        assert (record.outcome, record.reason) == (Out.INSERTED, "")
        assert record.job_id is not None
        raw = await tw.backend.get(record.job_id)  # the row as stored, not opened
        assert raw.args == []
        assert list(raw.kwargs) == [SEALED_KWARG]
        assert secret not in json.dumps([raw.args, raw.kwargs])
        await tw.drain(timeout=60)
        done = await tw.get_task_status(record.job_id)
        assert done.state is JobState.COMPLETED
        assert (done.args, done.kwargs, done.result) == (
            [secret],
            {"amount": 12},
            "charged 12 to SECRET",
        )


@pytest.mark.parametrize("overlap", ["skip", "cancel_running"])
async def test_overlap_sees_every_job_of_a_catch_up_burst(
    cron_tw: TaskManager, overlap: str
) -> None:
    tw = cron_tw
    await tw.schedule_recurring_task(
        "hourly",
        "tests_support.jobs:add",
        cron="0 * * * *",
        args=[1],
        catch_up="all",
        overlap=overlap,
    )
    await at(tw, h(10, 0, 5))
    await finish(tw, await claim(tw))
    await at(tw, h(13, 20))  # 11:00, 12:00 and 13:00 caught up in one round
    now = tw.clock.now()
    burst = await tw.backend.fetch(
        queue="default", limit=3, worker_id="w1", now=now, lease_until=now + timedelta(hours=9)
    )
    assert sorted(job.scheduled_at for job in burst) == [h(11), h(12), h(13)]
    by_fire = {job.scheduled_at: job for job in burst}
    for fire_at in (h(12), h(13)):  # the newest runs ended; the 11:00 one is still running
        await finish(tw, by_fire[fire_at])
    slow = by_fire[h(11)]
    await at(tw, h(14, 0, 5))
    rows = await history(tw)
    if overlap == "skip":
        assert sorted(await jobs_by_fire(tw)) == [h(10), h(11), h(12), h(13)]
        assert rows[0] == (
            h(14),
            Out.SKIPPED,
            False,
            1,
            f"previous run {slow.id} still running (running)",
        )
        return
    assert h(14) in await jobs_by_fire(tw)
    note = f"cancel of previous run {slow.id} requested (running)"
    assert rows[0] == (h(14), Out.INSERTED, True, 1, note)
    assert (await tw.get_task_status(slow.id)).cancel_requested


async def test_cancel_running_cancels_nothing_when_the_new_job_does_not_build(
    cron_tw: TaskManager,
) -> None:
    tw = cron_tw
    await tw.schedule_recurring_task(
        "hourly", "tests_support.jobs:add", cron="0 * * * *", args=[1], overlap="cancel_running"
    )
    await at(tw, h(10, 0, 5))
    first = await claim(tw)
    (saved,) = await tw.list_recurring_tasks()
    await tw.backend.save_schedule(replace(saved, args=[]))  # add(x) needs its argument
    await at(tw, h(11, 0, 5))
    previous = await tw.get_task_status(first.id)
    assert (previous.state, previous.cancel_requested) == (JobState.RUNNING, False)
    assert (await history(tw))[0] == (
        h(11),
        Out.SKIPPED,
        False,
        1,
        "its job does not build (InvalidJob); see the scheduler's log",
    )
