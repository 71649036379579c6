"""The Releaser (the workflow safety net) walks the blocked steps batch by batch.

Each run recounts one batch and keeps the backend's cursor for the next, so a stuck step
behind more legitimately blocked steps than a batch holds is still reached; at the end of
the walk the cursor goes back to 0 and the next run starts over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskward.backends.memory import MemoryBackend
from taskward.backoff import ConstantBackoff
from taskward.clock import FrozenClock
from taskward.graph import NewStep, NewWorkflow, WorkflowRecord, step_meta
from taskward.jobs import JobState, NewJob
from taskward.runtime.maintenance import Releaser
from taskward.states import Failed, next_update

S = JobState
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def step(name: str, depends_on: tuple[int, ...] = (), *, max_attempts: int = 3) -> NewStep:
    meta = step_meta({}, workflow=0, name=name, passes="none", dependents=True)
    job = NewJob(
        task="tests:noop",
        queue=name[0],
        args=[],
        kwargs={},
        priority=0,
        max_attempts=max_attempts,
        scheduled_at=NOW,
        state=S.BLOCKED if depends_on else S.PENDING,
        meta=meta,
    )
    return NewStep(name=name, job=job, depends_on=depends_on)


async def stuck_step(backend: MemoryBackend) -> WorkflowRecord:
    """A workflow whose step "y" is blocked though nothing holds it back any more."""
    flow = NewWorkflow(name="stuck", steps=(step("x", max_attempts=1), step("y", (0,))))
    record = await backend.insert_workflow(flow, now=NOW)
    [x] = await backend.fetch(
        queue="x", limit=1, worker_id="w", now=NOW, lease_until=NOW + timedelta(minutes=1)
    )
    update = next_update(x, Failed("ValueError", "boom"), NOW, ConstantBackoff(1))
    assert await backend.finish([update], worker_id="w") == [True]
    await backend.retry(record.step("y").job.id, now=NOW)  # waits for x, which is failed
    assert await backend.delete(x.id)  # ended already: nothing propagates
    return record


async def test_a_stuck_step_behind_many_blocked_ones_is_released_in_turn() -> None:
    backend = MemoryBackend()
    waiting = (step("a"), *(step(f"w{i}", (0,)) for i in range(250)))
    await backend.insert_workflow(NewWorkflow(name="waiting", steps=waiting), now=NOW)
    record = await stuck_step(backend)
    y = record.step("y").job.id
    releaser = Releaser(backend, FrozenClock(NOW), 60, leadership=None)
    releaser.batch = 100  # smaller than the steps ahead of the stuck one
    cursors = []
    for _ in range(3):
        assert (await backend.get(y)).state is S.BLOCKED
        await releaser.run_once()
        cursors.append(releaser.cursor)
    assert (await backend.get(y)).state is S.PENDING
    assert cursors[0] < cursors[1]
    assert cursors[2] == 0  # the walk reached its end: the next run starts over
    await releaser.run_once()
    assert 0 < releaser.cursor <= cursors[0]
