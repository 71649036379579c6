"""Contract: open, migrate and close are idempotent; persistent stores keep jobs across opens.

A backend keeps jobs exactly when it claims ``Capability.STORES_JOBS`` (the no-op one does not).
"""

from __future__ import annotations

import pytest

from taskward.backends import Backend, Capability
from taskward.errors import JobNotFound

from .conftest import KEEPS_NO_JOBS, OpenStore
from .helpers import NOW, insert_one, list_all, new_job


@pytest.mark.any_store
async def test_backend_satisfies_the_protocol(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend.capabilities, frozenset)
    assert all(isinstance(c, Capability) for c in backend.capabilities)
    # Only a backend declared to keep nothing may drop STORES_JOBS: the suite skips most of
    # its tests on such a backend, so a storing backend that lost the flag would pass untested.
    keeps_jobs = backend.url.partition(":")[0] not in KEEPS_NO_JOBS
    assert (Capability.STORES_JOBS in backend.capabilities) is keeps_jobs
    # Every store that keeps jobs keeps workflows too (test_workflows skips one without).
    assert (Capability.WORKFLOWS in backend.capabilities) is keeps_jobs


@pytest.mark.any_store
async def test_a_backend_keeps_jobs_exactly_when_it_says_so(backend: Backend) -> None:
    [inserted] = await backend.insert([new_job(args=["kept?"])], now=NOW)
    assert inserted.duplicate is False
    if Capability.STORES_JOBS in backend.capabilities:
        assert await backend.get(inserted.job.id) == inserted.job
        assert (await list_all(backend)).total_entries == 1
    else:
        with pytest.raises(JobNotFound):
            await backend.get(inserted.job.id)
        assert (await list_all(backend)).total_entries == 0
        assert (await backend.stats()).counts == {}


async def test_open_and_migrate_are_idempotent(backend: Backend) -> None:
    job = await insert_one(backend, args=[1])
    await backend.open()
    await backend.migrate()
    await backend.migrate()
    assert await backend.get(job.id) == job


@pytest.mark.any_store
async def test_close_is_idempotent_and_persistent_store_keeps_jobs(open_store: OpenStore) -> None:
    first = await open_store()
    job = await insert_one(first, args=["kept"])
    await first.close()
    await first.close()  # idempotent
    second = await open_store()
    if Capability.PERSISTENT in first.capabilities:
        assert await second.get(job.id) == job
    else:
        assert (await second.stats()).counts == {}
