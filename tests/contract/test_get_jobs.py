"""Contract: ``get_jobs`` reads the jobs of some ids at once, as ``get`` reads one.

The stored jobs of the ids that exist, in the order given; a missing id is skipped. What a
workflow step that receives its dependencies' results reads (``runtime.inputs``).
"""

from __future__ import annotations

import pytest

from taskward.backends import Backend
from taskward.jobs import JobState
from taskward.states import Completed

from .helpers import finish_with, insert_one, reach

S = JobState


async def test_get_jobs_keeps_the_order_given_and_skips_missing_ids(backend: Backend) -> None:
    first = await insert_one(backend, args=[1])
    second = await insert_one(backend, args=[2], tags=["x"], meta={"k": "v"})
    third = await reach(backend, S.RUNNING, queue="other")
    assert await finish_with(backend, third, Completed({"answer": 42}))
    missing = third.id + 1000
    found = await backend.get_jobs([third.id, missing, first.id, second.id])
    assert [j.id for j in found] == [third.id, first.id, second.id]
    assert found[0] == await backend.get(third.id)
    assert found[0].result == {"answer": 42}
    assert found[1] == await backend.get(first.id)
    assert found[2] == await backend.get(second.id)
    assert await backend.get_jobs([second.id, second.id]) == [found[2], found[2]]


@pytest.mark.any_store
async def test_get_jobs_of_nothing_or_of_unknown_ids_is_empty(backend: Backend) -> None:
    assert await backend.get_jobs([]) == []
    assert await backend.get_jobs([987654, 987655]) == []


async def test_get_jobs_reads_more_ids_than_one_statement_takes(backend: Backend) -> None:
    jobs = [await insert_one(backend, args=[i]) for i in range(1201)]
    ids = [j.id for j in reversed(jobs)]
    found = await backend.get_jobs(ids)
    assert [j.id for j in found] == ids
    assert [j.args for j in found] == [[i] for i in reversed(range(1201))]
