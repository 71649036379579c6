"""kill -9 while 64 producers (32 coroutines, 32 threads) are mid-commit.

Their enqueues share commits (taskward.commits). Every enqueue that returned is in the
store, with the id it returned, and no job is stored twice: a shared commit acknowledges a
job only once it is durable, and never writes one twice. Run on SQLite (synchronous=FULL) and
PostgreSQL (synchronous_commit on).
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from reliability.harness import report, run, sized, start_producer, wait_until
from taskward import TaskManager
from taskward.jobs import Job
from tests_support.ledger_producer import Ledger


async def stored_jobs(url: str) -> list[Job]:
    jobs: list[Job] = []
    async with TaskManager(url) as tw:
        page = 1
        while True:
            found = await tw.list_tasks(page=page, per_page=1000)
            jobs += found.items
            if len(found.items) < 1000:
                return jobs
            page += 1


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_kill_9_with_64_producers_mid_commit(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'kill.db'}"
        if store == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    rounds = sized(3, 10)
    acked: dict[int, int] = {}
    maybe: set[int] = set()
    for round_ in range(rounds):
        ledger = tmp_path / f"ledger-{round_}"
        producer = start_producer(
            url, ledger, tmp_path / f"producer-{round_}.out", concurrent=32, first=round_ * 10**7
        )
        target = 300 + 100 * round_
        wait_until(
            lambda ledger=ledger, target=target: len(Ledger.read(ledger).acked) >= target,
            60,
            "acknowledged enqueues",
        )
        producer.send_signal(signal.SIGKILL)
        producer.wait(30)
        found = Ledger.read(ledger)
        acked.update(found.acked)
        maybe |= found.maybe_stored()
    jobs = run(stored_jobs(url))
    numbers = Counter(int(job.args[0]) for job in jobs)
    by_id = {job.id: int(job.args[0]) for job in jobs}
    # Every acknowledged enqueue is stored, under the id its caller was given.
    missing = [n for n, job_id in acked.items() if by_id.get(job_id) != n]
    assert missing == []
    # No job is stored twice; a job nobody was told about (in flight at the kill) may exist.
    assert [n for n, count in numbers.items() if count > 1] == []
    unacknowledged = set(numbers) - set(acked) - maybe
    report(
        "group commit kill -9",
        store=store,
        rounds=rounds,
        acknowledged=len(acked),
        stored=len(jobs),
        in_flight_at_kill_and_stored=len(unacknowledged),
    )
