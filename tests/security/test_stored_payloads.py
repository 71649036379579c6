"""A pickle planted in the store is refused, never unpickled; listings and pages still work.

The attacker model: someone who can write to the job table or the job hashes (a leaked
database or Redis password, a compromised neighbour service) but not to the workers' code.
Celery (CVE-2021-23727), RQ and huey have turned that into code execution by unpickling
stored payloads. The payload below creates a file if anything ever unpickles it.
"""

from __future__ import annotations

import base64
import json
import pickle
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from security.helpers import BEARER, client_for, make_app
from taskward import JobState, TaskManager
from taskward.serialize import UnreadablePayload, load_args, load_kwargs, stored_payload_problem

MARKER = Path("/tmp") / f"taskward-security-unpickled-{id(object())}"


class Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (MARKER,))


PICKLE = pickle.dumps(Exploit())
B64 = base64.b64encode(PICKLE).decode()


def echo(value: Any = None) -> Any:
    return value


def plant(url: str, job_id: int, column: str, value: Any) -> None:
    """Overwrite a job's column behind taskward's back, as an attacker with SQL access would.

    On Redis, a job is the hash ``{PREFIX}:job:ID`` with one field per column.
    """
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.execute(f"UPDATE taskward_jobs SET {column} = ? WHERE id = ?", (value, job_id))
        return
    if url.startswith("redis"):
        import redis

        prefix = parse_qs(urlsplit(url).query)["prefix"][0]
        with redis.Redis.from_url(url.partition("?")[0]) as db:
            assert db.exists(f"{{{prefix}}}:job:{job_id}")
            db.hset(f"{{{prefix}}}:job:{job_id}", column, value)
        return
    import psycopg

    parts = urlsplit(url)
    schema = parse_qs(parts.query)["schema"][0]
    with psycopg.connect(parts._replace(query="").geturl(), autocommit=True) as db:
        db.execute(f"SET search_path TO {schema}")
        db.execute(f"UPDATE taskward_jobs SET {column} = %s::json WHERE id = %s", (value, job_id))


SQLITE_PLANTS = {
    "pickle bytes": PICKLE,
    "base64 pickle text": B64,
    "a JSON string holding a base64 pickle": json.dumps(B64),
}
PG_PLANTS = {
    # PostgreSQL's json column refuses non-JSON outright; these are what it lets through.
    "a JSON string holding a base64 pickle": json.dumps(B64),
    "a JSON object in the args column": json.dumps({"py/reduce": B64}),
}

REDIS_PLANTS = {
    # A Redis hash field holds any bytes: everything SQLite lets through, and wrong JSON types.
    **SQLITE_PLANTS,
    "a JSON object in the args column": json.dumps({"py/reduce": B64}),
    "a JSON number": "42",
    "a JSON null": "null",
    "an empty field": "",
}


async def _refused_and_rendered(url: str, column: str, value: Any) -> None:
    MARKER.unlink(missing_ok=True)
    tw = TaskManager(url, poll_interval=0.05)
    tw.task(name="echo", max_attempts=3)(echo)
    async with tw:
        good = [await tw.enqueue_task("echo", args=[n]) for n in range(3)]
        bad = await tw.enqueue_task("echo", args=["harmless"])
        plant(url, bad.id, column, value)
        # Listing and reading the job work, and say what is wrong.
        listed = await tw.list_tasks(per_page=10)
        assert {j.id for j in listed.items} == {bad.id, *(g.id for g in good)}
        assert stored_payload_problem((await tw.get_task_status(bad.id)).args, {}) or column
        # Running: the good jobs complete, the planted one is discarded at once.
        await tw.drain(timeout=30)
        for job in good:
            assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED
        refused = await tw.get_task_status(bad.id)
        assert refused.state is JobState.DISCARDED
        assert refused.attempt == 1
        (error,) = refused.errors
        assert "never pickles" in error.message
        assert f"stored {column}" in error.message
        # The API and the dashboard render the job without its payload.
        async with client_for(make_app(tw), authorization=BEARER) as admin:
            detail = await admin.get(f"/api/jobs/{bad.id}")
            assert detail.status_code == 200
            assert detail.json()["payload_error"].startswith(f"the stored {column}")
            assert detail.json()[column] == ([] if column == "args" else {})
            listing = await admin.get("/api/jobs", params={"q": "gASV"})
            assert listing.status_code == 200
            assert listing.json()["total"] == 0  # the planted text is not searched either
            page = await admin.get(f"/dashboard/jobs/{bad.id}")
            assert page.status_code == 200
            assert "never pickles" in page.text
            assert B64[:20] not in page.text
            assert (await admin.get("/dashboard/jobs")).status_code == 200
    assert not MARKER.exists(), "the planted pickle was unpickled"


@pytest.mark.parametrize("column", ["args", "kwargs"])
@pytest.mark.parametrize("plant_name", list(SQLITE_PLANTS))
async def test_sqlite_refuses_a_planted_pickle(
    tmp_path: Path, plant_name: str, column: str
) -> None:
    await _refused_and_rendered(f"sqlite:///{tmp_path}/jobs.db", column, SQLITE_PLANTS[plant_name])


@pytest.mark.parametrize("column", ["args", "kwargs"])
@pytest.mark.parametrize("plant_name", list(PG_PLANTS))
async def test_postgres_refuses_a_planted_pickle(pg_url: str, plant_name: str, column: str) -> None:
    value = PG_PLANTS[plant_name]
    if column == "kwargs" and plant_name.startswith("a JSON object"):
        value = json.dumps([B64])  # a list where kwargs must be an object
    await _refused_and_rendered(pg_url, column, value)


@pytest.mark.parametrize("column", ["args", "kwargs"])
@pytest.mark.parametrize(
    "plant_name",
    list(REDIS_PLANTS),
)
async def test_redis_refuses_a_planted_pickle(redis_url: str, plant_name: str, column: str) -> None:
    value = REDIS_PLANTS[plant_name]
    if column == "kwargs" and plant_name.startswith("a JSON object"):
        value = json.dumps([B64])  # a list where kwargs must be an object
    await _refused_and_rendered(redis_url, column, value)


async def test_postgres_refuses_pickle_bytes_in_the_store_itself(pg_url: str) -> None:
    import psycopg

    async with TaskManager(pg_url) as tw:
        tw.task(name="echo")(echo)
        job = await tw.enqueue_task("echo")
        with pytest.raises(psycopg.DataError):
            plant(pg_url, job.id, "args", PICKLE.decode("latin-1"))
        assert (await tw.get_task_status(job.id)).args == []


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        (PICKLE, "bytes, not JSON text"),
        (B64, "not valid JSON"),
        (json.dumps(B64), "a JSON str, not a JSON list"),
        ("[" * 50_000 + "]" * 50_000, "not valid JSON"),
        (None, "NoneType, not JSON text"),
    ],
)
def test_stored_args_are_read_without_trust(stored: Any, problem: str) -> None:
    """The decoding every backend uses for stored args: never raises, never unpickles."""
    MARKER.unlink(missing_ok=True)
    loaded = load_args(stored)
    assert isinstance(loaded, UnreadablePayload)
    assert problem in loaded.problem
    message = stored_payload_problem(loaded, {})
    assert message is not None
    assert message.startswith(f"the stored args are {loaded.problem}")
    assert "never pickles" in message
    assert not MARKER.exists()


def test_stored_kwargs_are_read_without_trust() -> None:
    assert load_kwargs('{"a": 1}') == {"a": 1}
    assert load_args("[1, 2]") == [1, 2]
    assert isinstance(load_kwargs("[1]"), UnreadablePayload)
    assert isinstance(load_kwargs(PICKLE), UnreadablePayload)
    assert stored_payload_problem([1], {"a": 1}) is None
    assert "kwargs are" in (stored_payload_problem([], {1: "a"}) or "")
    assert not MARKER.exists()
