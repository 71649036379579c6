"""The security suite (issue 7, item 9): every test here is marked ``security``.

Store-facing tests run on SQLite, PostgreSQL and Redis through ``store_url`` (tests/conftest.py);
the planted-payload tests write into each store behind taskward's back.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.security)
