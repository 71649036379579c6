"""Cron slots are inserted by the elected leader only; a new leader picks up the slots."""

from __future__ import annotations

from taskward import FrozenClock, TaskManager
from taskward.runtime.maintenance import Leadership
from taskward.runtime.scheduler import CronScheduler


async def test_only_the_leader_inserts_cron_slots(tw: TaskManager, clock: FrozenClock) -> None:
    tw.clock = clock
    await tw.schedule_recurring_task("tick", "tests_support.jobs:add", cron="* * * * *", args=[1])

    def scheduler(holder: str) -> CronScheduler:
        leadership = Leadership(tw.backend, clock, holder, ttl=120)
        return CronScheduler(tw.backend, clock, make_job=tw.schedule_job, leadership=leadership)

    leader, follower = scheduler("node-a"), scheduler("node-b")
    assert await leader.leadership.is_leader()  # type: ignore[union-attr]
    clock.advance(61)
    await follower.run_once()
    assert (await tw.list_tasks()).total_entries == 0  # the follower inserted nothing
    await leader.run_once()
    inserted = (await tw.list_tasks()).total_entries
    assert inserted >= 1

    # The leader goes silent past its lease: the follower takes over and carries on,
    # and the slots the old leader inserted are not inserted twice.
    clock.advance(121)
    await follower.run_once()
    after = (await tw.list_tasks()).items
    fire_times = [job.scheduled_at for job in after]
    assert len(fire_times) == len(set(fire_times))
    assert len(after) > inserted
