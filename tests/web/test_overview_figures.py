"""The overview's figures per queue are the store's: ``taskward stats`` and ``GET /health/jobs``.

One seeded store at an injected clock (so the overview's and the probe's health checks are
taken at the same instant): a queue failing half its runs, a paused queue whose oldest job
waited past its threshold, a queue with a job running past its timeout plus the lease grace,
and 1,070 due jobs. The overview is read as HTML through the ASGI app and compared, queue by
queue, with ``tw.get_statistics()`` and the health endpoint's JSON.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from taskward import FrozenClock, TaskManager
from taskward.errors import BackendUnavailable
from taskward.health import HealthReason, HealthVerdict
from taskward.web import AdminAuth, create_app
from taskward.web.formatting import age as _age
from taskward.web.formatting import plural as _plural
from taskward.web.overview_page import _reason_short
from web.helpers import BASIC, client_for

START = datetime(2026, 3, 1, 9, tzinfo=UTC)
LEASE = 5.0


class QueueRows(HTMLParser):
    """The overview's queue rows: per queue, each cell's text (by its class) and the row's."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, str] = {}
        self._row: dict[str, Any] | None = None
        self._cell: str | None = None
        self._card: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        classes = found.get("class", "").split()
        if tag == "tr" and "data-queue" in found:
            self._row = {"class": classes, "cells": {}, "titles": {}, "links": []}
            self.rows[found["data-queue"]] = self._row
        elif tag == "td" and self._row is not None:
            named = [c for c in classes if c != "n"]
            self._cell = named[0] if named else f"col{len(self._row['cells'])}"
            self._row["cells"][self._cell] = ""
            self._row["titles"][self._cell] = found.get("title")
        elif tag == "div" and "reason" in classes and self._row is not None:
            self._row["reason"] = found.get("title")
        elif tag == "a" and self._row is not None and self._cell is not None:
            self._row["links"].append((self._cell, found.get("href", "")))
        elif tag == "a" and "card" in classes:
            self._card = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "a" and self._card is not None:
            value, label = [*self._card, "", ""][:2]
            self.cards[label] = value
            self._card = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._cell is not None:
            cells = self._row["cells"]
            cells[self._cell] = " ".join((cells[self._cell] + " " + data).split())
        elif self._card is not None and data.strip():
            self._card.append(data.strip())


def parse(html: str) -> QueueRows:
    parser = QueueRows()
    parser.feed(html)
    return parser


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def frozen(manager_url: str, clock: FrozenClock) -> AsyncIterator[TaskManager]:
    manager = TaskManager(manager_url, clock=clock, poll_interval=0.05, lease_seconds=LEASE)
    async with manager:
        yield manager


async def seed(tw: TaskManager, clock: FrozenClock) -> int:
    """The store described in the module docstring; returns the stuck job's id."""

    @tw.task(name="emails.send", queue="emails", max_attempts=1)
    def send(to: str, *, fail: bool = False) -> None:
        if fail:
            raise RuntimeError(f"cannot reach {to}")

    @tw.task(name="reports.build", queue="reports")
    def build(n: int) -> int:
        return n

    @tw.task(name="media.encode", queue="media", timeout=60)
    def encode(name: str) -> None:
        return None

    @tw.task(name="bulk.touch", queue="bulk")
    def touch(n: int) -> None:
        return None

    for n in range(12):
        await send.enqueue(f"user{n}@example.com", fail=n % 2 == 0)
    await tw.drain(["emails"], timeout=30)
    # Waiting, but not due: no backlog.
    await tw.enqueue_task("emails.send", args=["later@example.com"], delay=3600)
    for n in range(3):
        await build.enqueue(n)
    await tw.pause_queue("reports")
    stuck = await encode.enqueue("film.mp4")
    backend = await tw._backend()
    now = clock.now()
    [claimed] = await backend.fetch(
        queue="media", limit=1, worker_id="gone", now=now, lease_until=now + timedelta(hours=1)
    )
    assert claimed.id == stuck.id
    clock.advance(400)  # reports waited 400 s (degraded above 300); media ran past 60 s + 5 s
    await tw.enqueue_many("bulk.touch", [[n] for n in range(1070)])
    return stuck.id


async def test_the_overview_shows_the_figures_of_stats_and_of_the_health_endpoint(
    frozen: TaskManager, clock: FrozenClock
) -> None:
    stuck_id = await seed(frozen, clock)
    stats = await frozen.get_statistics()
    async with client_for(create_app(frozen)) as client:
        html = (await client.get("/dashboard/fragments/overview")).text
        probe = (await client.get("/health/jobs")).json()

    page = parse(html)
    health = {q["queue"]: q for q in probe["queues"]}
    assert set(page.rows) == set(stats["queues"]) == {"bulk", "emails", "media", "reports"}
    for name, row in page.rows.items():
        counts = stats["queues"][name]
        cells = row["cells"]
        waiting = sum(counts[s] for s in ("blocked", "scheduled", "pending", "retryable"))
        assert cells["waiting"] == f"{waiting:,}"
        assert cells["running"] == f"{counts['running']:,}"
        assert cells["completed"] == f"{counts['completed']:,}"
        assert cells["dead"].split()[0] == f"{counts['failed']:,}"
        judged = health.get(name)
        assert judged is not None, name
        assert f"v-{judged['verdict']}" in row["class"]
        assert cells["health"].split()[0] == judged["verdict"]
        assert cells["backlog"] == f"{judged['backlog']:,}"
        assert cells["oldest-due"] == _age(judged["oldest_due_age"])
        assert cells["stuck"].split()[0] == f"{judged['stuck']:,}"
        assert ("paused" in cells["col0"]) is judged["paused"] is (name in stats["paused"])

    emails, reports, media, bulk = (page.rows[n] for n in ("emails", "reports", "media", "bulk"))
    # Six of twelve runs failed in the last hour.
    assert emails["cells"]["failure-rate"] == "50%"
    assert emails["titles"]["failure-rate"] == "6 of 12 runs failed in the last hour"
    assert emails["cells"]["waiting"] == "1"
    assert emails["cells"]["backlog"] == "0"
    # The paused queue's oldest job waited 400 s: past the 300 s of degraded, said so.
    assert reports["cells"]["oldest-due"] == "6 min"
    assert reports["titles"]["oldest-due"] == "400 s"
    assert "v-degraded" in reports["class"]
    assert "paused" in reports["class"]
    assert reports["cells"]["health"] == "degraded waited 6 min (over 5 min)"
    assert reports["reason"] == "oldest due job waited 400 s (degraded above 300 s)"
    # The job past its timeout is counted and linked.
    assert "v-degraded" in media["class"]
    assert media["reason"] == "stuck running jobs: 1 (degraded above 0)"
    assert media["cells"]["stuck"] == f"1 #{stuck_id}"
    assert ("stuck", f"/dashboard/jobs/{stuck_id}") in media["links"]
    assert ("stuck", "/dashboard/jobs?queue=media&state=running") in media["links"]
    # The per-task table: the health report's runs and failures over the last hour.
    [task] = health["emails"]["tasks"]
    assert task["last_60m"] == {"runs": 12, "failures": 6, "failure_rate": 0.5}
    table = html.split('<table class="grid tasks">')[1].split("</table>")[0]
    row = " ".join(re.sub(r"<[^>]+>", " ", table.split('<tr class="task')[1]).split())
    # Not flagged: 12 runs are fewer than the 20 the hourly rate is judged from; nothing
    # ended in the last 5 minutes.
    assert row == '"> emails.send emails 12 6 50% p50 0 ms · p95 0 ms 0 of 0 failed'
    assert health["emails"]["verdict"] == "ok"
    # Thousands separators, and the totals agree.
    assert bulk["cells"]["backlog"] == bulk["cells"]["waiting"] == "1,070"
    assert page.cards["waiting"] == f"{1070 + 1 + 3:,}"
    assert page.cards["dead letters"] == "6"
    assert page.cards["completed"] == "6"
    assert page.cards["health"] == probe["verdict"] == "degraded"
    assert page.cards["workers"] == "0"


async def test_pause_asks_to_confirm_naming_the_queue(frozen: TaskManager, auth: AdminAuth) -> None:
    @frozen.task(name="emails.send", queue="emails")
    def send(to: str) -> None:
        return None

    await send.enqueue("ada@example.com")
    async with client_for(create_app(frozen, auth=auth), authorization=BASIC) as client:
        html = (await client.get("/dashboard")).text
    assert 'hx-confirm="Pause queue emails? Its jobs will not start until it is resumed."' in html


def test_ages_and_plurals_read_as_people_write_them() -> None:
    assert [_age(s) for s in (None, 0, 59.9, 60, 203, 3599, 3600, 4800, 7200, 36000, 90000)] == [
        "—",
        "0 s",
        "59 s",
        "1 min",
        "3 min",
        "59 min",
        "1 h",
        "1 h 20 min",
        "2 h",
        "10 h",
        "1 d 1 h",
    ]
    assert [f"{n} {_plural(n, 'worker')}" for n in (0, 1, 2)] == [
        "0 workers",
        "1 worker",
        "2 workers",
    ]


async def test_a_failed_health_check_leaves_the_counts_up(
    frozen: TaskManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    @frozen.task(name="emails.send", queue="emails")
    def send(to: str) -> None:
        return None

    await send.enqueue("ada@example.com")

    async def broken(thresholds: object = None) -> None:
        raise BackendUnavailable("health figures: the replica is away")

    monkeypatch.setattr(frozen, "health", broken)
    async with client_for(create_app(frozen)) as client:
        response = await client.get("/dashboard/fragments/overview")
    assert response.status_code == 200
    page = parse(response.text)
    assert page.cards["health"] == "unknown"
    assert "Health unknown: health figures: the replica is away" in response.text
    emails = page.rows["emails"]
    assert emails["cells"]["waiting"] == "1"
    assert emails["cells"]["health"] == "unknown"
    assert "v-unknown" in emails["class"]


def test_each_reason_has_a_short_line() -> None:
    def short(threshold: str, value: float, limit: float, task: str | None = None) -> str:
        reason = HealthReason(
            level=HealthVerdict.DEGRADED,
            threshold=threshold,
            queue="q",
            value=value,
            limit=limit,
            task=task,
        )
        return _reason_short(reason)

    assert short("max_oldest_due_age", 412, 300) == "waited 6 min (over 5 min)"
    assert short("max_backlog", 12070, 10000) == "backlog 12,070 (over 10,000)"
    assert short("max_stuck", 2, 0) == "2 stuck (over 0)"
    assert short("max_failure_rate_5m", 0.5, 0.25, "a.b") == "a.b: 50% failed in 5 min (over 25%)"
    assert short("max_failure_rate_60m", 0.2, 0.1, "a.b") == "a.b: 20% failed in 1 h (over 10%)"
    assert short("min_workers", 0, 1) == "no live worker while jobs wait"
    assert short("min_workers", 1, 2) == "1 worker (under 2)"
