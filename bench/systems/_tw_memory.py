"""taskward on memory:// runs in the driver process (the memory backend is not shared between
processes): producer and worker share one event loop, i.e. one core.

``mark``: the worker is ``manager.run_worker({"default": 10})`` as a task of that loop, the job
body is ``await amark(ts)`` and the driver coroutine polls the Redis counter every 5 ms.
``own``: the drain is ``await manager.drain()`` (default batch/concurrency 10), timed until it
returns; latency jobs return their start latency as their result, read back from the store.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aredis
from harness.common import K_DONE, K_FIRST, K_LAST, K_LAT, MARK, MARK_URL, clear_marks

from systems import _tw


def pct(xs: list[float], p: float) -> float | None:
    from harness.driver import pct as _pct

    return _pct(xs, p)


async def _wait(r: Any, target: int, timeout: float = 150.0) -> float | None:
    end = time.time() + timeout
    while time.time() < end:
        if int(await r.get(K_DONE) or 0) >= target:
            return time.time()
        await asyncio.sleep(0.005)
    return None


async def _stop(worker: Any, run: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(run, 30)


async def _drain_mark(manager: Any, res: dict[str, Any], n: int) -> None:
    r = aredis.Redis.from_url(MARK_URL)
    worker = manager.make_worker({"default": _tw.CONCURRENCY})
    spawned = time.time()
    run = asyncio.create_task(manager.run_worker(worker=worker, install_signal_handlers=False))
    t_done = await _wait(r, n)
    await _stop(worker, run)
    done = int(await r.get(K_DONE) or 0)
    first, last = (float(x) if x else None for x in await r.mget(K_FIRST, K_LAST))
    res.update(drain_done=done, drain_timed_out=t_done is None)
    if first and last and last > first:
        res["drain_rate_steady"] = (done - 1) / (last - first)
        res["worker_startup_s"] = first - spawned
    if t_done:
        res.update(drain_wall_s=t_done - spawned, drain_rate_wall=n / (t_done - spawned))
    await r.aclose()


async def _drain_own(manager: Any, res: dict[str, Any], n: int) -> None:
    t0 = time.perf_counter()
    result = await manager.drain()
    secs = time.perf_counter() - t0
    res.update(
        drain_done=result.total, drain_timed_out=False, drain_wall_s=secs,
        drain_rate_wall=n / secs, drain_rate_steady=n / secs, worker_startup_s=0.0,
    )  # fmt: skip


async def _latency(manager: Any, task: Any, res: dict[str, Any], mode: str, m: int, gap: float):
    r = aredis.Redis.from_url(MARK_URL)
    worker = manager.make_worker({"default": _tw.CONCURRENCY})
    run = asyncio.create_task(manager.run_worker(worker=worker, install_signal_handlers=False))
    try:
        warm = await task.enqueue(-1, 0.0)
        end = time.time() + 30
        while (await manager.get_task_status(warm.id)).state.value != "completed":
            if time.time() > end:
                raise RuntimeError("warm-up job did not run")
            await asyncio.sleep(0.005)
        await asyncio.sleep(1.0)
        await r.delete(K_DONE, K_LAT)
        jobs = []
        t0 = time.time()
        for k in range(m):
            delay = t0 + k * gap - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            jobs.append(await task.enqueue(k, time.time()))
        end = time.time() + 30
        while time.time() < end:
            page = await manager.list_tasks(state="completed", per_page=1)
            if page.total_entries >= m + 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await _stop(worker, run)
    if mode == "mark":
        lat = [float(x) * 1000 for x in await r.lrange(K_LAT, 0, -1)]
    else:
        lat = [(await manager.get_task_status(j.id)).result * 1000 for j in jobs]
    await r.aclose()
    res.update(
        lat_n=len(lat), lat_timed_out=len(lat) < m, lat_p50_ms=pct(lat, 50),
        lat_p95_ms=pct(lat, 95), lat_p99_ms=pct(lat, 99), lat_max_ms=max(lat) if lat else None,
    )  # fmt: skip


async def _phase(mode: str, phase: str, res: dict[str, Any], n: int, m: int, gap: float):
    clear_marks()
    manager, task = _tw.build("memory://", mode)
    async with manager:
        if phase == "enqueue":
            t0 = time.perf_counter()
            for i in range(n):
                await task.enqueue(i, 0.0)
            secs = time.perf_counter() - t0
            res.update(enqueue_s=secs, enqueue_rate=n / secs)
            await (_drain_mark if mode == "mark" else _drain_own)(manager, res, n)
        elif phase == "bulk":
            t0 = time.perf_counter()
            await task.enqueue_many([[i, 0.0] for i in range(n)])
            secs = time.perf_counter() - t0
            res.update(bulk_s=secs, bulk_rate=n / secs)
        elif phase == "latency":
            await _latency(manager, task, res, mode, m, gap)
        else:
            raise ValueError(f"phase {phase!r} is not measured on memory://")


def runner(mode: str):
    def run_phase(phase: str, res: dict[str, Any], n: int, m: int, gap: float) -> None:
        if mode == "mark" and MARK != "redis":  # it reads the Redis counter itself
            raise RuntimeError("taskward-memory measures with the Redis mark only")
        asyncio.run(_phase(mode, phase, res, n, m, gap))

    return run_phase
