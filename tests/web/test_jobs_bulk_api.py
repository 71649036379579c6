"""The API's bulk actions by exact ids, and the bulk delete (issue 26), on every backend."""

from __future__ import annotations

from datetime import timedelta

import httpx

from taskward import JobState, TaskManager
from web.jobs_bulk_seed import TASK, seed_dead


async def states_of(tw: TaskManager, ids: list[int]) -> list[JobState]:
    return [(await tw.get_task_status(i)).state for i in ids]


async def test_retry_and_cancel_by_exact_ids(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed_dead(tw, timeouts=4, values=0, discarded=1)
    picked = [*ids["timeout"][:2], *ids["discard"]]
    answer = await api.post("/api/jobs/bulk/retry", json={"ids": [*picked, picked[0]]})
    assert answer.status_code == 200
    assert answer.json() == {"matched": 3, "changed": picked, "skipped": {}}
    assert await states_of(tw, picked) == [JobState.PENDING] * 3  # a discarded one by id too
    assert await states_of(tw, ids["timeout"][2:]) == [JobState.FAILED] * 2
    # Again: they are pending now, so each is skipped, with why.
    again = (await api.post("/api/jobs/bulk/retry", json={"ids": picked[:1]})).json()
    assert again == {"matched": 1, "changed": [], "skipped": {str(picked[0]): "it is pending now"}}
    cancelled = (await api.post("/api/jobs/bulk/cancel", json={"ids": picked[1:]})).json()
    assert cancelled["changed"] == picked[1:]
    assert await states_of(tw, picked[1:]) == [JobState.CANCELLED] * 2
    gone = (await api.post("/api/jobs/bulk/cancel", json={"ids": [987654]})).json()
    assert gone == {"matched": 1, "changed": [], "skipped": {"987654": "it no longer exists"}}


async def test_ids_refuse_a_filter_and_more_than_1000(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    for path in ("retry", "cancel", "delete"):
        for extra in ({"state": "failed"}, {"queue": "ops"}, {"q": "x"}):
            mixed = await api.post(f"/api/jobs/bulk/{path}", json={"ids": [1], **extra})
            assert mixed.status_code == 400, (path, extra)
            assert "either ids or a filter" in mixed.json()["detail"]
        too_many = await api.post(f"/api/jobs/bulk/{path}", json={"ids": list(range(1, 1002))})
        assert too_many.status_code == 422
        assert (await api.post(f"/api/jobs/bulk/{path}", json={"ids": []})).status_code == 422
        assert (await api.post(f"/api/jobs/bulk/{path}", json={"ids": [0]})).status_code == 422
    replay = await api.post("/api/jobs/bulk/retry", json={"ids": [1], "note": "why"})
    assert replay.status_code == 400


async def test_bulk_delete_never_deletes_a_running_job(
    tw: TaskManager, api: httpx.AsyncClient
) -> None:
    ids = await seed_dead(tw, timeouts=2, values=0, discarded=1)
    waiting = [job.id for job in await tw.enqueue_many(TASK, [[n, "timeout"] for n in range(2)])]
    now = tw.clock.now()
    (running,) = await tw.backend.fetch(
        queue="ops", limit=1, worker_id="w", now=now, lease_until=now + timedelta(seconds=60)
    )
    pending = [i for i in waiting if i != running.id]
    by_id = (await api.post("/api/jobs/bulk/delete", json={"ids": [running.id, *pending]})).json()
    assert by_id["changed"] == pending
    assert list(by_id["skipped"]) == [str(running.id)]
    assert "running" in by_id["skipped"][str(running.id)]
    assert (await tw.get_task_status(running.id)).state is JobState.RUNNING
    # By filter: the dead letters by default; a running job even when asked for.
    dead = (await api.post("/api/jobs/bulk/delete", json={})).json()
    assert sorted(dead["changed"]) == sorted(ids["timeout"] + ids["discard"])
    asked = (await api.post("/api/jobs/bulk/delete", json={"state": "running"})).json()
    assert asked == {"matched": 0, "changed": [], "skipped": {}}
    assert (await tw.get_task_status(running.id)).state is JobState.RUNNING
    assert (await tw.list_tasks()).total_entries == 1


async def test_bulk_delete_by_filter_and_search(tw: TaskManager, api: httpx.AsyncClient) -> None:
    ids = await seed_dead(tw, timeouts=2, values=2, discarded=0)
    found = (await api.post("/api/jobs/bulk/delete", json={"q": "bad value"})).json()
    assert sorted(found["changed"]) == sorted(ids["value"])
    assert await states_of(tw, ids["timeout"]) == [JobState.FAILED] * 2
