"""Cancelling at any moment on PostgreSQL: a worker, an open, a migration end promptly and
leave no connection behind.

The bug (issue 19): an application that started ``run_worker`` as a task and failed before
the worker had opened the store never exited. The cancel landed while the connection pool
was filling; nothing closed the pool, and at ``asyncio.run``'s final cancellation its worker
tasks, busy connecting, swallowed the cancel and waited forever for work.

Each run names its connections (libpq's ``application_name``, passed through the URL) so
that ``pg_stat_activity`` tells which are its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from taskward.backends.postgres import PostgresBackend, parse_postgres_url

pytestmark = pytest.mark.postgres

DELAYS = (0.0, 0.001, 0.005, 0.02)  # seconds between starting and cancelling
PROMPT = 3.0  # seconds: "ends promptly", with room for a slow CI machine


def named(pg_url: str) -> tuple[str, str]:
    """``pg_url`` with a fresh application_name, and that name."""
    name = f"tw_cancel_{uuid.uuid4().hex[:12]}"
    return f"{pg_url}&application_name={name}", name


async def connections_of(pg_url: str, name: str, *, settle: float = 2.0) -> int:
    """How many server sessions ``name`` has, once closing ones had ``settle`` s to go."""
    deadline = time.monotonic() + settle
    async with await psycopg.AsyncConnection.connect(
        parse_postgres_url(pg_url)[0], autocommit=True
    ) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
            )
            row = await cursor.fetchone()
            count = int(row[0]) if row else 0
            if count == 0 or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.05)


# Cancels an open at each delay; prints one JSON line per delay. In a subprocess: with the
# bug, psycopg_pool's tasks outlive the cancel, and the event loop can never be shut down.
OPEN_SWEEP = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import psycopg
    from taskward.backends.postgres import PostgresBackend, parse_postgres_url

    url, name, delays = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    COUNT = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"

    async def sessions(watch):
        for _ in range(40):  # a closed session leaves pg_stat_activity within moments
            count = (await (await watch.execute(COUNT, [name])).fetchone())[0]
            if count == 0:
                break
            await asyncio.sleep(0.05)
        return count

    def pool_tasks():
        return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("taskward")]

    async def once(watch, delay):
        backend = PostgresBackend(url)
        opening = asyncio.create_task(backend.open())
        await asyncio.sleep(delay)
        opening.cancel()
        started = time.monotonic()
        await asyncio.wait({opening}, timeout=5)
        out = {"delay": delay, "seconds": time.monotonic() - started, "ended": opening.done()}
        out["cancelled"] = opening.cancelled()
        out["tasks_after_cancel"] = pool_tasks()
        out["sessions_after_cancel"] = await sessions(watch)
        await backend.close()
        out["tasks_after_close"] = pool_tasks()
        out["sessions_after_close"] = await sessions(watch)
        print(json.dumps(out), flush=True)

    async def main():
        conninfo = parse_postgres_url(url)[0]
        watching = {"autocommit": True, "application_name": "tw_watch"}  # not one of ours
        async with await psycopg.AsyncConnection.connect(conninfo, **watching) as watch:
            for delay in delays:
                await once(watch, delay)

    asyncio.run(main())
    """
)


async def time_to_open(pg_url: str) -> float:
    """Seconds a backend takes to open its pool here (cancels are aimed inside it)."""
    backend = PostgresBackend(pg_url)
    started = time.monotonic()
    await backend.open()
    took = time.monotonic() - started
    await backend.close()
    return took


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with ``args`` in a new interpreter, failing the test if it hangs."""
    try:
        return subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(f"never exited; its output so far:\n{out}")


async def test_cancelling_an_open_at_any_moment_ends_it_and_leaves_no_connection(
    pg_url: str,
) -> None:
    """Cancelled before, during and after the probe and the pool's filling: the open ends at
    once, no pool task outlives it, and the server has no session of ours left: none after
    the cancel (when it did cancel the open), none after close()."""
    took = await time_to_open(pg_url)
    delays = sorted({*DELAYS, *(took * f for f in (0.25, 0.5, 0.75, 0.9, 1.1))})
    url, name = named(pg_url)
    done = await asyncio.to_thread(run_script, OPEN_SWEEP, url, name, json.dumps(delays))
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["delay"] for r in results] == delays
    for r in results:
        assert r["ended"], r
        assert r["seconds"] < PROMPT, r
        if r["cancelled"]:
            assert (r["tasks_after_cancel"], r["sessions_after_cancel"]) == ([], 0), r
        assert (r["tasks_after_close"], r["sessions_after_close"]) == ([], 0), r
    assert any(r["cancelled"] for r in results)
    assert await connections_of(pg_url, name) == 0


async def test_cancelling_a_migration_waiting_for_its_lock_ends_it(pg_url: str) -> None:
    """Another process migrating holds the lock: a cancelled migrate() stops waiting at once,
    holds no lock afterwards, and close() leaves no session behind."""
    url, name = named(pg_url)
    backend = PostgresBackend(url)
    await backend.migrate()
    async with await psycopg.AsyncConnection.connect(parse_postgres_url(pg_url)[0]) as other:
        await other.execute(backend.q["migration_lock"], {"schema": backend.schema})
        migrating = asyncio.create_task(backend.migrate())
        await asyncio.sleep(0.2)  # waiting for the lock (nothing else can end it)
        assert not migrating.done()
        migrating.cancel()
        await asyncio.wait({migrating}, timeout=PROMPT)
        assert migrating.cancelled()
        await other.rollback()
    await asyncio.wait_for(backend.migrate(), PROMPT)  # the lock is free: nothing kept it
    await backend.close()
    assert await connections_of(pg_url, name) == 0


async def test_cancelling_close_at_any_moment_still_closes_everything(pg_url: str) -> None:
    """close() cancelled after 1, 2, 3 … turns of the event loop (inside the listener's stop,
    the pools' close): every part, the sync producers' pool too, is closed all the same, and
    the cancel goes through. (A
    task cancelled before its first turn never runs: nothing to test there.)"""
    for turns in range(1, 12):
        url, name = named(pg_url)
        backend = PostgresBackend(url)
        await backend.migrate()  # the pool
        await asyncio.to_thread(backend.migrate_blocking)  # the sync producers' pool
        await backend.extend_leases([1], worker_id="w", lease_until=datetime.now(UTC))
        await backend.wait_for_jobs(["default"], timeout=0.01)  # starts the listener
        for _ in range(200):
            if backend.listening:
                break
            await asyncio.sleep(0.01)
        assert backend.listening
        closing = asyncio.create_task(backend.close())
        for _ in range(turns):
            await asyncio.sleep(0)
        closing.cancel()
        await asyncio.wait({closing}, timeout=PROMPT)
        assert closing.done()
        left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("taskward")]
        assert left == [], f"cancelled after {turns} turns"
        assert await connections_of(pg_url, name) == 0, f"cancelled after {turns} turns"


# The application of the issue: it starts a worker as a task, then is cancelled or fails.
APP = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import psycopg
    from taskward import TaskManager
    from taskward.backends.postgres import parse_postgres_url

    url, name, mode, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    out = {}

    async def sessions():
        conninfo = parse_postgres_url(url)[0]
        watching = {"autocommit": True, "application_name": "tw_watch"}  # not one of ours
        async with await psycopg.AsyncConnection.connect(conninfo, **watching) as watch:
            for _ in range(40):  # a closed session leaves pg_stat_activity within moments
                cursor = await watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
                )
                count = (await cursor.fetchone())[0]
                if count == 0:
                    break
                await asyncio.sleep(0.05)
        return count

    async def main():
        tw = TaskManager(url)
        task = asyncio.create_task(tw.run_worker({"default": 1}, install_signal_handlers=False))
        await asyncio.sleep(delay)
        if mode == "fail":
            raise RuntimeError("the application fails")  # asyncio.run cancels the worker
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await tw.close()
        out["sessions_after_close"] = await sessions()  # the application goes on

    started = time.monotonic()
    try:
        asyncio.run(main())
    except RuntimeError:
        pass
    out["seconds"] = time.monotonic() - started
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("mode", ["cancel", "fail"])
@pytest.mark.parametrize("delay", DELAYS, ids=lambda d: f"{d * 1000:g}ms")
async def test_an_application_cancelling_its_worker_right_away_exits(
    pg_url: str, mode: str, delay: float
) -> None:
    """Cancelled by the application, or by asyncio.run after the application failed: the
    process exits within seconds, and the server keeps no session of it (an application
    that cancelled its worker and closed the manager has none left while it goes on)."""
    url, name = named(pg_url)
    done = await asyncio.to_thread(run_script, APP, url, name, mode, str(delay))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["seconds"] < PROMPT, done.stderr
    if mode == "cancel":
        assert out["sessions_after_close"] == 0
    assert await connections_of(pg_url, name) == 0
