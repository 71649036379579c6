"""Admin app fixtures: the whole web app over ASGI, on the manager of each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from taskward import TaskManager
from taskward.web import AdminAuth, create_app
from web.helpers import BEARER, PASSWORD, TOKEN, USER, client_for


@pytest.fixture
def auth() -> AdminAuth:
    return AdminAuth(token=TOKEN, username=USER, password=PASSWORD)


@pytest.fixture
async def api(tw: TaskManager, auth: AdminAuth) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the full admin app that authenticates with the bearer token."""
    async with client_for(create_app(tw, auth=auth), authorization=BEARER) as client:
        yield client
