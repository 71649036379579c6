"""The admin API for workflows on every backend: read one, cancel one, explain a blocked step."""

from __future__ import annotations

import httpx

from taskward import TaskManager, chain


async def test_read_cancel_and_explain_a_workflow(tw: TaskManager, api: httpx.AsyncClient) -> None:
    @tw.task(queue="wf")
    async def step(n: int) -> int:
        return n

    flow = chain(step.s(1), step.s(2))
    flow.finally_(step.s(3), name="cleanup")
    record = await tw.enqueue_workflow(flow)
    answer = await api.get(f"/api/workflows/{record.id}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "running"
    assert [(s["name"], s["state"], s["depends_on"]) for s in body["steps"]] == [
        ("step", "pending", []),
        ("step.2", "blocked", ["step"]),
        ("cleanup", "blocked", ["step", "step.2"]),
    ]
    blocked = record.steps[1].job.id
    why = (await api.get(f"/api/jobs/{blocked}/explain")).json()
    [reason] = why["reasons"]
    assert reason["code"] == "blocked"
    assert reason["data"]["waiting_for"] == [
        {"job_id": record.steps[0].job.id, "task": step.name, "state": "pending"}
    ]
    cancelled = await api.post(f"/api/workflows/{record.id}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    states = [s["state"] for s in cancelled.json()["steps"]]
    assert states == ["cancelled", "cancelled", "pending"]
    missing = await api.get(f"/api/workflows/{record.id + 100}")
    assert missing.status_code == 404
