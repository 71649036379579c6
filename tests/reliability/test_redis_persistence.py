"""Item 5 on Redis: the persistence loss window of each server setting, measured.

For each setting a producer process enqueues at full speed (``enqueue_many`` calls of 10 jobs,
one after the other) into a redis-server of its own, and keeps a ledger of every job the store
acknowledged (``tests_support.ledger_producer``). After a random 2-3 s the redis-server is
SIGKILLed, then the producer, and the server is started again on the same port and files. The
test counts the acknowledged jobs that are gone, and how far back before the kill the oldest
of them had been acknowledged (the window).

- ``none`` (no AOF, no RDB): everything is gone; asserted.
- ``rdb`` (``save "1 1"``): what came after the last snapshot's fork; measured.
- ``everysec`` (``appendonly yes``, ``appendfsync everysec``): measured.
- ``always`` (``appendonly yes``, ``appendfsync always``): **nothing**; asserted.

A SIGKILL of the server is not a power loss: what Redis wrote to the AOF reaches the kernel
before the reply is sent (with ``everysec`` too, unless a slow fsync made Redis postpone the
write), and the kernel keeps it. The test measures the process crash; the window of
``everysec`` on an OS crash or power loss (up to about a second, two if the disk stalls) is
Redis's documented figure. See docs/RELIABILITY.md, section 5.

CI: one kill per setting (about 20 s in all). ``TASKWARD_LONG=1``: three.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import (
    LONG,
    all_jobs,
    job_number,
    report,
    run,
    sized,
    start_producer,
    wait_until,
)
from tests_support.ledger_producer import Ledger
from tests_support.servers import RedisServer, private_redis

SETTINGS: dict[str, dict[str, Any]] = {
    "none": {"appendonly": False, "save": ""},
    "rdb": {"appendonly": False, "save": "1 1"},
    "everysec": {"appendonly": True, "appendfsync": "everysec"},
    "always": {"appendonly": True, "appendfsync": "always"},
}


def kill_mid_stream(
    server: RedisServer, tmp: Path, rng: random.Random, round_: int
) -> dict[str, Any]:
    """Produce, SIGKILL the server mid-stream, restart it; the figures of this kill."""
    url = server.url(0, prefix=f"loss{round_}")  # a store per round: what it kept is all its own
    ledger = tmp / f"ledger-{round_}"
    producer = start_producer(url, ledger, tmp / f"producer-{round_}.out")
    try:
        began = time.monotonic()
        wait_until(lambda: Ledger.read(ledger).acked, 30, "a first acknowledged enqueue")
        time.sleep(rng.uniform(2.0, 3.0))
        killed_at = time.monotonic()
        server.kill()  # SIGKILL mid-stream: the producer is writing as fast as it can
    finally:
        producer.send_signal(signal.SIGKILL)  # before the restart: no retry lands after it
        producer.wait(10)
    ledger_seen = Ledger.read(ledger)
    server.start()
    stored = {job_number(j) for j in run(all_jobs(url))}
    acked = ledger_seen.acked
    lost = set(acked) - stored
    ack_time = dict(zip(sorted(acked), sorted_times(ledger), strict=True))
    seconds = killed_at - began
    return {
        "acked": len(acked),
        "lost": len(lost),
        "window_s": round(killed_at - min(ack_time[i] for i in lost), 3) if lost else 0.0,
        "acked_per_s": round(len(acked) / seconds),
        "kept_unacked": len(stored - set(acked)),
    }


def sorted_times(ledger: Path) -> list[float]:
    """The ack time of each acknowledged number, in number order (numbers rise with time)."""
    times = []
    for line in ledger.read_text().splitlines():
        kind, *rest = line.split()
        if kind == "ack":
            times.extend([float(rest[0])] * (len(rest) - 1))
    return times


@pytest.mark.timeout(300 if LONG else 90)
@pytest.mark.usefixtures("redis_server")  # skips (or fails) the test like the others without Redis
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_redis_persistence_loss_window(setting: str, tmp_path: Path) -> None:
    rng = random.Random(f"persistence-{setting}")
    kills = []
    with private_redis(**SETTINGS[setting]) as server:
        for round_ in range(sized(1, 3)):
            kills.append(kill_mid_stream(server, tmp_path, rng, round_))
    for kill in kills:
        assert kill["acked"] > 0
        if setting == "always":
            assert kill["lost"] == 0, kills  # the guarantee of appendfsync always
        if setting == "none":
            assert kill["lost"] == kill["acked"], kills  # nothing survives a restart
    report(
        "redis_persistence",
        backend="redis",
        setting=setting,
        kills=len(kills),
        acked=[k["acked"] for k in kills],
        lost=[k["lost"] for k in kills],
        window_s=[k["window_s"] for k in kills],
        acked_per_s=[k["acked_per_s"] for k in kills],
        kept_unacked=[k["kept_unacked"] for k in kills],
    )
