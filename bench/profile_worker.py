"""Profile one taskward worker process draining pre-queued jobs (pyinstrument), and count how
many claims (``backend.fetch``) and outcome writes (``backend.finish``) it makes.

    cd bench && PYTHONPATH=. BENCH_REDIS_URL=… BENCH_PG_DSN=… .venv/bin/python profile_worker.py \
        sqlite|postgres mark|own [N]

Writes the profile text to results/profile-<backend>-<mode>.txt. One worker process,
concurrency 10, in-process (``run_worker``) so the profiler sees everything.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from harness.common import K_DONE, PG_DSN, clear_marks, marks
from pyinstrument import Profiler
from systems import _tw


async def main(backend: str, mode: str, n: int) -> None:
    url = _tw.SQLITE_URL if backend == "sqlite" else PG_DSN
    clear_marks()
    manager, task = _tw.build(url, mode)
    async with manager:
        await task.enqueue_many([[i, 0.0] for i in range(n)])
        be = manager.backend
        calls = {"fetch": [], "finish": []}
        fetch, finish = be.fetch, be.finish

        async def counted_fetch(**kw):
            jobs = await fetch(**kw)
            calls["fetch"].append(len(jobs))
            return jobs

        async def counted_finish(updates, *a, **kw):
            calls["finish"].append(len(updates))
            return await finish(updates, *a, **kw)

        be.fetch, be.finish = counted_fetch, counted_finish
        worker = manager.make_worker({"default": _tw.CONCURRENCY})
        store = _tw.SqliteStore() if backend == "sqlite" else _tw.PostgresStore()
        r = marks()
        profiler = Profiler(async_mode="enabled")
        profiler.start()
        t0 = time.perf_counter()
        run = asyncio.create_task(manager.run_worker(worker=worker, install_signal_handlers=False))
        while (int(r.get(K_DONE) or 0) if mode == "mark" else store.done()) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        secs = time.perf_counter() - t0
        worker.stop()
        await run
        profiler.stop()
    nonempty = [k for k in calls["fetch"] if k]
    head = (
        f"taskward {backend} {mode}: {n} jobs drained by 1 process x concurrency "
        f"{_tw.CONCURRENCY} in {secs:.2f} s = {n / secs:,.0f} jobs/s (profiler on)\n"
        f"claims (fetch calls): {len(calls['fetch'])}, non-empty {len(nonempty)}, "
        f"mean jobs per non-empty claim {sum(nonempty) / max(1, len(nonempty)):.2f}\n"
        f"outcome writes (finish calls): {len(calls['finish'])}, mean outcomes per write "
        f"{sum(calls['finish']) / max(1, len(calls['finish'])):.2f}\n\n"
    )
    print(head)
    out = Path(__file__).parent / "results" / f"profile-{backend}-{mode}.txt"
    out.write_text(head + profiler.output_text(unicode=False, color=False, show_all=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    (_tw.reset_sqlite if sys.argv[1] == "sqlite" else _tw.reset_postgres)()
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5000))
