"""Item 7: three cron schedulers on one store (one host name, three processes' worth of
holders) over 48 simulated hours spanning both DST changes of Europe/Berlin. The leader is
paused past its lease (SIGSTOP), comes back as a zombie for a while, then dies (SIGKILL); the
clock jumps forward seven months and later two hours backwards. Time is injected: each tick
moves a FrozenClock and calls the live schedulers' ``run_once`` in a random order, which is
what their processes would do; a stopped or killed process is simply not called.

Every slot is inserted exactly once, no slot is missed across the leadership change, and the
backwards jump inserts nothing until the clock is past where it was (no storm of re-inserts,
no rescue of leases that merely look older).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reliability.harness import report
from taskward import FrozenClock, JobState, TaskManager
from taskward.backends import open_backend
from taskward.cron import CronExpression
from taskward.runtime.maintenance import Leadership, Rescuer
from taskward.runtime.scheduler import CronScheduler

ZONE = "Europe/Berlin"
SCHEDULES = {"quarter": "*/15 * * * *", "nightly": "30 2 * * *", "three": "0 3 * * *"}
TICK, TTL, LATENESS = 120.0, 120.0, 300.0  # a new leader looks back further than a lease
SPRING = datetime(2026, 3, 28, 12, tzinfo=UTC)  # DST starts 2026-03-29 01:00 UTC
AUTUMN = datetime(2026, 10, 24, 12, tzinfo=UTC)  # DST ends 2026-10-25 01:00 UTC


@pytest.fixture
async def managers(manager_url: str, clock: FrozenClock) -> AsyncIterator[list[TaskManager]]:
    """Three managers (three processes) on one store; memory:// shares one backend."""
    shared = open_backend(manager_url) if manager_url.startswith("memory") else None
    tws = [
        TaskManager(manager_url, backend=shared, clock=clock, sqlite_synchronous="NORMAL")
        for _ in range(3)
    ]
    for tw in tws:
        await tw.open()
    yield tws
    for tw in tws:
        await tw.close()


class Cluster:
    """Three schedulers and the clock they share."""

    def __init__(self, tws: list[TaskManager], clock: FrozenClock) -> None:
        self.clock = clock
        self.rng = random.Random(11)
        self.schedulers = [
            CronScheduler(
                tw.backend,
                clock,
                make_job=tw.schedule_job,
                max_lateness=LATENESS,
                leadership=Leadership(tw.backend, clock, f"cronhost:{100 + k}:{k}", ttl=TTL),
            )
            for k, tw in enumerate(tws)
        ]
        self.live = list(self.schedulers)
        self.latest = clock.now()

    async def tick(self) -> None:
        self.clock.advance(TICK)
        self.latest = max(self.latest, self.clock.now())
        for scheduler in self.rng.sample(self.live, len(self.live)):
            await scheduler.run_once()

    async def leader(self) -> CronScheduler:
        for scheduler in self.live:
            assert scheduler.leadership is not None
            if await scheduler.leadership.is_leader():
                return scheduler
        raise AssertionError("no leader")


def expected(start: datetime, end: datetime) -> set[tuple[str, str]]:
    return {
        (name, fire.isoformat())
        for name, cron in SCHEDULES.items()
        for fire in CronExpression.parse(cron, ZONE).fires_between(start, end)
    }


async def slots(tw: TaskManager) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    page = 1
    while items := (await tw.list_tasks(page=page, per_page=1000, sort_by="id")).items:
        found.update((j.meta["schedule"], j.meta["fire_at"]) for j in items if j.meta)
        page += 1
    return found


async def test_three_schedulers_insert_each_slot_once_across_dst_and_failover(
    managers: list[TaskManager], clock: FrozenClock
) -> None:
    tw = managers[0]
    for name, cron in SCHEDULES.items():
        await tw.schedule_recurring_task(
            name, "tests_support.jobs:add", cron=cron, timezone=ZONE, args=[1]
        )
    clock.set(SPRING)
    cluster = Cluster(managers, clock)
    want = expected(SPRING + timedelta(seconds=TICK - LATENESS), SPRING + timedelta(hours=24))

    # Spring day: the leader is SIGSTOPped at the DST gap, resumed as a zombie, then killed.
    for _ in range(int(13 * 3600 / TICK)):
        await cluster.tick()
    old = await cluster.leader()
    cluster.live.remove(old)  # SIGSTOP: it misses 5 ticks, more than its lease
    for _ in range(5):
        await cluster.tick()
    new = await cluster.leader()
    assert new is not old
    cluster.live.append(old)  # SIGCONT: the zombie runs again, but no longer leads
    before = await slots(tw)
    await old.run_once()
    assert await slots(tw) == before
    for _ in range(10):
        await cluster.tick()
    cluster.live.remove(old)  # SIGKILL
    for _ in range(int(11 * 3600 / TICK) - 15):
        await cluster.tick()

    # Autumn day, seven months on (a forward jump: no burst of the missed slots), and a jump
    # two hours backwards in the middle of it.
    clock.set(AUTUMN)
    want |= expected(AUTUMN + timedelta(seconds=TICK - LATENESS), AUTUMN + timedelta(hours=24))
    for _ in range(int(10 * 3600 / TICK)):
        await cluster.tick()
    before_jump, furthest = await slots(tw), clock.now()
    running = await jump_backwards(tw, clock)
    while clock.now() + timedelta(seconds=TICK) <= furthest:
        await cluster.tick()
    assert await slots(tw) == before_jump  # nothing re-inserted while time repeats itself
    assert (await tw.get_task_status(running)).state is JobState.RUNNING  # nor rescued
    while clock.now() < AUTUMN + timedelta(hours=24):
        await cluster.tick()

    found = await slots(tw)
    duplicates = sorted(slot for slot, n in found.items() if n > 1)
    assert duplicates == []
    assert set(found) == want  # every slot, none missed across the failover
    nightly = Counter(
        datetime.fromisoformat(fire).astimezone(ZoneInfo(ZONE)).date().isoformat()
        for name, fire in found
        if name == "nightly"
    )
    assert nightly["2026-10-25"] == 1  # 02:30 happens twice that night; the job once
    assert nightly["2026-03-29"] == 1  # 02:30 never happens that night; the job once
    report(
        "cron",
        backend=tw.backend.url.split(":")[0],
        schedulers=3,
        simulated_hours=48,
        slots=len(found),
        duplicates=len(duplicates),
        missed=len(want - set(found)),
    )


async def jump_backwards(tw: TaskManager, clock: FrozenClock) -> int:
    """Lease a job, move the clock two hours back; a Rescuer round must leave it alone."""
    job = await tw.enqueue_task("tests_support.jobs:add", args=[0], queue="leased")
    now = clock.now()
    (claimed,) = await tw.backend.fetch(
        queue="leased", limit=1, worker_id="w", now=now, lease_until=now + timedelta(seconds=30)
    )
    assert claimed.id == job.id
    clock.set(now - timedelta(hours=2))
    rescuer = Rescuer(
        tw.backend, clock, 1, leadership=None, resolve=tw._lookup, default_policy=tw.default_policy
    )
    await rescuer.run_once()
    return job.id
