"""The Redis backend against bad input and a hostile environment, each on a real server.

Each case asserts a clear taskward error (its type and what its message names) and that nothing
was lost or half-written: every job acknowledged before is readable and intact, and a refused
write left no job hash, index entry or id behind. Servers that a test reconfigures, fills or
protects with a password are its own (``private_redis``); the rest use a fresh prefix on the
session's server (``redis_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from taskward import JobState, TaskManager
from taskward.backends.redis.client import FIXED_KEYS
from taskward.backends.redis.errors import NotSupportedServer, StoreError
from taskward.errors import (
    BackendUnavailable,
    InvalidOptions,
    JobNotFound,
    NotSupported,
    TaskwardError,
)
from taskward.jobs import JobUpdate
from tests_support.servers import RedisServer, free_port, private_redis

pytestmark = pytest.mark.usefixtures("redis_server")  # skipped (or failed) without redis-server

PASSWORD = "s3cret-Pa55"
FAST = 6.0
"""Seconds within which a server that cannot be used must be reported."""


def echo(value: Any = None) -> Any:
    return value


def base_of(url: str) -> str:
    return "{" + parse_qs(urlsplit(url).query)["prefix"][0] + "}"


def raw(url: str) -> redis.Redis:
    """A plain redis-py client on the server of ``url`` (taskward's parameters removed)."""
    parts = urlsplit(url)
    query = "&".join(
        f"{k}={v[0]}"
        for k, v in parse_qs(parts.query).items()
        if k not in ("prefix", "pool_size", "cluster", "check_policy")
    )
    return redis.Redis.from_url(
        parts._replace(query=query).geturl(), decode_responses=True, socket_timeout=10
    )


def census(url: str) -> dict[str, Any]:
    """What a store holds: job hashes, index entries (by kind), the id sequence, and drift.

    ``orphans`` are job hashes that no per-queue state index holds, ``dangling`` index entries
    without a job hash; a consistent store has neither.
    """
    base = base_of(url)
    with raw(url) as db:
        hashes = {
            int(key.rsplit(":", 1)[1])
            for key in db.scan_iter(match=f"{base}:job:*", count=1000)
            if db.type(key) == "hash"
        }
        indexed: dict[str, set[int]] = {"ix": set(), "tx": set(), "pending": set()}
        for kind in indexed:
            for key in db.scan_iter(match=f"{base}:{kind}:*", count=1000):
                if db.type(key) != "zset":
                    continue
                for member in db.zrange(key, 0, -1):
                    # pending members are "%016d%016d" (scheduled time, id)
                    indexed[kind].add(int(member[16:]) if kind == "pending" else int(member))
        seq = db.get(f"{base}:seq") if db.type(f"{base}:seq") == "string" else None
    return {
        "jobs": hashes,
        **indexed,
        "seq": int(seq or 0),
        "orphans": hashes - indexed["ix"],
        "dangling": indexed["ix"] - hashes,
    }


def manager(url: str, **settings: Any) -> TaskManager:
    tw = TaskManager(url, poll_interval=0.05, **settings)
    tw.task(name="echo")(echo)
    return tw


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    tests = str(Path(__file__).parents[1])  # the declared task modules import from tests/
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": tests}
    for name in ("TASKWARD_APP", "TASKWARD_URL", "FORCE_COLOR"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "taskward", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error:"), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    for text in expected:
        assert text in proc.stderr, (text, proc.stderr)
    return proc.stderr


@contextlib.contextmanager
def password_protected(server: RedisServer) -> Iterator[RedisServer]:
    """``requirepass`` set on a running server, and taken off again for its teardown.

    Set at run time: ``private_redis(extra={"requirepass": ...})`` never starts, because its
    readiness PING (without a password) is answered NOAUTH until its timeout.
    """
    server.command("CONFIG", "SET", "requirepass", PASSWORD)
    try:
        yield server
    finally:
        with redis.Redis(port=server.port, password=PASSWORD) as admin:
            admin.config_set("requirepass", "")


# -- an unreachable or foreign server ----------------------------------------------------------
async def test_an_unreachable_server_fails_fast_naming_the_host() -> None:
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/0?prefix=nowhere"
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}") as opened:
        await manager(url).open()
    assert re.search("cannot be reached|unavailable", str(opened.value)), opened.value
    tw = manager(url)
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        await tw.enqueue_task("echo", args=[1])  # opens on first use
    await tw.close()
    assert time.monotonic() - started < FAST
    # A blocking producer (the sync client) says the same.
    producer = manager(url)
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        await asyncio.to_thread(producer.enqueue_task_blocking, "echo", args=[1])


async def test_a_server_that_never_answers_times_out() -> None:
    """A port that accepts connections and then says nothing (a hung server, a firewall)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
            await asyncio.wait_for(manager(f"redis://127.0.0.1:{port}/0").open(), FAST + 4)
        assert time.monotonic() - started < FAST + 2  # the 5 s connect timeout, and no retry


async def test_a_server_that_is_not_redis_is_a_clear_error() -> None:
    """Another service on the port (an HTTP server here) answers something that is not RESP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                peer, _ = listener.accept()
                with peer:
                    peer.recv(4096)
                    peer.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(TaskwardError, match=f"127.0.0.1:{port}"):
            await manager(f"redis://127.0.0.1:{port}/0").open()
        assert_one_error_line(run_cli("stats", "--url", f"redis://127.0.0.1:{port}/0"), "127.0.0.1")
    finally:
        listener.close()


def test_the_cli_reports_an_unreachable_server_in_one_line() -> None:
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0?prefix=nowhere"
    for command in (["stats"], ["jobs"], ["enqueue", "tests_support.jobs:add", "--args", "[1, 2]"]):
        started = time.monotonic()
        proc = run_cli(*command, "--url", url)
        assert time.monotonic() - started < FAST + 10  # the interpreter's start-up included
        line = assert_one_error_line(proc, f"127.0.0.1:{port}")
        assert PASSWORD not in line
        assert PASSWORD not in proc.stdout


# -- credentials and the database number -------------------------------------------------------
@pytest.fixture
def protected() -> Iterator[RedisServer]:
    with private_redis() as server, password_protected(server):
        yield server


@pytest.mark.parametrize(
    "credentials",
    [":wrong-password@", "default:wrong-password@", "nobody:" + PASSWORD + "@", ""],
    ids=["wrong password", "wrong password as default", "unknown user", "no password"],
)
async def test_wrong_credentials_are_refused_without_showing_them(
    protected: RedisServer, credentials: str
) -> None:
    url = f"redis://{credentials}127.0.0.1:{protected.port}/0?prefix=locked"
    for attempt in ("open", "enqueue"):
        tw = manager(url)
        call = tw.open() if attempt == "open" else tw.enqueue_task("echo", args=[1])
        with pytest.raises(BackendUnavailable) as refused:
            await call
        await tw.close()
        message = str(refused.value)
        assert f"127.0.0.1:{protected.port}" in message
        assert "credentials" in message
        for secret in (PASSWORD, "wrong-password"):
            assert secret not in message
            assert secret not in repr(refused.value.__cause__)
    proc = run_cli("stats", "--url", url)
    line = assert_one_error_line(proc, "credentials")
    assert PASSWORD not in line
    assert "wrong-password" not in line
    with redis.Redis(port=protected.port, password=PASSWORD) as admin:
        assert admin.keys("{locked}*") == []  # nothing was written


async def test_the_right_password_works(protected: RedisServer) -> None:
    for url in (
        f"redis://:{PASSWORD}@127.0.0.1:{protected.port}/0?prefix=opened",
        f"redis://127.0.0.1:{protected.port}/0?prefix=opened&password={PASSWORD}",
    ):
        async with manager(url) as tw:
            job = await tw.enqueue_task("echo", args=["x"])
            await tw.drain(timeout=30)
            assert (await tw.get_task_status(job.id)).result == "x"


@pytest.mark.parametrize("db", [16, 99, -1])
async def test_a_database_number_the_server_does_not_have(
    redis_server: RedisServer, db: int
) -> None:
    url = redis_server.url(db, prefix="nodb")
    with pytest.raises(InvalidOptions, match="DB index is out of range") as refused:
        await manager(url).open()
    assert f"/{db}" in str(refused.value)
    tw = manager(url)
    with pytest.raises(InvalidOptions, match="out of range"):
        await tw.enqueue_task("echo")
    await tw.close()
    proc = run_cli("stats", "--url", url)
    assert_one_error_line(proc, "out of range")


@pytest.mark.parametrize("path", ["zero", "1x"])
async def test_a_database_number_that_is_not_a_number(redis_server: RedisServer, path: str) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/{path}?prefix=nodb{os.getpid()}"
    with pytest.raises(InvalidOptions, match=path):
        await manager(url).open()


# -- keys of another type under our prefix -----------------------------------------------------
WRONG_VALUE = {
    "string": lambda db, key: db.set(key, "not taskward's"),
    "hash": lambda db, key: db.hset(key, "field", "value"),
    "list": lambda db, key: db.rpush(key, "item"),
}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (name, kind)
        for name, kind in [
            *((name, "hash" if t == "string" else "string") for name, t in FIXED_KEYS.items()),
            ("beats", "list"),
            ("queues", "hash"),
        ]
    ],
)
async def test_a_foreign_fixed_key_is_refused_at_open_by_name(
    redis_url: str, name: str, kind: str
) -> None:
    key = f"{base_of(redis_url)}:{name}"
    with raw(redis_url) as db:
        WRONG_VALUE[kind](db, key)
    with pytest.raises(StoreError) as refused:
        await manager(redis_url).open()
    message = str(refused.value)
    assert key in message
    assert f"is a {kind}, not a {FIXED_KEYS[name]}" in message
    assert "prefix=" in message  # the fix
    with raw(redis_url) as db:
        assert db.type(key) == kind  # left as it was
        assert db.keys(f"{base_of(redis_url)}:*") == [key]  # and nothing else was written
    proc = run_cli("migrate", "--url", redis_url)
    assert_one_error_line(proc, key)


async def test_a_store_of_a_newer_layout_is_refused(redis_url: str) -> None:
    with raw(redis_url) as db:
        db.set(f"{base_of(redis_url)}:version", "99")
    with pytest.raises(NotSupported, match="layout version 99"):
        await manager(redis_url).open()


PER_QUEUE_KEYS = ["ix:default:pending", "tx:echo:pending", "pending:default"]
"""The per-queue (and per-task) keys an enqueue of "echo" on "default" writes, in that order."""


@pytest.mark.parametrize("suffix", PER_QUEUE_KEYS)
async def test_a_foreign_per_queue_key_makes_enqueue_a_store_error(
    redis_url: str, suffix: str
) -> None:
    tw = manager(redis_url)
    tw.task(name="bystander")(echo)  # another task on another queue: none of its keys is foreign
    async with tw:
        kept = await tw.enqueue_task("bystander", args=["kept"], queue="other")
        with raw(redis_url) as db:
            db.set(f"{base_of(redis_url)}:{suffix}", "not taskward's")
        with pytest.raises(StoreError, match="holds a value of another type") as refused:
            await tw.enqueue_task("echo", args=["refused"])
        assert base_of(redis_url) in str(refused.value)
        with pytest.raises(StoreError):
            await asyncio.to_thread(tw.enqueue_task_blocking, "echo", args=["refused"])
        # What was acknowledged before is intact, and other queues still work.
        assert (await tw.get_task_status(kept.id)).args == ["kept"]
        other = await tw.enqueue_task("bystander", args=["after"], queue="other")
        await tw.drain(["other"], timeout=30)
        for job in (kept, other):
            assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED


@pytest.mark.parametrize("suffix", PER_QUEUE_KEYS)
async def test_a_refused_enqueue_leaves_nothing_behind(redis_url: str, suffix: str) -> None:
    async with manager(redis_url) as tw:
        kept = await tw.enqueue_task("echo", args=["kept"], queue="other")
        with raw(redis_url) as db:
            db.set(f"{base_of(redis_url)}:{suffix}", "not taskward's")
        before = census(redis_url)
        with pytest.raises(StoreError):
            await tw.enqueue_task("echo", args=["refused"])
        after = census(redis_url)
        assert after["jobs"] == before["jobs"] == {kept.id}, after
        assert after["orphans"] == set(), after
        assert after["seq"] == before["seq"]
        assert (await tw.list_tasks()).total_entries == 1


async def test_a_bulk_insert_onto_a_foreign_job_key_writes_none_of_its_jobs(
    redis_url: str,
) -> None:
    """A key already at the id the second job of a bulk insert would take refuses all three."""
    async with manager(redis_url) as tw:
        kept = await tw.enqueue_task("echo", args=["kept"])
        with raw(redis_url) as db:
            db.set(f"{base_of(redis_url)}:job:{kept.id + 2}", "not taskward's")
        before = census(redis_url)
        with pytest.raises(StoreError, match="exists already"):
            await tw.enqueue_many("echo", [[1], [2], [3]])
        after = census(redis_url)
        assert after["jobs"] == before["jobs"] == {kept.id}, after
        assert after["seq"] == before["seq"]


async def test_a_foreign_running_set_refuses_the_whole_batch_of_outcomes(redis_url: str) -> None:
    """finish checks the sets it takes jobs out of too, before writing any outcome."""
    tw = manager(redis_url)
    tw.task(name="bystander")(echo)
    async with tw:
        first = await tw.enqueue_task("echo", args=[1])
        second = await tw.enqueue_task("bystander", args=[2], queue="other")
        backend = tw.backend
        now = datetime.now(UTC)
        claimed = [
            *await backend.fetch(
                queue="default",
                limit=1,
                worker_id="w",
                now=now,
                lease_until=now + timedelta(seconds=60),
            ),
            *await backend.fetch(
                queue="other",
                limit=1,
                worker_id="w",
                now=now,
                lease_until=now + timedelta(seconds=60),
            ),
        ]
        assert [j.id for j in claimed] == [first.id, second.id]
        with raw(redis_url) as db:
            db.set(f"{base_of(redis_url)}:tx:bystander:running", "not taskward's")
        updates = [
            JobUpdate(job_id=j.id, attempt=1, state=JobState.COMPLETED, at=now) for j in claimed
        ]
        with pytest.raises(StoreError, match="tx:bystander:running"):
            await backend.finish(updates, worker_id="w")
        for job in claimed:  # neither outcome was written: both still running, still indexed
            assert (await tw.get_task_status(job.id)).state is JobState.RUNNING
        assert census(redis_url)["orphans"] == set()


# -- scripts flushed -----------------------------------------------------------------------------
async def test_scripts_flushed_between_operations_are_reloaded(redis_url: str) -> None:
    db = raw(redis_url)
    async with manager(redis_url) as tw:
        first = await tw.enqueue_task("echo", args=[1])
        db.script_flush()
        second = await tw.enqueue_task("echo", args=[2])
        db.script_flush()
        third = await asyncio.to_thread(tw.enqueue_task_blocking, "echo", args=[3])
        db.script_flush()
        assert (await tw.get_statistics())["queues"]["default"]["pending"] == 3
        db.script_flush()
        await tw.drain(timeout=30)
        db.script_flush()
        done = await tw.list_tasks(state="completed")
        assert sorted(j.result for j in done.items) == [1, 2, 3]
        db.script_flush()
        await tw.retry_task(first.id)
        db.script_flush()
        await tw.drain(timeout=30)
        for job in (first, second, third):
            assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED
    db.close()


async def test_scripts_flushed_while_a_worker_drains_lose_nothing(redis_url: str) -> None:
    """SCRIPT FLUSH from inside running jobs: every script the worker uses is reloaded.

    The flush is sent from the job itself, blocking the event loop for its duration, so no
    reload of this process is in flight when it lands (see the next test for that race).
    """
    total, every = 240, 20
    runs: list[int] = []
    db = raw(redis_url)

    async def record(n: int) -> int:
        if n % every == every - 1:
            db.script_flush()  # blocking on purpose (see above)
        await asyncio.sleep(0.001)
        runs.append(n)
        return n

    tw = manager(redis_url, lease_seconds=5)
    tw.task(name="record")(record)
    async with tw:
        jobs = await tw.enqueue_many("record", [[n] for n in range(total)])
        await tw.drain(timeout=120, concurrency=4)
        page = await tw.list_tasks(per_page=1000)
        assert page.total_entries == total
        assert {j.state for j in page.items} == {JobState.COMPLETED}
        assert sorted(runs) == list(range(total))  # each exactly once
        assert sorted(j.result for j in page.items) == list(range(total))
        assert {j.id for j in jobs} == {j.id for j in page.items}
        db.script_flush()
        late = await asyncio.to_thread(tw.enqueue_task_blocking, "record", args=[total])
        db.script_flush()
        await tw.drain(timeout=30)
        assert (await tw.get_task_status(late.id)).result == total
    db.close()
    found = census(redis_url)
    assert found["orphans"] == found["dangling"] == set()
    assert found["pending"] == set()


async def test_a_flush_during_a_script_reload_is_survived(redis_url: str) -> None:
    """The race, made certain: a second SCRIPT FLUSH lands between redis-py's reload and its
    one retry (with a flush every few ms during a drain, about one run in three met it)."""
    async with manager(redis_url) as tw:
        first = await tw.enqueue_task("echo", args=[1])
        client = tw.backend._connections.client  # type: ignore[attr-defined]
        load = client.script_load

        async def load_then_flush(script: str) -> str:
            sha = await load(script)
            await client.script_flush()  # as another admin's flush would, a moment later
            return str(sha)

        client.script_load = load_then_flush
        await client.script_flush()
        try:
            second = await tw.enqueue_task("echo", args=[2])
        finally:
            client.script_load = load
        await tw.drain(timeout=30)
        for job in (first, second):
            assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED


# -- a full server -------------------------------------------------------------------------------
async def test_maxmemory_reached_is_a_clear_error_and_nothing_is_lost() -> None:
    payload = "x" * 2000
    extra = {"maxmemory": "2mb", "maxmemory-policy": "noeviction"}
    with private_redis(extra=extra) as server:
        url = server.url(0, prefix="full")
        acknowledged: dict[int, list[Any]] = {}
        async with manager(url) as tw:
            with pytest.raises(StoreError) as full:  # noqa: PT012 - enqueue until it is full
                for n in range(10_000):
                    job = await tw.enqueue_task("echo", args=[[n, payload]])  # echo takes one value
                    acknowledged[job.id] = [[n, payload]]
            assert len(acknowledged) > 10  # the server took some before it filled up
            message = str(full.value)
            assert "maxmemory" in message
            assert f"127.0.0.1:{server.port}" in message
            assert "nothing was written" in message
            # A batch is refused whole too (the OOM check comes before a script's first write).
            with pytest.raises(StoreError, match="maxmemory"):
                await tw.enqueue_many("echo", [[[n, payload]] for n in range(50)])
            with pytest.raises(StoreError, match="maxmemory"):
                await asyncio.to_thread(tw.enqueue_task_blocking, "echo", args=[[-1, payload]])
            # Everything acknowledged is there, intact; the refused writes left nothing.
            for job_id, args in acknowledged.items():
                stored = await tw.get_task_status(job_id)
                assert stored.args == args
                assert stored.state is JobState.PENDING
            page = await tw.list_tasks(per_page=1000)
            assert {j.id for j in page.items} == set(acknowledged)
            assert (await tw.get_statistics())["queues"]["default"]["pending"] == len(acknowledged)
            found = census(url)
            assert found["jobs"] == found["ix"] == found["tx"] == found["pending"]
            assert found["jobs"] == set(acknowledged)
            assert found["seq"] == max(acknowledged)  # no id was taken by a refused insert
            # Freeing memory makes the store writable again.
            server.command("CONFIG", "SET", "maxmemory", "0")
            late = await tw.enqueue_task("echo", args=["late"])
            assert late.id == max(acknowledged) + 1


# -- the eviction policy -------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
async def test_a_server_that_may_evict_is_refused_at_open(policy: str) -> None:
    with private_redis(extra={"maxmemory": "64mb", "maxmemory-policy": policy}) as server:
        url = server.url(0, prefix="evicting")
        with pytest.raises(NotSupportedServer) as refused:
            await manager(url).open()
        message = str(refused.value)
        assert f"maxmemory-policy {policy}" in message
        assert "maxmemory-policy noeviction" in message  # the fix
        assert "check_policy=false" in message
        assert server.command("KEYS", "*") == []
        proc = run_cli("stats", "--url", url)
        assert_one_error_line(proc, f"maxmemory-policy {policy}")
        # check_policy=false opens it, at the user's own risk.
        async with manager(server.url(0, prefix="evicting", check_policy=False)) as tw:
            job = await tw.enqueue_task("echo", args=["risky"])
            await tw.drain(timeout=30)
            assert (await tw.get_task_status(job.id)).result == "risky"


# -- URL options ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis://127.0.0.1:6379/0?prefix=", "prefix ''"),
        ("redis://127.0.0.1:6379/0?prefix=a%20b", "prefix 'a b'"),
        ("redis://127.0.0.1:6379/0?prefix=%7Bapp%7D", "prefix '{app}'"),
        ("redis://127.0.0.1:6379/0?prefix=a:b", "prefix 'a:b'"),
        ("redis://127.0.0.1:6379/0?prefix=" + "p" * 49, "1-48 characters"),
        ("redis://127.0.0.1:6379/0?pool_size=ten", "pool_size='ten'"),
        ("redis://127.0.0.1:6379/0?pool_size=1", "pool_size='1'"),
        ("redis://127.0.0.1:6379/0?pool_size=-5", "pool_size='-5'"),
        ("redis://127.0.0.1:6379/0?cluster=maybe", "cluster='maybe'"),
        ("redis://127.0.0.1:6379/0?check_policy=perhaps", "check_policy='perhaps'"),
        ("unix:///tmp/redis.sock?cluster=true", "over TCP"),
        ("redix://127.0.0.1:6379/0", "unknown backend URL"),
        # A script re-sent after a lost reply would run twice: redis-py's retries are refused.
        ("redis://127.0.0.1:6379/0?retry_on_timeout=true", "retry_on_timeout is refused"),
        ("redis://127.0.0.1:6379/0?retry_on_error=x", "retry_on_error is refused"),
    ],
)
def test_a_bad_url_option_is_refused_before_connecting(url: str, named: str) -> None:
    with pytest.raises(InvalidOptions) as refused:
        TaskManager(url)
    assert named in str(refused.value)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0?pool_size=ten", "redis://127.0.0.1:6379/0?prefix=a%20b"]
)
def test_the_cli_refuses_a_bad_url_option_in_one_line(url: str) -> None:
    assert_one_error_line(run_cli("stats", "--url", url), "invalid")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: a unix socket's path must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="tw-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_a_unix_socket_works(short_dir: Path) -> None:
    sock = short_dir / "redis.sock"
    with private_redis(extra={"unixsocket": str(sock), "unixsocketperm": "700"}) as server:
        url = f"unix://{sock}?db=0&prefix=sock"
        async with manager(url) as tw:
            job = await tw.enqueue_task("echo", args=["through the socket"])
            blocking = await asyncio.to_thread(tw.enqueue_task_blocking, "echo", args=["sync"])
            await tw.drain(timeout=30)
            assert (await tw.get_task_status(job.id)).result == "through the socket"
            assert (await tw.get_task_status(blocking.id)).result == "sync"
        # The same store over TCP.
        async with manager(server.url(0, prefix="sock")) as tcp:
            assert (await tcp.get_task_status(job.id)).state is JobState.COMPLETED
        # A socket nobody listens on is unreachable, naming it.
        with pytest.raises(BackendUnavailable, match=r"missing\.sock"):
            await manager(f"unix://{short_dir}/missing.sock?db=0").open()


@pytest.fixture
def tls_files(short_dir: Path) -> dict[str, str]:
    """A self-signed certificate for 127.0.0.1 (openssl), or a skip without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found: cannot make a TLS certificate")
    cert, key = short_dir / "cert.pem", short_dir / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return {"cert": str(cert), "key": str(key)}


async def test_rediss_connects_with_tls(tls_files: dict[str, str]) -> None:
    tls_port = free_port()
    extra = {
        "tls-port": str(tls_port),
        "tls-cert-file": tls_files["cert"],
        "tls-key-file": tls_files["key"],
        "tls-ca-cert-file": tls_files["cert"],
        "tls-auth-clients": "no",
    }
    try:
        server_cm = private_redis(extra=extra)
        server = server_cm.__enter__()
    except RuntimeError as exc:
        if "tls" in str(exc).lower():
            pytest.skip(f"this redis-server has no TLS: {exc}")
        raise
    try:
        verified = f"rediss://127.0.0.1:{tls_port}/0?prefix=tls&ssl_ca_certs={tls_files['cert']}"
        unverified = f"rediss://127.0.0.1:{tls_port}/0?prefix=tls&ssl_cert_reqs=none"
        async with manager(verified) as tw:
            job = await tw.enqueue_task("echo", args=["encrypted"])
            blocking = await asyncio.to_thread(tw.enqueue_task_blocking, "echo", args=["sync"])
            await tw.drain(timeout=30)
            assert (await tw.get_task_status(job.id)).result == "encrypted"
            assert (await tw.get_task_status(blocking.id)).result == "sync"
        async with manager(unverified) as tw:
            assert (await tw.get_task_status(job.id)).state is JobState.COMPLETED
        assert server.command("EXISTS", f"{{tls}}:job:{job.id}") == 1  # the same server
        # A certificate that the client cannot verify is refused, fast and clearly.
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{tls_port}") as refused:
            await manager(f"rediss://127.0.0.1:{tls_port}/0?prefix=tls").open()
        assert "certificate" in str(refused.value).lower()
        assert time.monotonic() - started < FAST
    finally:
        server_cm.__exit__(None, None, None)


# -- two stores on one server --------------------------------------------------------------------
async def test_two_prefixes_on_one_server_are_isolated(redis_server: RedisServer) -> None:
    # "app" and "app.x" share a beginning: their keys ({app}:…, {app.x}:…) must not overlap.
    first_url = redis_server.url(0, prefix=f"app{os.getpid()}")
    second_url = redis_server.url(0, prefix=f"app{os.getpid()}.x")
    async with manager(first_url) as first, manager(second_url) as second:
        job = await first.enqueue_task("echo", args=["first's"], queue="mail")
        await first.schedule_recurring_task("nightly", "echo", cron="0 3 * * *")
        await first.pause_queue("mail")
        # Nothing of the first store shows in the second.
        assert (await second.list_tasks()).total_entries == 0
        with pytest.raises(JobNotFound):
            await second.get_task_status(job.id)
        stats = await second.get_statistics()
        assert stats["queues"] == {}
        assert stats["paused"] == []
        assert await second.list_recurring_tasks() == []
        # A worker of the second store does not run the first's jobs, nor see its pause.
        other = await second.enqueue_task("echo", args=["second's"], queue="mail")
        assert other.id == job.id  # each store numbers its own jobs
        await second.drain(["mail"], timeout=30)
        assert (await second.get_task_status(other.id)).result == "second's"
        mine = await first.get_task_status(job.id)
        assert mine.state is JobState.PENDING
        assert mine.args == ["first's"]
        assert (await first.get_statistics())["paused"] == ["mail"]
        # Deleting and pruning in one store leaves the other alone.
        await second.delete_task(other.id)
        assert (await first.get_task_status(job.id)).args == ["first's"]
        await first.resume_queue("mail")
        await first.drain(["mail"], timeout=30)
        assert (await first.get_task_status(job.id)).result == "first's"
        assert [s.name for s in await first.list_recurring_tasks()] == ["nightly"]


async def test_one_prefix_on_two_databases_is_two_stores(redis_server: RedisServer) -> None:
    prefix = f"db{os.getpid()}"
    async with (
        manager(redis_server.url(0, prefix=prefix)) as zero,
        manager(redis_server.url(1, prefix=prefix)) as one,
    ):
        job = await zero.enqueue_task("echo", args=[0])
        with pytest.raises(JobNotFound):
            await one.get_task_status(job.id)
        assert (await one.get_statistics())["queues"] == {}
        await zero.delete_task(job.id)


def test_census_reads_a_consistent_store(redis_url: str) -> None:
    """The checker above: a store written only by taskward has no orphan nor dangling entry."""

    async def fill() -> None:
        async with manager(redis_url) as tw:
            await tw.enqueue_many("echo", [[n] for n in range(5)])
            await tw.enqueue_task("echo", args=["later"], delay=3600)

    asyncio.run(fill())
    found = census(redis_url)
    assert len(found["jobs"]) == 6
    assert found["orphans"] == found["dangling"] == set()
    assert len(found["pending"]) == 5
    assert found["seq"] == 6
    json.dumps({k: sorted(v) if isinstance(v, set) else v for k, v in found.items()})
