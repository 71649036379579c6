"""Fixtures of the backend contract suite: every test runs once per backend, on a fresh store.

``BACKEND_URLS`` is the one place that lists the backends under contract. A new backend
(postgres, redis) adds one entry whose factory builds the URL of a fresh, empty store, asking
``request`` for whatever server fixture it needs. Tests are written only against the
``Backend`` protocol; select one backend with ``-k memory``, ``-k sqlite``, ``-k postgres``,
``-k redis`` or ``-k noop``.

The no-op backend (``noop://``) accepts and drops: it claims no ``Capability.STORES_JOBS``.
Most contract tests read back what they wrote, so on such a backend they skip, saying why.
A test that holds for a store that keeps nothing (an empty store's answers, unknown ids,
calls with nothing to do) is marked ``@pytest.mark.any_store`` and runs on it unchanged;
``test_noop.py`` pins what the no-op backend answers to every call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from taskward.backends import Backend, Capability, open_backend

BACKEND_URLS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "memory": lambda request: "memory://",
    "sqlite": lambda request: f"sqlite:///{request.getfixturevalue('tmp_path')}/jobs.db",
    "postgres": lambda request: request.getfixturevalue("pg_url"),
    "redis": lambda request: request.getfixturevalue("redis_url"),
    # The same store on a 3-master Redis Cluster: every script must touch one slot only.
    "redis_cluster": lambda request: request.getfixturevalue("redis_cluster_url"),
    "noop": lambda request: "noop://",
}

KEEPS_NO_JOBS = frozenset({"noop"})
"""URL schemes of the backends under contract that store nothing. Every other backend must
claim ``STORES_JOBS`` (``test_lifecycle`` checks it): without it most of the suite would skip."""

ANY_STORE = "any_store"

OpenStore = Callable[[], Awaitable[Backend]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ANY_STORE}: contract test that also holds on a backend storing no jobs (noop://)",
    )


@pytest.fixture(params=list(BACKEND_URLS))
def backend_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty store of each backend in turn."""
    return BACKEND_URLS[request.param](request)


@pytest.fixture
async def open_store(backend_url: str, request: pytest.FixtureRequest) -> AsyncIterator[OpenStore]:
    """Open (and migrate) one more backend instance on the test's store; all closed at the end.

    On a backend that stores no jobs, a test not marked ``any_store`` is skipped here.
    """
    opened: list[Backend] = []
    needs_jobs_kept = request.node.get_closest_marker(ANY_STORE) is None

    async def open_one() -> Backend:
        store = open_backend(backend_url)
        if needs_jobs_kept and Capability.STORES_JOBS not in store.capabilities:
            pytest.skip(
                f"{backend_url}: keeps nothing (no STORES_JOBS), and this test needs a store "
                f"that keeps what it writes (mark it {ANY_STORE} if it holds without)"
            )
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
