"""Contract: recurring schedules are saved (upserted by name), listed by name and deleted."""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.jobs import Schedule

from .helpers import NOW, assert_utc


def schedule(name: str, **overrides: object) -> Schedule:
    fields: dict[str, object] = {"name": name, "task": "app:report", "cron": "0 * * * *"}
    fields.update(overrides)
    return Schedule(**fields)  # type: ignore[arg-type]


async def test_save_and_list_round_trips_every_field(backend: Backend) -> None:
    full = schedule(
        "nightly",
        cron="30 2 * * *",
        timezone="Europe/Paris",
        args=[1, "x"],
        kwargs={"full": True, "to": ["a@b.c"]},
        queue="reports",
        priority=2,
        max_attempts=4,
        created_at=NOW,
    )
    minimal = schedule("hourly")
    await backend.save_schedule(full)
    await backend.save_schedule(minimal)
    assert await backend.list_schedules() == [minimal, full]
    stored = (await backend.list_schedules())[1]
    assert_utc(stored.created_at)


async def test_list_schedules_is_sorted_by_name(backend: Backend) -> None:
    for name in ["m", "z", "a"]:
        await backend.save_schedule(schedule(name))
    assert [s.name for s in await backend.list_schedules()] == ["a", "m", "z"]


async def test_save_schedule_replaces_by_name(backend: Backend) -> None:
    await backend.save_schedule(schedule("nightly", cron="0 1 * * *", args=[1]))
    replacement = schedule("nightly", cron="0 3 * * *", args=[2], queue="q")
    await backend.save_schedule(replacement)
    assert await backend.list_schedules() == [replacement]


async def test_delete_schedule(backend: Backend) -> None:
    await backend.save_schedule(schedule("a"))
    await backend.save_schedule(schedule("b"))
    assert await backend.delete_schedule("a") is True
    assert await backend.delete_schedule("a") is False
    assert await backend.delete_schedule("never") is False
    assert [s.name for s in await backend.list_schedules()] == ["b"]


@pytest.mark.any_store
async def test_no_schedules_at_first(backend: Backend) -> None:
    assert await backend.list_schedules() == []
