"""Helpers of the web tests: an ASGI client, credentials, seeded jobs, estimated counts."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import httpx
import pytest

from taskward import JobState, TaskManager
from taskward.jobs import Stats

USER, PASSWORD, TOKEN = "admin", "correct horse", "s3cret-token"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BEARER = f"Bearer {TOKEN}"


def client_for(app: Any, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers
    )


async def seed(tw: TaskManager) -> dict[str, list[int]]:
    """Three completed reports, two failed ones (one with a traceback naming 'disk'), one
    pending email; return the job ids by kind."""

    @tw.task(name="reports.build", queue="reports", max_attempts=1)
    def build(n: int, *, fail: bool = False) -> int:
        if fail:
            raise RuntimeError(f"report {n}: disk full")
        return n

    @tw.task(name="emails.send", queue="emails")
    def send(to: str) -> None:
        return None

    done = [(await build.enqueue(n)).id for n in range(3)]
    failed = [(await build.enqueue(n, fail=True)).id for n in (10, 11)]
    await tw.drain(["reports"], timeout=30)
    pending = [(await send.enqueue("ada@example.com")).id]
    return {"done": done, "failed": failed, "pending": pending}


def pretend_estimated(
    tw: TaskManager, monkeypatch: pytest.MonkeyPatch, *pairs: tuple[str, JobState]
) -> None:
    """Make the backend flag these (queue, state) counts as estimates, as PostgreSQL does
    past 10,000 finished jobs of a queue in one state (the counts themselves are kept)."""
    backend = tw.backend
    real = backend.stats

    async def stats() -> Stats:
        return dataclasses.replace(await real(), estimated=frozenset(pairs))

    monkeypatch.setattr(backend, "stats", stats)
