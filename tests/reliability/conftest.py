"""Fixtures of the reliability suite: worker processes on a fresh store (``store_url``).

Every test here is marked ``reliability``. The CI sizes keep the whole suite within a few
minutes on a 2-core machine; ``TASKWARD_LONG=1`` runs the issue's full sizes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reliability.harness import Workers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def workers(store_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on ``store_url``; whatever the test did, none is left behind."""
    group = Workers(store_url, tmp_path)
    try:
        yield group
    finally:
        group.cleanup()
