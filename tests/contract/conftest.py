"""Fixtures of the backend contract suite: every test runs once per backend, on a fresh store.

``BACKEND_URLS`` is the one place that lists the backends under contract. A new backend
(postgres, redis) adds one entry whose factory builds the URL of a fresh, empty store, asking
``request`` for whatever server fixture it needs. Tests are written only against the
``Backend`` protocol; select one backend with ``-k memory``, ``-k sqlite`` or ``-k postgres``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from taskward.backends import Backend, Capability, open_backend

BACKEND_URLS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "memory": lambda request: "memory://",
    "sqlite": lambda request: f"sqlite:///{request.getfixturevalue('tmp_path')}/jobs.db",
    "postgres": lambda request: request.getfixturevalue("pg_url"),
}

OpenStore = Callable[[], Awaitable[Backend]]


@pytest.fixture(params=list(BACKEND_URLS))
def backend_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty store of each backend in turn."""
    return BACKEND_URLS[request.param](request)


@pytest.fixture
async def open_store(backend_url: str) -> AsyncIterator[OpenStore]:
    """Open (and migrate) one more backend instance on the test's store; all closed at the end."""
    opened: list[Backend] = []

    async def open_one() -> Backend:
        store = open_backend(backend_url)
        await store.open()
        opened.append(store)  # before migrate: a failing migration still gets closed
        await store.migrate()
        return store

    yield open_one
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def backend(open_store: OpenStore) -> Backend:
    """A fresh, opened and migrated backend."""
    return await open_store()


@pytest.fixture
async def second_backend(backend: Backend, open_store: OpenStore) -> Backend:
    """A second instance on the same store, as another process would open it."""
    if Capability.MULTI_PROCESS not in backend.capabilities:
        pytest.skip(f"{backend.url}: instances do not share a store")
    return await open_store()
