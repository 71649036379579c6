"""Dead letters of a few error kinds for the job lists' bulk tests (pages, API, browser)."""

from __future__ import annotations

from taskward import Discard, TaskManager

TASK = "ops.flaky"
HOSTILE_KIND = "<script>window.__xss = 9</script>"
"""An exception class named with markup: its kind must show as text."""


def _hostile_error() -> type[Exception]:
    return type(HOSTILE_KIND, (Exception,), {})


def flaky(n: int, kind: str) -> None:
    """Fail the way ``kind`` says."""
    if kind == "timeout":
        raise TimeoutError(f"job {n} timed out")
    if kind == "value":
        raise ValueError(f"bad value {n}")
    if kind == "hostile":
        raise _hostile_error()(f"job {n}")
    raise Discard(f"input {n} can never work")


def register(tw: TaskManager) -> None:
    if TASK not in tw.registry:
        tw.task(name=TASK, queue="ops", max_attempts=1)(flaky)


async def seed_dead(
    tw: TaskManager,
    *,
    timeouts: int = 30,
    values: int = 4,
    discarded: int = 4,
    hostile: int = 0,
    queue: str = "ops",
) -> dict[str, list[int]]:
    """Run jobs that die: ``timeouts`` TimeoutError, ``values`` ValueError (both failed),
    ``discarded`` discarded, ``hostile`` failed with a markup kind. Their ids by kind."""
    register(tw)
    plan = [("timeout", timeouts), ("value", values), ("discard", discarded), ("hostile", hostile)]
    ids: dict[str, list[int]] = {}
    for kind, count in plan:
        calls = [[n, kind] for n in range(count)]
        jobs = await tw.enqueue_many(TASK, calls, queue=queue) if count else []
        ids[kind] = [job.id for job in jobs]
    await tw.drain([queue], timeout=60)
    return ids
