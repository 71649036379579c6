"""One driver process = one (system, phase, run): measure, append one JSON line to --out.

    python -m harness.driver --system huey --phase drain --run 1 --out results/raw.jsonl

Phases (identical workload for every system):

enqueue  reset; enqueue N no-op jobs one by one from this process (async systems: each call
         awaited before the next), timed; then start the system's worker cold and time until
         all N are done ("drain"): steady = (N-1) / (last job start - first job start), wall =
         N / (worker spawn -> all done), which includes the worker's start-up.
bulk     reset; enqueue N jobs with the system's bulk API, timed (skipped without one).
latency  reset; start the worker, wait for one warm-up job, let the worker idle 1 s, then
         enqueue LAT_N jobs LAT_GAP apart, each carrying time.time() taken just before its
         enqueue call; the job records (its start - that time). p50/p95/p99.
scale    reset; pre-queue N jobs (bulk API if any), start the worker with --procs processes,
         time the drain as in `enqueue`.

Completion: the Redis counter of ``harness.common.mark`` (polled every 5 ms; with
BENCH_MARK=file the mark file's size), unless the system detects completion in its own store
(``STORE``, taskward's uncapped variants; polled every 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from harness import cpu
from harness.common import (
    BENCH_DIR,
    DATA_DIR,
    K_FIRST,
    K_LAST,
    K_LAT,
    MARK,
    clear_marks,
    file_marks,
    file_marks_done,
    marks,
)

N = int(os.environ.get("BENCH_N", "10000"))
LAT_N = int(os.environ.get("BENCH_LAT_N", "200"))
LAT_GAP = float(os.environ.get("BENCH_LAT_GAP", "0.010"))
DRAIN_TIMEOUT = float(os.environ.get("BENCH_DRAIN_TIMEOUT", "150"))
READY_TIMEOUT = float(os.environ.get("BENCH_READY_TIMEOUT", "60"))


def load(system: str) -> ModuleType:
    return importlib.import_module(f"systems.{system.replace('-', '_')}")


class Producer:
    """One sync facade over sync and async systems (one event loop for the whole phase)."""

    def __init__(self, mod: ModuleType) -> None:
        self.mod = mod
        self.is_async = bool(getattr(mod, "ASYNC", False))
        self.loop = asyncio.new_event_loop() if self.is_async else None

    def _run(self, coro: Any) -> Any:
        assert self.loop is not None
        return self.loop.run_until_complete(coro)

    def __enter__(self) -> Producer:
        if self.is_async:
            self._run(self.mod.aopen())
        else:
            self.mod.open()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.is_async:
                self._run(self.mod.aclose())
            else:
                self.mod.close()
        finally:
            if self.loop is not None:
                self.loop.close()

    @property
    def bulk(self) -> Any:
        return getattr(self.mod, "aenqueue_bulk" if self.is_async else "enqueue_bulk", None)

    def one_by_one(self, n: int) -> float:
        if self.is_async:
            enq = self.mod.aenqueue

            async def go() -> float:
                t0 = time.perf_counter()
                for i in range(n):
                    await enq(i, 0.0)
                return time.perf_counter() - t0

            return float(self._run(go()))
        enqueue = self.mod.enqueue
        t0 = time.perf_counter()
        for i in range(n):
            enqueue(i, 0.0)
        return time.perf_counter() - t0

    def concurrently(self, n: int, producers: int) -> float:
        """``n`` enqueues from ``producers`` at once: asyncio tasks on one loop for an async
        API, threads for a sync one (a web server's requests); each call one job."""
        share = [range(p, n, producers) for p in range(producers)]
        if self.is_async:
            enq = self.mod.aenqueue

            async def go() -> float:
                async def producer(numbers: range) -> None:
                    for i in numbers:
                        await enq(i, 0.0)

                t0 = time.perf_counter()
                await asyncio.gather(*(producer(numbers) for numbers in share))
                return time.perf_counter() - t0

            return float(self._run(go()))
        enqueue = self.mod.enqueue

        def producer(numbers: range) -> None:
            for i in numbers:
                enqueue(i, 0.0)

        with ThreadPoolExecutor(producers) as pool:
            t0 = time.perf_counter()
            list(pool.map(producer, share))
            return time.perf_counter() - t0

    def in_bulk(self, n: int) -> float:
        t0 = time.perf_counter()
        if self.is_async:
            self._run(self.bulk(n))
        else:
            self.bulk(n)
        return time.perf_counter() - t0

    def spaced(self, n: int, gap: float) -> None:
        """Job k is enqueued at t0 + k * gap (no drift), carrying its enqueue time."""
        if self.is_async:
            enq = self.mod.aenqueue

            async def go() -> None:
                t0 = time.time()
                for k in range(n):
                    delay = t0 + k * gap - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await enq(k, time.time())

            self._run(go())
            return
        t0 = time.time()
        for k in range(n):
            delay = t0 + k * gap - time.time()
            if delay > 0:
                time.sleep(delay)
            self.mod.enqueue(k, time.time())

    def one(self, i: int, ts: float = 0.0) -> None:
        if self.is_async:
            self._run(self.mod.aenqueue(i, ts))
        else:
            self.mod.enqueue(i, ts)


class Worker:
    """The system's worker command in its own session; stopped by signalling its group."""

    def __init__(self, mod: ModuleType, tag: str, procs: int | None) -> None:
        logs = DATA_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = open(logs / f"{tag}.log", "ab")  # noqa: SIM115
        argv = mod.worker_argv(procs) if procs else mod.worker_argv()
        env = dict(os.environ, PYTHONPATH=str(BENCH_DIR), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            argv, cwd=BENCH_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.spawned = time.time()

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"worker exited early (rc={self.proc.returncode}); see {DATA_DIR}/logs"
            )

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
            time.sleep(0.2)  # children of the group may outlive the leader briefly
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
        self.log.close()


class Progress:
    """How many jobs are done, and first/last job start: Redis marks or the system's store."""

    def __init__(self, mod: ModuleType) -> None:
        self.store = getattr(mod, "STORE", None)
        self.poll = 0.010 if self.store else 0.005
        self.redis = marks()

    def done(self) -> int:
        if self.store:
            return self.store.done()
        if MARK == "file":
            return file_marks_done()
        return int(self.redis.get("bw:done") or 0)

    def first_last(self) -> tuple[float | None, float | None]:
        if self.store:
            return self.store.first_last()
        if MARK == "file":
            starts = [start for start, _ in file_marks()]
            return (min(starts), max(starts)) if starts else (None, None)
        first, last = self.redis.mget(K_FIRST, K_LAST)
        return (float(first) if first else None), (float(last) if last else None)

    def latencies_ms(self) -> list[float]:
        if self.store:
            return [x * 1000 for x in self.store.latencies()]
        if MARK == "file":
            return [lat * 1000 for _, lat in file_marks() if lat >= 0]
        return [float(x) * 1000 for x in self.redis.lrange(K_LAT, 0, -1)]

    def server_pids(self) -> frozenset[int]:
        """Server processes doing the polling's work (a store's connection), not the system's."""
        pid = getattr(self.store, "backend_pid", None)
        return frozenset([pid()]) if pid is not None else frozenset()

    def wait(self, target: int, timeout: float, worker: Worker | None) -> float | None:
        end = time.time() + timeout
        while True:  # looks at least once, even with no time left
            if self.done() >= target:
                return time.time()
            if time.time() >= end:
                return None
            if worker is not None:
                worker.check()
            time.sleep(self.poll)


def pct(xs: list[float], p: float) -> float | None:
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def timed_drain(mod: ModuleType, res: dict[str, Any], tag: str, procs: int | None) -> None:
    clear_marks()
    progress = Progress(mod)
    worker = Worker(mod, tag, procs)
    try:
        # CPU per job is taken over the last 90% of the jobs: the worker's start-up (imports,
        # connecting) is no per-job cost.
        deadline = time.time() + DRAIN_TIMEOUT
        exclude = progress.server_pids()
        warm = progress.wait(max(1, N // 10), DRAIN_TIMEOUT, worker)
        cpu_warm = cpu.snapshot(worker.proc.pid, exclude) if warm else None
        n_warm = progress.done()
        t_done = progress.wait(N, max(0.0, deadline - time.time()), worker) if warm else None
        n_done = progress.done()
        cpu_done = cpu.snapshot(worker.proc.pid, exclude) if t_done else None
        first, last = progress.first_last()
    finally:
        worker.stop()
    res.update(drain_done=n_done, drain_timed_out=t_done is None)
    if cpu_warm is not None and cpu_done is not None:
        res["cpu_us_per_job"] = cpu.per_job(cpu_warm, cpu_done, n_done - n_warm)
    if first and last and last > first and n_done > 1:
        res["drain_rate_steady"] = (n_done - 1) / (last - first)
        res["worker_startup_s"] = first - worker.spawned
    if t_done:
        res["drain_wall_s"] = t_done - worker.spawned
        res["drain_rate_wall"] = N / (t_done - worker.spawned)


def phase_enqueue(mod: ModuleType, res: dict[str, Any], tag: str, procs: int | None) -> None:
    mod.reset()
    with Producer(mod) as prod:
        secs = prod.one_by_one(N)
    res.update(enqueue_s=secs, enqueue_rate=N / secs)
    timed_drain(mod, res, tag, procs)


PRODUCERS = int(os.environ.get("BENCH_PRODUCERS", "64"))


def phase_concurrent(mod: ModuleType, res: dict[str, Any], tag: str, procs: int | None) -> None:
    """N jobs from PRODUCERS concurrent producers in one process (then drained, untimed)."""
    mod.reset()
    with Producer(mod) as prod:
        secs = prod.concurrently(N, PRODUCERS)
        kind = "async tasks" if prod.is_async else "threads"
    res.update(concurrent_s=secs, concurrent_rate=N / secs, producers=PRODUCERS, producer=kind)


def phase_bulk(mod: ModuleType, res: dict[str, Any], tag: str, procs: int | None) -> None:
    prod = Producer(mod)
    if prod.bulk is None:
        res["bulk"] = "n/a"
        return
    mod.reset()
    with prod:
        secs = prod.in_bulk(N)
    res.update(bulk_s=secs, bulk_rate=N / secs)


def phase_scale(mod: ModuleType, res: dict[str, Any], tag: str, procs: int | None) -> None:
    mod.reset()
    with Producer(mod) as prod:
        if prod.bulk is not None:
            prod.in_bulk(N)
        else:
            prod.one_by_one(N)
    timed_drain(mod, res, tag, procs)


def phase_latency(mod: ModuleType, res: dict[str, Any], tag: str, procs: int | None) -> None:
    mod.reset()
    progress = Progress(mod)
    with Producer(mod) as prod:
        worker = Worker(mod, tag, procs)
        try:
            prod.one(-1, 0.0)  # warm-up: proves the worker is up
            if progress.wait(1, READY_TIMEOUT, worker) is None:
                raise RuntimeError("the worker did not run the warm-up job")
            time.sleep(1.0)  # idle
            base = progress.done()
            clear_marks()
            prod.spaced(LAT_N, LAT_GAP)
            ok = progress.wait(LAT_N + (base if progress.store else 0), 30, worker)
        finally:
            worker.stop()
    lat = progress.latencies_ms()
    res.update(
        lat_n=len(lat), lat_timed_out=ok is None, lat_p50_ms=pct(lat, 50),
        lat_p95_ms=pct(lat, 95), lat_p99_ms=pct(lat, 99), lat_max_ms=max(lat) if lat else None,
    )  # fmt: skip


PHASES = {
    "enqueue": phase_enqueue,
    "concurrent": phase_concurrent,
    "bulk": phase_bulk,
    "latency": phase_latency,
    "scale": phase_scale,
}


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))  # `timeout` → finally stops workers
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True)
    ap.add_argument("--phase", required=True, choices=sorted(PHASES))
    ap.add_argument("--run", type=int, default=1)
    ap.add_argument("--procs", type=int, default=None, help="worker processes (scale phase)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    mod = load(a.system)
    global N
    N = min(N, getattr(mod, "MAX_N", N))  # rq's fork-per-job drain: see systems/rq.py
    res: dict[str, Any] = {
        "system": mod.NAME, "backend": mod.BACKEND, "kind": getattr(mod, "KIND", "peer"),
        "config": mod.CONFIG, "phase": a.phase, "run": a.run, "n": N, "procs": a.procs,
        "mark": MARK,
        "host": platform.node(), "python": platform.python_version(), "started": time.time(),
    }  # fmt: skip
    tag = f"{mod.NAME}-{a.phase}{a.procs or ''}-run{a.run}"
    try:
        if getattr(mod, "INPROCESS", False):
            mod.run_phase(a.phase, res, N, LAT_N, LAT_GAP)
        else:
            PHASES[a.phase](mod, res, tag, a.procs)
        res["ok"] = True
    except (Exception, SystemExit) as exc:  # record the failure, keep the suite going
        res["ok"] = False
        res["error"] = f"{type(exc).__name__}: {exc}"
    res["elapsed_s"] = time.time() - res["started"]
    with open(a.out, "a") as f:
        f.write(json.dumps(res) + "\n")
    brief = {
        k: (round(v, 4) if isinstance(v, float) else v)
        for k, v in res.items()
        if k not in ("config", "host", "started", "python")
    }
    print(json.dumps(brief), flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
