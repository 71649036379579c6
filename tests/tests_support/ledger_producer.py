"""A producer process that keeps a ledger of the enqueues the store acknowledged.

Run as ``python -m tests_support.ledger_producer URL LEDGER [options]`` (``tests/`` on
PYTHONPATH). It enqueues ``tests_support.reliability_app:record`` jobs with consecutive numbers
``i`` (from ``--first``), ``--batch`` jobs per ``enqueue_many`` call, one call after the other
at full speed, until ``--count`` jobs were acknowledged, SIGTERM, or forever.

The ledger is the witness of what the store promised: after each call returns, one line
``ack <monotonic> <i>:<id> <i>:<id> ...`` is appended with one ``O_APPEND`` write, so a line
exists only for jobs the store acknowledged. A call that raises is written as ``fail
<monotonic> <first i> <n> <error>``: its jobs may or may not be stored (the reply was lost, or
the request never arrived); the next call takes fresh numbers, so no number is enqueued twice
by this process. ``open`` is written once the manager is open (the test waits for it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskward import TaskManager

TASK = "tests_support.reliability_app:record"


def append(path: str, text: str) -> None:
    """One line, one ``O_APPEND`` write (atomic between processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


@dataclass
class Ledger:
    """A ledger read back: acknowledged jobs (number -> id), failed calls, ack times."""

    acked: dict[int, int]
    failed: list[tuple[int, int]]
    ack_times: list[float]
    opened: bool

    @classmethod
    def read(cls, path: Path) -> Ledger:
        acked: dict[int, int] = {}
        failed: list[tuple[int, int]] = []
        times: list[float] = []
        opened = False
        text = path.read_text() if path.exists() else ""
        for line in text.splitlines():
            kind, *rest = line.split()
            if kind == "open":
                opened = True
            elif kind == "ack":
                times.append(float(rest[0]))
                for pair in rest[1:]:
                    number, _, job_id = pair.partition(":")
                    acked[int(number)] = int(job_id)
            elif kind == "fail":
                failed.append((int(rest[1]), int(rest[2])))
        return cls(acked, failed, times, opened)

    def maybe_stored(self) -> set[int]:
        """Numbers of calls that raised: stored or not, nobody was told."""
        return {i for first, n in self.failed for i in range(first, first + n)}


async def produce(url: str, ledger: str, first: int, batch: int, count: int, pause: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    acked, i = 0, first
    async with TaskManager(url) as tw:
        append(ledger, f"open {time.monotonic():.6f}")
        while not stop.is_set() and (count == 0 or acked < count):
            numbers = list(range(i, i + batch))
            i += batch
            try:
                jobs = await tw.enqueue_many(TASK, [[n] for n in numbers], max_attempts=25)
            except Exception as exc:  # BackendUnavailable, mostly: the store went away
                append(
                    ledger, f"fail {time.monotonic():.6f} {numbers[0]} {batch} {type(exc).__name__}"
                )
                await asyncio.sleep(0.05)
                continue
            pairs = " ".join(f"{n}:{job.id}" for n, job in zip(numbers, jobs, strict=True))
            append(ledger, f"ack {time.monotonic():.6f} {pairs}")
            acked += batch
            if pause:
                await asyncio.sleep(pause)


async def produce_concurrently(url: str, ledger: str, first: int, producers: int) -> None:
    """``producers`` coroutines and as many threads, each enqueuing one job at a time.

    Their enqueues share commits (taskward.commits); each acknowledged job gets its own
    ledger line as soon as its own call returned. Producer ``p`` numbers its jobs
    ``first + p``, ``first + p + 2 * producers``…, so no number is used twice.
    """
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    stride = 2 * producers
    async with TaskManager(url) as tw:
        append(ledger, f"open {time.monotonic():.6f}")

        def record(n: int, enqueue: Any) -> Any:
            return enqueue(TASK, args=[n], max_attempts=25)

        async def coroutine(p: int) -> None:
            n = first + p
            while not stop.is_set():
                try:
                    job = await record(n, tw.enqueue_task)
                except Exception as exc:
                    append(ledger, f"fail {time.monotonic():.6f} {n} 1 {type(exc).__name__}")
                else:
                    append(ledger, f"ack {time.monotonic():.6f} {n}:{job.id}")
                n += stride

        def thread(p: int) -> None:
            n = first + producers + p
            while not stop.is_set():
                try:
                    job = record(n, tw.enqueue_task_blocking)
                except Exception as exc:
                    append(ledger, f"fail {time.monotonic():.6f} {n} 1 {type(exc).__name__}")
                else:
                    append(ledger, f"ack {time.monotonic():.6f} {n}:{job.id}")
                n += stride

        await asyncio.gather(
            *(coroutine(p) for p in range(producers)),
            *(asyncio.to_thread(thread, p) for p in range(producers)),
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("ledger")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between calls")
    parser.add_argument(
        "--concurrent", type=int, default=0, help="N coroutines + N threads, one job per call"
    )
    args = parser.parse_args()
    if args.concurrent:
        asyncio.run(produce_concurrently(args.url, args.ledger, args.first, args.concurrent))
        return
    asyncio.run(produce(args.url, args.ledger, args.first, args.batch, args.count, args.pause))


if __name__ == "__main__":
    main()
