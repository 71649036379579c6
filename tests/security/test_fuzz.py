"""Fuzzing the inputs that reach SQL: the HTTP API (schemathesis) and the listing API.

Queue names, task names, states, pages and sort keys are generated, valid and invalid, and
sent to a real store. The rule: a clear 4xx (HTTP) or a ``TaskwardError`` (Python), never a
500, a driver exception or a database error text; and what a listing returns matches its
filters exactly (``%`` and ``_`` are not wildcards, quotes are data).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from browser.serving import ServedApp
from security.helpers import BEARER, client_for, make_app
from taskward import JobState, TaskManager
from taskward.errors import TaskwardError
from taskward.jobs import SORTABLE_FIELDS

SQL_ERROR = re.compile(
    r"sqlite3?\.|psycopg|OperationalError|ProgrammingError|IntegrityError|DataError"
    r"|syntax error|Traceback \(most recent|no such (table|column)|SQLSTATE",
    re.IGNORECASE,
)
EXAMPLES = 250
"""Examples per generation mode and backend (derandomized: the same cases every run)."""
QUEUES = ["default", "emails", "a_b", "a1b", "x.y"]  # "a_b" must not match "a1b" (LIKE)
SEEDED = 24


def ok(n: int) -> int:
    return n


def bad(n: int) -> None:
    raise RuntimeError(f"<b>job {n}</b>'; DROP TABLE taskward_jobs; --")


async def seed(url: str) -> None:
    """Jobs in every queue above, some completed, some failed, some pending."""
    async with TaskManager(url) as tw:
        tw.task(name="fuzz.ok")(ok)
        tw.task(name="fuzz.bad", max_attempts=1)(bad)
        for n in range(SEEDED):
            task = "fuzz.bad" if n % 3 == 0 else "fuzz.ok"
            await tw.enqueue_task(task, args=[n], queue=QUEUES[n % len(QUEUES)])
        await tw.drain(QUEUES[:3], timeout=60)


def check_response(label: str, status: int, text: str) -> None:
    if status == 503 and label.startswith("GET /health/jobs") and '"verdict"' in text:
        return  # the readiness probe's documented answer (failing, or degraded with strict)
    assert status < 500, f"{label}: {status} {text[:300]}"
    shown = _without_job_tracebacks(text)
    assert not SQL_ERROR.search(shown), f"{label}: a database error leaked: {shown[:300]}"


def _without_job_tracebacks(text: str) -> str:
    """``text`` without the stored tracebacks of the seeded jobs' failed attempts.

    A job's detail (and its explanation) shows each failed attempt's traceback by design:
    the "fuzz.bad" jobs' own ``Traceback (most recent call last)`` is not a leaked error.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return text

    def strip(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: None if k == "traceback" else strip(v) for k, v in item.items()}
        if isinstance(item, list):
            return [strip(v) for v in item]
        return item

    return json.dumps(strip(value))


# psycopg_pool jitters its connections' lifetimes with the global random module, from its own
# worker while hypothesis draws a case: hypothesis takes that for a strategy using `random`.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_schemathesis_finds_no_server_error(store_url: str) -> None:
    asyncio.run(seed(store_url))
    tw = TaskManager(store_url)
    app = make_app(tw)
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    statuses: dict[int, int] = {}
    # Served by uvicorn on loopback: real HTTP parsing, and the app's own lifespan and loop.
    with ServedApp(app) as served, httpx.Client(base_url=served.url, timeout=30) as client:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies = [op.as_strategy(generation_mode=mode) for op in operations]

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=st.one_of(strategies))
            def fuzz(case: Any) -> None:
                sent = case.as_transport_kwargs(base_url="")
                headers = {**sent["headers"], "authorization": BEARER}
                headers.pop("Connection", None)
                answer = client.request(
                    sent["method"],
                    sent["url"],
                    params=sent.get("params"),
                    headers=headers,
                    json=sent.get("json"),
                    content=sent.get("data"),
                )
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                check_response(f"{sent['method']} {sent['url']}", answer.status_code, answer.text)

            fuzz()
    assert sum(statuses.values()) >= EXAMPLES  # both modes ran
    assert any(200 <= s < 300 for s in statuses)  # the fuzzing got past validation
    assert any(400 <= s < 500 for s in statuses)  # and was refused somewhere
    print(f"schemathesis {store_url.split(':')[0]}: {sum(statuses.values())} requests {statuses}")


names = st.one_of(
    st.none(),
    st.sampled_from([*QUEUES, "%", "_", "'", '"', "default' OR '1'='1", "\\", "fuzz.%"]),
    st.text(max_size=80),
)
states = st.one_of(
    st.none(),
    st.sampled_from(list(JobState)),
    st.text(max_size=20),
    st.lists(st.one_of(st.sampled_from([s.value for s in JobState]), st.text(max_size=10))),
)
# Mostly valid values (so that listings run and their results are checked), some hostile.
valid_sort = st.sampled_from(sorted(SORTABLE_FIELDS)).flatmap(
    lambda f: st.sampled_from([f, f"-{f}"])
)
sorts = st.one_of(valid_sort, valid_sort, valid_sort, st.text(max_size=30))
pages = st.one_of(
    *[st.integers(1, 4)] * 4, st.integers(), st.sampled_from([2**63 - 1, 2**63, 2**64])
)
per_pages = st.one_of(*[st.integers(1, 30)] * 4, st.integers(-3, 1100), st.integers())


def test_listing_filters_fuzzed(store_url: str) -> None:
    """Hypothesis on ``list_tasks``: exact filters, sorted, bounded, or a TaskwardError."""
    asyncio.run(seed(store_url))
    tw = TaskManager(store_url)
    try:
        everything = tw.sync.list_tasks(per_page=1000).items
        assert len(everything) == SEEDED
        outcomes = {"listed": 0, "refused": 0}

        @settings(max_examples=EXAMPLES * 2, derandomize=True, deadline=None, database=None)
        @given(state=states, queue=names, task=names, page=pages, per_page=per_pages, sort=sorts)
        def listing(
            state: Any, queue: str | None, task: str | None, page: int, per_page: int, sort: str
        ) -> None:
            try:
                found = tw.sync.list_tasks(
                    state=state, queue=queue, task=task, page=page, per_page=per_page, sort_by=sort
                )
            except TaskwardError as exc:
                refusal = str(exc)
                outcomes["refused"] += 1
                check_response("list_tasks refused", 400, refusal)
                return
            outcomes["listed"] += 1
            wanted = [
                j
                for j in everything
                if (queue is None or j.queue == queue)
                and (task is None or j.task == task)
                and (state is None or j.state.value in _state_names(state))
            ]
            assert found.total_entries == len(wanted)
            assert len(found.items) <= per_page
            assert {j.id for j in found.items} <= {j.id for j in wanted}

        listing()
        assert outcomes["listed"] > 30
        assert outcomes["refused"] > 30
        print(f"list_tasks {store_url.split(':')[0]}: {outcomes}")
    finally:
        tw.sync.shutdown()


def _state_names(state: Any) -> set[str]:
    items = [state] if isinstance(state, str | JobState) else list(state)
    return {JobState(s).value for s in items}


async def test_an_empty_task_filter_matches_no_job(store_url: str) -> None:
    """Found by the fuzzing on Redis: an empty task name is a filter (no job has it), not none."""
    async with TaskManager(store_url) as tw:
        tw.task(name="fuzz.ok")(ok)
        await tw.enqueue_task("fuzz.ok", args=[1])
        await tw.enqueue_task("fuzz.ok", args=[2], queue="emails")
        assert (await tw.list_tasks(task="")).total_entries == 0
        assert (await tw.list_tasks(task="", queue="emails")).total_entries == 0
        assert (await tw.list_tasks(task="", sort_by="-priority")).total_entries == 0
        assert (await tw.list_tasks(queue="")).total_entries == 0


@pytest.mark.parametrize("page", [2**63 // 1000 + 2, 2**63, 10**30])
async def test_an_enormous_page_is_refused(store_url: str, page: int) -> None:
    async with TaskManager(store_url) as tw:
        with pytest.raises(TaskwardError, match=f"page {page} is too large"):
            await tw.list_tasks(page=page, per_page=1000)
        assert (await tw.list_tasks(page=2**63 // 1000, per_page=1)).items == []


async def test_a_nul_in_a_filter_is_a_clear_400(store_url: str) -> None:
    """Found by the fuzzing: PostgreSQL text cannot hold NUL, and the driver error was a 500."""
    tw = TaskManager(store_url)
    async with tw, client_for(make_app(tw), authorization=BEARER) as admin:
        for params in ({"queue": "a\x00b"}, {"task": "t\x00"}, {"q": "x", "task": "\x00"}):
            answer = await admin.get("/api/jobs", params=params)
            assert answer.status_code == 400, answer.text
            assert "NUL character" in answer.json()["detail"]
