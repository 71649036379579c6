"""Contract: ``migrate`` reports what it applied and the version it left the store at.

On a fresh store the first call applies every migration the backend knows (or none, for a
store without a schema); each later call applies nothing and reports the same version. The
CLI prints the report (``taskward migrate``).
"""

from __future__ import annotations

import pytest

from taskward.backends import open_backend
from taskward.backends.base import MigrationReport


@pytest.mark.any_store
async def test_migrate_reports_what_it_applied_then_nothing(backend_url: str) -> None:
    store = open_backend(backend_url)
    await store.open()
    try:
        first = await store.migrate()
        again = await store.migrate()
    finally:
        await store.close()
    assert isinstance(first, MigrationReport)
    assert again == MigrationReport(applied=(), version=first.version)
    assert list(first.applied) == sorted(set(first.applied))
    if first.version is None:  # no schema at all (memory, noop)
        assert first.applied == ()
    else:
        assert first.applied, "a fresh store has every migration still to apply"
        assert first.applied[-1] == first.version
