"""taskward on Redis with 1,000,000 jobs: listing, statistics and the server's memory.

    bench/.venv/bin/python bench/redis_scale.py                 # its own throwaway Redis
    bench/.venv/bin/python bench/redis_scale.py --url redis://127.0.0.1:6379/0 --rows 100000

Without --url it starts a Redis server of its own (persistence off, as `make bench` does) on a
free loopback port in bench/data/redis-scale-<pid>/ and stops it by PID at the end; with --url
it uses that server under a fresh ``prefix=`` (and leaves the keys: delete them with
``redis-cli --scan --pattern '{PREFIX}:*' | xargs redis-cli del``).

Fill, through the backend's own paths: ``TaskManager.enqueue_many`` (1,000 jobs per call, the
backend's insert script takes 500) spread over 4 queues, 1% of them scheduled an hour ahead;
then the backend's ``fetch`` (1,000 per script) and ``finish`` claim and settle 97% of the
jobs: 94% completed, 2% failed, 1% cancelled, leaving 2% pending (the mix of
harness/million.py). Then, through the public API in this process: each query once cold and
REPEAT times warm (median): the first page (50, default sort ``-id``, no filter), failed jobs,
one queue's pending jobs, ``get_statistics()``; and two listings that read every candidate
(``task=`` filter, a sort other than id). ``INFO memory``'s used_memory before and after the
fill. Appends one JSON line to --out (results/redis/scale.jsonl by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

QUEUES = ("default", "emails", "media", "reports")
REPEAT = 5
CHUNK = 1000  # jobs per enqueue_many call and per fetch/finish script


def percent_state(k: int) -> str:
    """The outcome of the k-th claimed job: 94 completed, 2 failed, 1 cancelled of every 97."""
    r = k % 97
    return "completed" if r < 94 else "failed" if r < 96 else "cancelled"


async def fill(tw: Any, rows: int, log: Callable[[str], None]) -> dict[str, float]:
    from taskward.jobs import ErrorRecord, JobState, JobUpdate

    @tw.task(name="bench.scale")
    async def job(i: int) -> None:  # never run: the fill settles the jobs itself
        return None

    per_queue = rows // len(QUEUES)
    scheduled = per_queue // 100
    t0 = time.perf_counter()
    for q in QUEUES:
        pending = per_queue - scheduled
        for start in range(0, pending, CHUNK):
            calls = [[i] for i in range(start, min(start + CHUNK, pending))]
            await tw.enqueue_many(job, calls, queue=q)
        for start in range(0, scheduled, CHUNK):
            calls = [[i] for i in range(start, min(start + CHUNK, scheduled))]
            await tw.enqueue_many(job, calls, queue=q, delay=3600)
    t_insert = time.perf_counter() - t0
    log(f"inserted {per_queue * len(QUEUES):,} jobs in {t_insert:.1f} s")

    backend = tw.backend
    worker = "bench-fill"
    t1 = time.perf_counter()
    settled = 0
    for q in QUEUES:
        claim = per_queue * 97 // 100
        k = 0
        while k < claim:
            now = tw.clock.now()
            jobs = await backend.fetch(
                queue=q, limit=min(CHUNK, claim - k), worker_id=worker, now=now,
                lease_until=now + timedelta(hours=1),
            )  # fmt: skip
            if not jobs:
                break
            updates = []
            for j in jobs:
                state = JobState(percent_state(k))
                error = None
                if state is JobState.FAILED:
                    error = ErrorRecord(attempt=j.attempt, at=now, kind="ValueError", message="x")
                updates.append(
                    JobUpdate(job_id=j.id, attempt=j.attempt, state=state, at=now, error=error)
                )
                k += 1
            flags = await backend.finish(updates, worker_id=worker)
            settled += sum(flags)
    t_settle = time.perf_counter() - t1
    log(f"claimed and settled {settled:,} jobs in {t_settle:.1f} s")
    return {"insert_s": t_insert, "settle_s": t_settle, "settled": settled}


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(REPEAT + 1):
        t0 = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - t0) * 1000)
    return times[0], statistics.median(times[1:]), result


async def measure(url: str, rows: int, log: Callable[[str], None]) -> dict[str, Any]:
    import redis.asyncio as aredis

    from taskward import TaskManager

    out: dict[str, Any] = {}
    info = aredis.Redis.from_url(url.split("?", 1)[0])
    out["used_memory_before"] = (await info.info("memory"))["used_memory"]
    async with TaskManager(url) as tw:
        out.update(await fill(tw, rows, log))
        mem = await info.info("memory")
        out["used_memory"] = mem["used_memory"]
        out["used_memory_human"] = mem["used_memory_human"]
        out["bytes_per_job"] = (mem["used_memory"] - out["used_memory_before"]) / rows
        log(f"INFO memory: used_memory_human={mem['used_memory_human']}")
        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "list_first_page": lambda: tw.list_tasks(page=1, per_page=50),
            "list_failed": lambda: tw.list_tasks(state="failed", per_page=50),
            "list_queue_pending": lambda: tw.list_tasks(queue="emails", state="pending"),
            "list_page_100": lambda: tw.list_tasks(page=100, per_page=50),
            "statistics": tw.get_statistics,
        }
        for name, call in queries.items():
            cold, warm, result = await timed(call)
            out[f"{name}_cold_ms"], out[f"{name}_ms"] = cold, warm
            total = getattr(result, "total_entries", None)
            log(f"{name}: cold {cold:.1f} ms, warm {warm:.1f} ms" + (
                f" (total {total:,}, {len(result.items)} items)" if total is not None else ""
            ))  # fmt: skip
            if total is not None:
                out[f"{name}_total"] = total
        # Listings that read every candidate job in one script (O(matches)): timed once each.
        slow = {
            "list_by_task_queue_pending": lambda: tw.list_tasks(
                task="bench.scale", queue="emails", state="pending"
            ),
            "list_failed_by_completed_at": lambda: tw.list_tasks(
                state="failed", sort_by="-completed_at"
            ),
            "list_all_by_task": lambda: tw.list_tasks(task="bench.scale"),
            "list_all_by_inserted_at": lambda: tw.list_tasks(sort_by="-inserted_at"),
        }
        for name, call in slow.items():
            t0 = time.perf_counter()
            try:
                page = await call()
            except Exception as exc:  # an order over too many candidates may be refused
                out[f"{name}_ms"] = (time.perf_counter() - t0) * 1000
                out[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
                log(f"{name}: refused after {out[f'{name}_ms']:.1f} ms: {out[f'{name}_error']}")
                continue
            out[f"{name}_ms"] = (time.perf_counter() - t0) * 1000
            out[f"{name}_total"] = page.total_entries
            log(f"{name}: {out[f'{name}_ms']:.1f} ms (total {page.total_entries:,})")
    await info.aclose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a Redis server to use (default: start one of our own)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "redis" / "scale.jsonl")
    a = ap.parse_args()
    started = None
    if a.url is None:
        os.environ["BENCH_DATA_DIR"] = str(BENCH / "data" / f"redis-scale-{os.getpid()}")
        import servers

        servers.DATA.mkdir(parents=True, exist_ok=True)
        port = servers.free_port()
        started = servers.start_redis(port)
        base = f"redis://127.0.0.1:{port}/0"
    else:
        base = a.url.split("?", 1)[0]
    prefix = f"scale-{os.getpid()}"
    url = f"{base}?prefix={prefix}"

    def log(text: str) -> None:
        print(text, flush=True)

    res: dict[str, Any] = {
        "system": "taskward-redis", "backend": "redis", "kind": "taskward",
        "phase": "redis_scale", "rows": a.rows, "host": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "prefix": prefix,
        "git": os.popen(f"git -C {BENCH} rev-parse --short HEAD").read().strip(),
    }  # fmt: skip
    try:
        res.update(asyncio.run(measure(url, a.rows, log)))
        res["ok"] = True
    except Exception as exc:
        res.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        log(f"failed: {res['error']}")
    finally:
        if started is not None:
            import servers

            servers._kill_wait(started, 15, 10)  # SIGTERM, by PID
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("a") as f:
        f.write(json.dumps(res) + "\n")
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
