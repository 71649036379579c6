"""Item 5: the store misbehaves. 5% of outcome and heartbeat writes fail (half of them after
the write committed: the reply was lost); PostgreSQL restarts twice under long jobs; a SQLite
writer killed mid-transaction leaves a consistent database with whole batches only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import (
    TESTS,
    RunLog,
    Workers,
    all_jobs,
    count_of,
    counts,
    enqueue,
    job_number,
    report,
    run,
    running_numbers,
    start_producer,
    wait_until,
)
from taskward import FrozenClock, JobState, TaskManager
from taskward.errors import BackendUnavailable
from taskward.runtime.maintenance import Rescuer
from tests_support.ledger_producer import Ledger
from tests_support.servers import RedisServer, private_redis

LEASE = 1.0
HEARTBEAT = LEASE / 3  # HeartbeatService: three heartbeats per lease


def recovery_gaps(log: RunLog) -> dict[str, list[float]]:
    """Seconds from each injected fault to the next successful call (same method, process)."""
    pending: dict[tuple[str, str], float] = {}
    gaps: dict[str, list[float]] = defaultdict(list)
    for parts in log.lines:
        if parts[0] == "fault":
            pending.setdefault((parts[1], parts[2]), float(parts[4]))
        elif parts[0] == "recovered":
            since = pending.pop((parts[1], parts[2]))
            gaps[parts[1]].append(float(parts[3]) - since)
    return gaps


def test_five_percent_of_writes_failing_strands_and_loses_nothing(
    workers: Workers, store_url: str
) -> None:
    n = 240  # 9 s of work: about 27 heartbeats per worker
    run(enqueue(store_url, n))
    workers.base_env = {
        "REL_LEASE": str(LEASE),
        "REL_SLEEP": "0.3",
        "REL_CONCURRENCY": "4",
        "REL_FAIL_EVERY": "20",  # 5%, deterministic: never two faults in a row
    }
    workers.start(2)
    wait_until(lambda: count_of(store_url, JobState.COMPLETED) == n, 120, "all completed")
    assert workers.stop_all() == [0, 0]
    log = workers.log()
    faults = log.of("fault")
    assert {f[1] for f in faults} == {"finish", "extend_leases"}, "both seams were hit"
    assert set(range(n)) == set(log.dones)  # none lost
    assert [i for i, c in log.starts.items() if c > 1] == []  # no lease lapsed: none re-run
    jobs = run(all_jobs(store_url))
    assert {j.state for j in jobs} == {JobState.COMPLETED}  # none stuck
    assert [j.id for j in jobs if j.errors] == []  # none rescued (Orphaned)
    lost_replies = Counter(f[2] for f in faults if f[1] == "finish" and f[3] == "after")
    assert lost_replies, "some finish faults strike after the commit"
    for proc in workers.procs:  # no other run existed: the log must not blame one …
        output = workers.output(proc)
        assert "another run owns it" not in output
        # … but say that the outcome had been stored when its reply was lost
        stored = output.count("was stored before the store's reply was lost")
        assert stored >= lost_replies[str(proc.pid)]
    gaps = recovery_gaps(log)
    worst = max(g for method in gaps.values() for g in method)
    report(
        "store_faults",
        backend=store_url.split(":")[0],
        jobs=n,
        faults_finish=sum(f[1] == "finish" for f in faults),
        faults_heartbeat=sum(f[1] == "extend_leases" for f in faults),
        lost=0,
        rerun=0,
        worst_recovery_seconds=round(worst, 3),
        worst_recovery_heartbeats=round(worst / HEARTBEAT, 2),
    )


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_postgres_restarted_twice_under_long_jobs(tmp_path: Path, store_url: str) -> None:
    from tests_support.servers import PostgresServer, find_pg_bin

    bin_dir = find_pg_bin()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)  # its own cluster: the session's one stays up
    server.start()
    workers = Workers(f"{server.url()}?schema=restarts", tmp_path)
    try:
        n = 24
        run(enqueue(workers.url, n))
        # Leases longer than an outage, bodies longer than a restart: jobs span both restarts.
        workers.base_env = {"REL_LEASE": "6", "REL_SLEEP": "2", "REL_CONCURRENCY": "4"}
        workers.start(2)
        for restarted in (1, 2):
            wait_until(lambda r=restarted: len(workers.log().starts) >= 8 * r, 60, "jobs running")
            running = workers.log().unfinished()
            assert running, "the restart must land while jobs run"
            server.restart()  # fast shutdown: every client connection is cut
        wait_until(lambda: count_of(workers.url, JobState.COMPLETED) == n, 120, "all done")
        assert all(p.poll() is None for p in workers.procs), "a worker died with the database"
        assert workers.stop_all() == [0, 0]
        log = workers.log()
        assert set(log.dones) == set(range(n))  # none lost
        assert [i for i, c in log.starts.items() if c > 1] == []  # none ran twice
        report("pg_restarts", backend="postgresql", jobs=n, restarts=2, lost=0, rerun=0)
    finally:
        workers.cleanup()
        server.destroy()


PRODUCER = """
import asyncio, sys
from taskward import TaskManager
async def main():
    async with TaskManager(sys.argv[1]) as tw:
        print("open", flush=True)
        for _ in range(1000):
            await tw.enqueue_many("tests_support.reliability_app:record",
                                  [[i] for i in range(5000)], batch_size=5000)
asyncio.run(main())
"""


def test_sqlite_writer_killed_mid_transaction_leaves_whole_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for kill in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, url], env=env, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"open\n"
        before = count_of(url, JobState.PENDING)
        wait_until(lambda b=before: count_of(url, JobState.PENDING) > b, 60, "a batch committed")
        time.sleep(0.05 * kill)  # inside a later batch's transaction, most likely
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        with sqlite3.connect(tmp_path / "jobs.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            (count,) = db.execute("SELECT COUNT(*) FROM taskward_jobs").fetchone()
            (ids,) = db.execute("SELECT COUNT(DISTINCT id) FROM taskward_jobs").fetchone()
        assert count % 5000 == 0  # each batch is one transaction: all of it or none
        assert ids == count
    report("sqlite_kill_mid_insert", kills=3, integrity="ok", partial_batches=0)


async def test_an_outcome_waiting_for_the_store_keeps_its_job_leased() -> None:
    """The store refuses outcome writes for longer than a lease while heartbeats still get
    through: the worker holds the outcome, so the job must not be rescued and run again."""
    clock = FrozenClock()
    async with TaskManager("memory://", clock=clock, lease_seconds=30) as tw:

        async def quick() -> str:
            return "done"

        job = await tw.enqueue_task(quick)
        worker = tw.make_worker({"default": 1})
        (claimed,) = await worker.fetch("default", 1)
        finish = tw.backend.finish

        async def store_refuses(updates: Any, *, worker_id: str) -> list[bool]:
            if any(u.lease_expired_before is None for u in updates):  # not a Rescuer's write
                raise BackendUnavailable("the store takes no outcome from this worker now")
            return await finish(updates, worker_id=worker_id)

        tw.backend.finish = store_refuses  # type: ignore[method-assign]
        await worker.start_job(claimed)
        with pytest.raises(BackendUnavailable):
            await worker.acker.flush()  # kept for the next flush
        rescuer = Rescuer(
            tw.backend,
            clock,
            1,
            leadership=None,
            resolve=tw._lookup,
            default_policy=tw.default_policy,
        )
        for _ in range(4):  # two leases go by, heartbeats on time
            clock.advance(15)
            await worker.heartbeat()
            await rescuer.run_once()
        tw.backend.finish = finish  # type: ignore[method-assign]
        await worker.acker.flush()
        worker.close()
        stored = await tw.get_task_status(job.id)
        assert (stored.state, stored.attempt, stored.errors) == (JobState.COMPLETED, 1, ())


# -- Redis: the server restarted, killed, paused, its scripts flushed, its clients cut ---------
# Each test runs a redis-server of its own (the session's one stays up), and producers that keep
# a ledger of every acknowledged enqueue (tests_support.ledger_producer): the ledger is to the
# store's promises what the run log is to the workers' runs.


@dataclass
class RedisLoad:
    """Producers and workers on a private redis-server, and what they all said happened."""

    server: RedisServer
    workers: Workers
    producers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.workers.url

    def ledger(self, k: int) -> Path:
        return self.workers.tmp / f"ledger-{k}"

    def start_producers(self, n: int, **options: float) -> None:
        for k in range(n):
            out = self.workers.tmp / f"producer-{k}.out"
            self.producers.append(
                start_producer(self.url, self.ledger(k), out, first=k * 10**7, **options)
            )

    def stop_producers(self) -> None:
        for proc in self.producers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.producers:
            assert proc.wait(30) == 0, proc.args

    def ledgers(self) -> list[Ledger]:
        return [Ledger.read(self.ledger(k)) for k in range(len(self.producers))]

    def acked(self) -> int:
        return sum(len(ledger.acked) for ledger in self.ledgers())

    def cleanup(self) -> None:
        for proc in self.producers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.workers.cleanup()


@contextlib.contextmanager
def redis_load(tmp_path: Path, **server_options: Any) -> Iterator[RedisLoad]:
    with private_redis(**server_options) as server:
        load = RedisLoad(server, Workers(server.url(0, prefix="faults"), tmp_path))
        try:
            yield load
        finally:
            load.cleanup()


def settle_and_check(load: RedisLoad, hit: set[int]) -> dict[str, int]:
    """Stop the producers, let the workers finish everything, and check the contract.

    Every acknowledged enqueue is in the store under the id it was given; every stored job was
    enqueued once (a call that raised may or may not have stored its jobs: nobody was told);
    every stored job completes and its body finished (none lost, none completed without its
    function returning); a body ran twice only if it was running when a fault landed (``hit``).
    """
    load.stop_producers()
    wait_until(lambda: not pending_work(load.url), 120, "every stored job finished")
    assert load.workers.stop_all() == [0] * len(load.workers.procs)
    ledgers = load.ledgers()
    acked = {i: job_id for ledger in ledgers for i, job_id in ledger.acked.items()}
    maybe = set().union(*(ledger.maybe_stored() for ledger in ledgers))
    jobs = run(all_jobs(load.url))
    numbers = Counter(job_number(j) for j in jobs)
    by_number = {job_number(j): j for j in jobs}
    missing = [i for i in acked if i not in by_number]
    assert missing == [], f"acknowledged enqueues gone: {missing[:20]}"
    assert all(by_number[i].id == job_id for i, job_id in acked.items())
    assert [i for i, c in numbers.items() if c > 1] == [], "a job stored twice"
    assert set(numbers) - set(acked) <= maybe, "a stored job nobody enqueued"
    assert {j.state for j in jobs} == {JobState.COMPLETED}
    log = load.workers.log()
    lost = set(numbers) - set(log.dones)
    assert not lost, f"completed without its body finishing: {sorted(lost)[:20]}"
    assert set(log.starts) <= set(numbers)
    started_twice = {i for i, c in log.starts.items() if c > 1}
    done_twice = {i for i, c in log.dones.items() if c > 1}
    assert started_twice | done_twice <= hit, sorted((started_twice | done_twice) - hit)[:20]
    assert log.overlaps() == []
    for proc in load.workers.procs:  # no run was rescued from a live worker
        assert "another run owns it" not in load.workers.output(proc)
    return {
        "acked": len(acked),
        "failed_calls_stored": len(set(numbers) - set(acked)),
        "failed_calls_not_stored": len(maybe - set(numbers)),
        "lost": 0,
        "started_twice": len(started_twice),
        "done_twice": len(done_twice),
        "rescued": sum(bool(j.errors) for j in jobs),
    }


def pending_work(url: str) -> bool:
    """True while the store holds a job that is not finished (or cannot be reached)."""
    try:
        states = run(counts(url))
    except BackendUnavailable:
        return True
    return any(n for state, n in states.items() if state is not JobState.COMPLETED)


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_redis_restarted_twice_under_long_jobs(tmp_path: Path, store_url: str) -> None:
    """As the PostgreSQL restarts above: a clean SHUTDOWN (AOF flushed) and start, twice."""
    with redis_load(tmp_path, appendonly=True, appendfsync="always") as load:
        workers, n = load.workers, 24
        run(enqueue(load.url, n))
        workers.base_env = {"REL_LEASE": "6", "REL_SLEEP": "2", "REL_CONCURRENCY": "4"}
        workers.start(2)
        for restarted in (1, 2):
            wait_until(lambda r=restarted: len(workers.log().starts) >= 8 * r, 60, "jobs running")
            assert workers.log().unfinished(), "the restart must land while jobs run"
            load.server.restart()  # every client connection is cut
        wait_until(lambda: count_of(load.url, JobState.COMPLETED) == n, 120, "all done")
        assert all(p.poll() is None for p in workers.procs), "a worker died with the server"
        assert workers.stop_all() == [0, 0]
        log = workers.log()
        assert set(log.dones) == set(range(n))  # none lost
        assert [i for i, c in log.starts.items() if c > 1] == []  # none ran twice
        report("redis_restarts", backend="redis", jobs=n, restarts=2, lost=0, rerun=0)


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_redis_killed_under_load_with_aof_always_loses_no_acknowledged_job(
    tmp_path: Path, store_url: str
) -> None:
    """SIGKILL of the redis-server (appendfsync always) while producers and workers run, twice.

    The server is started again on the same port and files 0.3 s later; nobody is restarted.
    """
    began = time.monotonic()
    with redis_load(tmp_path, appendonly=True, appendfsync="always") as load:
        workers = load.workers
        workers.base_env = {"REL_LEASE": "5", "REL_SLEEP": "0.005", "REL_CONCURRENCY": "8"}
        workers.start(2)
        load.start_producers(2, batch=5, pause=0.01)
        hit: set[int] = set()
        for kill in (1, 2):
            wait_until(lambda k=kill: len(workers.log().dones) >= 800 * k, 60, "work done")
            load.server.kill()
            hit |= workers.log().unfinished()
            time.sleep(0.3)
            load.server.start()
            hit |= run(running_numbers(load.url))  # claimed (and kept) before the kill
        wait_until(lambda: len(workers.log().dones) >= 2400, 60, "work after the last kill")
        assert all(p.poll() is None for p in workers.procs), "a worker died with the server"
        figures = settle_and_check(load, hit)
        failed_calls = sum(len(ledger.failed) for ledger in load.ledgers())
    report(
        "redis_kill9_aof_always",
        backend="redis",
        kills=2,
        failed_calls=failed_calls,
        running_at_kills=len(hit),
        seconds=round(time.monotonic() - began, 1),
        **figures,
    )


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_redis_script_flush_under_load_loses_nothing(tmp_path: Path, store_url: str) -> None:
    """``SCRIPT FLUSH`` five times while producers and workers run: redis-py reloads each
    script on ``NOSCRIPT`` and runs it again, so no call fails, nothing is lost or re-run."""
    with redis_load(tmp_path) as load:
        workers = load.workers
        workers.base_env = {"REL_LEASE": "5", "REL_SLEEP": "0.005", "REL_CONCURRENCY": "8"}
        workers.start(2)
        load.start_producers(2, batch=5, pause=0.01)
        wait_until(lambda: len(workers.log().dones) >= 200, 60, "work done")
        for _ in range(5):
            assert load.server.command("SCRIPT", "FLUSH") == "OK"
            time.sleep(0.3)
        figures = settle_and_check(load, set())
        assert [ledger.failed for ledger in load.ledgers()] == [[], []], "an enqueue failed"
        for proc in workers.procs:
            assert "Traceback" not in workers.output(proc), workers.output(proc)
    report("redis_script_flush", backend="redis", flushes=5, **figures)


def resp(*args: str) -> bytes:
    """One command in the Redis protocol (RESP2)."""
    parts = [f"*{len(args)}\r\n".encode()]
    parts += [f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args]
    return b"".join(parts)


def cut_while_paused(server: RedisServer, pause: float) -> int:
    """SIGSTOP the server, queue ``CLIENT KILL`` behind the commands piling up, SIGCONT.

    The kill comes on a connection the server accepted before the pause, and is sent last:
    woken, the server reads the waiting commands in the order they arrived, in one round, and
    only then writes the replies. The commands it runs before the kill have their replies
    thrown away with their connection (the script ran, nobody was told); the connections are
    cut. Returns how many connections were cut.
    """
    assert server.process is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as admin:
        server.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(pause)  # workers and producers send commands that wait, unread
            admin.sendall(resp("CLIENT", "KILL", "TYPE", "normal"))
            admin.sendall(resp("CLIENT", "KILL", "TYPE", "pubsub"))
        finally:
            server.process.send_signal(signal.SIGCONT)
        replies = admin.makefile("rb")
        cut = [replies.readline(), replies.readline()]
    assert all(line.startswith(b":") for line in cut), cut
    return sum(int(line[1:]) for line in cut)


@pytest.mark.parametrize("store_url", ["redis"], indirect=True)
def test_redis_paused_and_clients_cut_under_load(tmp_path: Path, store_url: str) -> None:
    """The server paused (SIGSTOP of redis-server, 0.4 s: less than a lease) while producers
    and workers run, and every client connection cut as it resumes; eight times.

    A cut loses the reply of whatever ran just before it: an enqueue the producer was not told
    about may be stored (counted; not acknowledged, so not owed), a claim whose reply was lost
    is rescued when its lease expires and runs once (attempt 2), an outcome stored before its
    reply was lost is read back by the Acker (the worker must not blame another run).
    """
    with redis_load(tmp_path) as load:
        workers, server = load.workers, load.server
        workers.base_env = {"REL_LEASE": "3", "REL_SLEEP": "0.005", "REL_CONCURRENCY": "8"}
        workers.start(2)
        load.start_producers(2, batch=5, pause=0.01)
        wait_until(lambda: len(workers.log().dones) >= 200, 60, "work done")
        cut = 0
        for _ in range(8):
            cut += cut_while_paused(server, 0.4)
            time.sleep(0.4)
        assert all(p.poll() is None for p in workers.procs), "a worker died"
        figures = settle_and_check(load, set())
        failed_calls = sum(len(ledger.failed) for ledger in load.ledgers())
        read_back = sum(
            workers.output(p).count("was stored before the store's reply was lost")
            for p in workers.procs
        )
        lost_replies = figures["failed_calls_stored"] + figures["rescued"] + read_back
        assert lost_replies, "the cuts should throw away the replies of scripts that ran"
    report(
        "redis_paused_and_cut",
        backend="redis",
        pauses=8,
        connections_cut=cut,
        failed_calls=failed_calls,
        outcomes_read_back=read_back,
        **figures,
    )
