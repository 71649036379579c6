"""Worker memory while draining many jobs: the worker process's RSS before, during and after.

    python -m harness.memory --system taskward-postgres-own --out results/raw.jsonl

Pre-queues MEMORY_N jobs (100,000) with the system's bulk API, starts its worker with one
process (``taskward worker -q default=50``; the ``-own`` systems: the job does no I/O, so the
drain runs at full speed) and samples the worker process's resident set (``VmRSS`` in
``/proc``) every 0.25 s with the number of completed jobs. *before* = the first sample taken
once 1% of the jobs are done (imports, pools and caches warm), *after* = the sample taken when
all are done; *peak* = the largest sample. Appends one JSON line (phase ``memory``) to --out,
with every sample, for the table and the chart.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from harness.driver import Producer, Progress, Worker, load

N = int(os.environ.get("MEMORY_N", "100000"))
TIMEOUT = float(os.environ.get("MEMORY_TIMEOUT", "300"))
SAMPLE_EVERY = 0.25


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a supervisor's worker children), from /proc."""
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                out.append(child)
                todo.append(child)
    return out


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def worker_rss(started: int) -> float | None:
    """RSS of the taskward worker process: the process started, or its supervised child.

    One process (``--processes 1``) runs the worker itself; a supervisor has it as a child.
    """
    for pid in descendants(started) or [started]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"taskward" in cmdline and b"worker" in cmdline:
            return rss_mib(pid)
    return None


def measure(system: str) -> dict[str, Any]:
    mod = load(system)
    res: dict[str, Any] = {"system": system, "phase": "memory", "n": N, "procs": 1}
    mod.reset()
    with Producer(mod) as prod:
        res["enqueue_s"] = prod.in_bulk(N)
    progress = Progress(mod)
    worker = Worker(mod, f"{system}-memory", 1)
    samples: list[tuple[float, int, float]] = []  # seconds since spawn, jobs done, MiB
    try:
        end = time.time() + TIMEOUT
        done = 0
        while time.time() < end and done < N:
            worker.check()
            done = progress.done()
            rss = worker_rss(worker.proc.pid)
            if rss is not None:
                samples.append((round(time.time() - worker.spawned, 2), done, round(rss, 1)))
            time.sleep(SAMPLE_EVERY)
        rss = worker_rss(worker.proc.pid)
        if rss is not None:
            samples.append((round(time.time() - worker.spawned, 2), progress.done(), round(rss, 1)))
    finally:
        worker.stop()
    warm = [s for s in samples if s[1] >= N // 100]
    res.update(samples=samples, done=samples[-1][1] if samples else 0)
    if warm and samples[-1][1] >= N:
        res.update(
            ok=True,
            rss_before_mib=warm[0][2],
            rss_after_mib=samples[-1][2],
            rss_peak_mib=max(s[2] for s in samples),
            drain_s=samples[-1][0],
        )
    else:
        res.update(ok=False, error=f"{samples[-1][1] if samples else 0} of {N} jobs done")
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    row = measure(a.system)
    with a.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(
        f"{a.system}: {N:,} jobs, RSS before {row.get('rss_before_mib')} MiB, after "
        f"{row.get('rss_after_mib')} MiB, peak {row.get('rss_peak_mib')} MiB",
        flush=True,
    )


if __name__ == "__main__":
    main()
