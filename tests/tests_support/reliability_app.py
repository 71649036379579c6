"""The worker process of the reliability suite: logged tasks and a fault-injecting backend.

Run as ``python -m tests_support.reliability_app`` (``tests/`` on PYTHONPATH). Everything is
configured by environment variables, so a test can start, kill and restart workers freely:

- ``TASKWARD_TEST_URL``: the store; ``TASKWARD_TEST_LOG``: the run log (see :func:`record`;
  ``done`` lines end with the monotonic time the body finished).
- ``REL_GEN``: the generation written into each run-log line (the test bumps it after each kill
  of the whole worker group, so two runs of one job in one generation ran at the same time).
- ``REL_SLEEP``: seconds each body sleeps; ``REL_LEASE``: lease seconds; ``REL_CONCURRENCY``.
- ``REL_CRASH=step:n``: ``os._exit(CRASH_EXIT)`` the n-th time the worker reaches ``step``
  (one of :data:`STEPS`); the run log gets ``crash <step> <pid> <job ids>`` first, and each
  claim the worker received is logged as ``claim <pid> <job ids>``.
- ``REL_FAIL_EVERY=n``: every n-th ``finish`` and every n-th ``extend_leases`` call raises
  ``BackendUnavailable`` (a dropped connection). Odd-numbered faults strike before the write
  reaches the store, even-numbered ones after it committed (the reply was lost); each fault is
  appended to the run log as ``fault <method> <pid> <before|after> <monotonic>`` and the
  next call of that method that succeeds as ``recovered <method> <pid> <monotonic>``.

The faults sit at the backend seam, in :class:`FaultyBackend`, a delegating wrapper around the
real backend: taskward itself carries no test hook. The one step inside a backend,
``claim-uncommitted`` (SQLite only), wraps the private ``SqliteStore._write`` of the opened
backend so the process dies inside the claim's ``BEGIN IMMEDIATE`` transaction, before COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from taskward import TaskManager
from taskward.backends import open_backend
from taskward.errors import BackendUnavailable
from taskward.jobs import Job, JobUpdate, LeaseReport

CRASH_EXIT = 86
STEPS = ("claim-uncommitted", "before-claim", "after-claim", "mid-body", "after-body", "after-ack")
_counts: dict[str, int] = {}
_lock = threading.Lock()


def log_line(text: str) -> None:
    """Append one line to the run log with one O_APPEND write (atomic between processes)."""
    fd = os.open(os.environ["TASKWARD_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)


def _count(key: str) -> int:
    with _lock:
        _counts[key] = _counts.get(key, 0) + 1
        return _counts[key]


def crash_point(step: str, job_ids: Collection[int] = ()) -> None:
    """Die here (``os._exit``) if ``REL_CRASH`` names this step and its count is reached.

    The run log gets ``crash <step> <pid> <job ids>`` (the ids of the outcomes in hand).
    """
    wanted, _, nth = os.environ.get("REL_CRASH", "").partition(":")
    if wanted == step and _count(f"crash:{step}") == int(nth or 1):
        log_line(f"crash {step} {os.getpid()} {','.join(map(str, job_ids)) or '-'}")
        os._exit(CRASH_EXIT)


def record(n: int) -> int:
    """Append ``start n gen pid`` and ``done n gen pid t`` around a sleep of ``REL_SLEEP`` s.

    ``t`` is ``time.monotonic()`` when the body finished: the clock is system-wide on Linux, so
    the test process can place completions on its own timeline (the soak's throughput).
    """
    tag = f"{n} {os.environ.get('REL_GEN', '0')} {os.getpid()}"
    log_line(f"start {tag}")
    time.sleep(float(os.environ.get("REL_SLEEP", "0")))
    crash_point("mid-body")
    log_line(f"done {tag} {time.monotonic():.6f}")
    return n


def collect(results: list[int]) -> int:
    """A chord's callback: append ``callback gen pid count total in_order`` (its witness)."""
    gen = os.environ.get("REL_GEN", "0")
    in_order = int(results == list(range(len(results))))
    log_line(f"callback {gen} {os.getpid()} {len(results)} {sum(results)} {in_order}")
    return len(results)


class FaultyBackend:
    """Delegates to a real backend; crashes or fails at the seams named by the environment."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url
        self.fail_every = int(os.environ.get("REL_FAIL_EVERY", "0"))
        self._faulted: set[str] = set()
        self._in_claim = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    async def open(self) -> None:
        await self.inner.open()
        store = getattr(self.inner, "_store", None)
        if store is not None and os.environ.get("REL_CRASH", "").startswith("claim-uncommitted"):
            self._crash_inside_claims(store)

    def _crash_inside_claims(self, store: Any) -> None:
        original_write, original_fetch = store._write, store.fetch
        in_claim = self._in_claim

        @contextlib.contextmanager
        def write(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with original_write(*args, **kwargs) as db:
                yield db
                if getattr(in_claim, "on", False):  # the UPDATE ran; COMMIT has not
                    crash_point("claim-uncommitted")

        def fetch(*args: Any) -> list[Job]:
            in_claim.on = True
            try:
                return list(original_fetch(*args))
            finally:
                in_claim.on = False

        store._write, store.fetch = write, fetch

    async def fetch(self, **kwargs: Any) -> list[Job]:
        crash_point("before-claim")
        jobs: list[Job] = await self.inner.fetch(**kwargs)
        if jobs and os.environ.get("REL_CRASH"):
            log_line(f"claim {os.getpid()} {','.join(str(j.id) for j in jobs)}")
            crash_point("after-claim", [j.id for j in jobs])
        return jobs

    async def finish(self, updates: Sequence[JobUpdate], *, worker_id: str) -> list[bool]:
        ids = [u.job_id for u in updates]
        crash_point("after-body", ids)
        fault = self._fault("finish")
        if fault == "before":
            raise BackendUnavailable("injected fault: finish never reached the store")
        written: list[bool] = await self.inner.finish(updates, worker_id=worker_id)
        crash_point("after-ack", ids)
        if fault == "after":
            raise BackendUnavailable("injected fault: finish committed, its reply was lost")
        self._recovered("finish")
        return written

    async def extend_leases(
        self, job_ids: Collection[int], *, worker_id: str, lease_until: Any
    ) -> LeaseReport:
        fault = self._fault("extend_leases")
        if fault == "before":
            raise BackendUnavailable("injected fault: heartbeat never reached the store")
        report: LeaseReport = await self.inner.extend_leases(
            job_ids, worker_id=worker_id, lease_until=lease_until
        )
        if fault == "after":
            raise BackendUnavailable("injected fault: heartbeat committed, its reply was lost")
        self._recovered("extend_leases")
        return report

    def _fault(self, method: str) -> str | None:
        if not self.fail_every or _count(f"calls:{method}") % self.fail_every:
            return None
        where = "before" if _count(f"faults:{method}") % 2 else "after"
        self._faulted.add(method)
        log_line(f"fault {method} {os.getpid()} {where} {time.monotonic():.6f}")
        return where

    def _recovered(self, method: str) -> None:
        if method in self._faulted:
            self._faulted.discard(method)
            log_line(f"recovered {method} {os.getpid()} {time.monotonic():.6f}")


def make_manager() -> TaskManager:
    """The worker's manager: the store behind :class:`FaultyBackend`, short leases and delays."""
    url = os.environ["TASKWARD_TEST_URL"]
    return TaskManager(
        url,
        backend=FaultyBackend(open_backend(url)),
        lease_seconds=float(os.environ.get("REL_LEASE", "1")),
        poll_interval=float(os.environ.get("REL_POLL", "0.05")),
        default_retry_delay=0.05,
        shutdown_timeout=5,
    )


def main() -> None:
    """Run one worker until SIGTERM."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("taskward.runtime.acker").setLevel(logging.INFO)  # what each ack became
    manager = make_manager()
    concurrency = int(os.environ.get("REL_CONCURRENCY", "4"))

    async def work() -> None:
        try:
            await manager.run_worker({"default": concurrency})
        finally:
            await manager.close()

    asyncio.run(work())


if __name__ == "__main__":
    main()
