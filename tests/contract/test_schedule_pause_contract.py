"""Contract: a schedule's pause (issue 26) is stored state, like its last fire time.

``set_schedule_paused`` pauses or resumes a schedule that exists (False for an unknown name);
``list_schedules`` reads it back; ``save_schedule`` (the app saving its schedules again at
start) keeps it, as it keeps ``last_fire_at``; deleting the schedule forgets it, so one saved
later under the same name starts unpaused.
"""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.jobs import CronFire, CronOutcome, Schedule

from .helpers import NOW, at


def schedule(name: str = "nightly", **overrides: object) -> Schedule:
    fields: dict[str, object] = {"name": name, "task": "app:report", "cron": "0 2 * * *"}
    fields.update(overrides)
    return Schedule(**fields)  # type: ignore[arg-type]


async def paused(backend: Backend) -> dict[str, bool]:
    return {s.name: s.paused for s in await backend.list_schedules()}


async def test_a_new_schedule_is_not_paused(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    assert await paused(backend) == {"nightly": False}


async def test_pause_then_resume_one_schedule(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    await backend.save_schedule(schedule("other"))
    assert await backend.set_schedule_paused("nightly", True) is True
    assert await paused(backend) == {"nightly": True, "other": False}
    assert await backend.set_schedule_paused("nightly", True) is True  # again: still paused
    assert await paused(backend) == {"nightly": True, "other": False}
    assert await backend.set_schedule_paused("nightly", False) is True
    assert await paused(backend) == {"nightly": False, "other": False}


async def test_saving_the_schedule_again_keeps_its_pause(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    await backend.set_schedule_paused("nightly", True)
    await backend.record_cron_fires(
        "nightly", [CronFire(planned_at=at(3600), outcome=CronOutcome.INSERTED, job_id=4)], now=NOW
    )
    # The app starting again saves its definition (paused=False in the value it passes).
    await backend.save_schedule(schedule(cron="30 2 * * *", paused=False))
    (found,) = await backend.list_schedules()
    assert (found.cron, found.paused, found.last_fire_at, found.last_job_id) == (
        "30 2 * * *",
        True,
        at(3600),
        4,
    )


async def test_save_does_not_pause_a_schedule(backend: Backend) -> None:
    # Only set_schedule_paused writes the flag: a value carrying paused=True saves unpaused.
    await backend.save_schedule(schedule(paused=True))
    assert await paused(backend) == {"nightly": False}


@pytest.mark.any_store
async def test_an_unknown_schedule_is_not_paused(backend: Backend) -> None:
    assert await backend.set_schedule_paused("never", True) is False
    assert await backend.set_schedule_paused("never", False) is False
    assert await backend.list_schedules() == []


async def test_deleting_a_schedule_forgets_its_pause(backend: Backend) -> None:
    await backend.save_schedule(schedule())
    await backend.set_schedule_paused("nightly", True)
    assert await backend.delete_schedule("nightly") is True
    assert await backend.set_schedule_paused("nightly", True) is False
    await backend.save_schedule(schedule())
    assert await paused(backend) == {"nightly": False}


async def test_a_name_with_odd_characters_pauses_alone(backend: Backend) -> None:
    odd = "reports/daily ünïcode|*?"
    await backend.save_schedule(schedule(odd))
    await backend.save_schedule(schedule("reports"))
    assert await backend.set_schedule_paused(odd, True) is True
    assert await paused(backend) == {odd: True, "reports": False}
