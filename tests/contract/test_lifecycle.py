"""Contract: open, migrate and close are idempotent; persistent stores keep jobs across opens."""

from __future__ import annotations

from taskward.backends import Backend, Capability

from .conftest import OpenStore
from .helpers import insert_one


async def test_backend_satisfies_the_protocol(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert Capability.STORES_JOBS in backend.capabilities
    assert isinstance(backend.capabilities, frozenset)


async def test_open_and_migrate_are_idempotent(backend: Backend) -> None:
    job = await insert_one(backend, args=[1])
    await backend.open()
    await backend.migrate()
    await backend.migrate()
    assert await backend.get(job.id) == job


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
