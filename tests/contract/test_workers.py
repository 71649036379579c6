"""Contract: worker liveness records are upserted, listed by heartbeat, and removed."""

from __future__ import annotations

from dataclasses import replace

from taskward.backends import Backend
from taskward.jobs import WorkerInfo

from .helpers import NOW, assert_utc, at


def worker(worker_id: str, heartbeat_s: int, **overrides: object) -> WorkerInfo:
    fields: dict[str, object] = {
        "id": worker_id,
        "hostname": "host-1",
        "pid": 4242,
        "queues": {"default": 10, "emails": 2},
        "started_at": NOW,
        "heartbeat_at": at(heartbeat_s),
        "running": 3,
        **overrides,
    }
    return WorkerInfo(**fields)  # type: ignore[arg-type]


async def listed(backend: Backend, alive_since_s: int) -> list[WorkerInfo]:
    workers = await backend.list_workers(alive_since=at(alive_since_s))
    return sorted(workers, key=lambda w: w.id)


async def test_record_and_list_worker_round_trips_fields(backend: Backend) -> None:
    info = worker("w1", 10)
    await backend.record_worker(info)
    [stored] = await listed(backend, 0)
    assert stored == info
    assert stored.queues == {"default": 10, "emails": 2}
    assert_utc(stored.started_at, stored.heartbeat_at)


async def test_list_workers_filters_by_alive_since(backend: Backend) -> None:
    await backend.record_worker(worker("old", 10))
    await backend.record_worker(worker("edge", 50))
    await backend.record_worker(worker("new", 90))
    assert [w.id for w in await listed(backend, 50)] == ["edge", "new"]  # at or after
    assert [w.id for w in await listed(backend, 51)] == ["new"]
    assert await listed(backend, 100) == []


async def test_record_worker_upserts(backend: Backend) -> None:
    await backend.record_worker(worker("w1", 10, running=1))
    fresh = worker("w1", 70, running=5, queues={"default": 4})
    await backend.record_worker(fresh)
    assert await listed(backend, 0) == [fresh]


async def test_remove_worker(backend: Backend) -> None:
    await backend.record_worker(worker("w1", 10))
    await backend.record_worker(worker("w2", 10))
    await backend.remove_worker("w1")
    await backend.remove_worker("w1")  # idempotent
    await backend.remove_worker("never-seen")
    assert [w.id for w in await listed(backend, 0)] == ["w2"]


async def test_no_workers_at_first(backend: Backend) -> None:
    assert await backend.list_workers(alive_since=NOW) == []
    await backend.record_worker(replace(worker("w1", 0), running=0))
    assert len(await backend.list_workers(alive_since=NOW)) == 1
