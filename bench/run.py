"""`make bench`: start throwaway servers, run every system through every phase RUNS times
(systems interleaved within a run), the PostgreSQL scale runs and the 1,000,000-job listing,
then write the tables and charts to bench/results/ and stop the servers.

    bench/.venv/bin/python bench/run.py [SYSTEM | CLASS ...]

A CLASS (redis, sqlite, postgres) stands for every system of that backend, taskward's and the
peers' (`make bench SYSTEMS=redis`). BENCH_MARK=file: the job body is a 16-byte local file
append instead of the Redis mark (harness.common).

Environment: RUNS (3), BENCH_N (10000), BENCH_LAT_N (200), SCALE (1: drain with 1/2/4 worker
processes on PostgreSQL), MILLION (1: the 1,000,000-row listing; MILLION_ROWS), PHASE_TIMEOUT
(240 s per driver process), OUT (results/raw.jsonl, replaced), PHASES ("enqueue concurrent bulk
latency"; enqueue includes the drain), BENCH_TW_CONCURRENCY (50: taskward's slots per process),
MEMORY (1: the worker's RSS while draining MEMORY_N = 100,000 jobs, SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
# A data dir of this run's own (servers, SQLite files, worker logs), set before importing
# servers: another `make bench` running at the same time cannot stop or wipe ours.
RUN_DIR = BENCH / "data" / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
os.environ["BENCH_DATA_DIR"] = str(RUN_DIR)

import servers  # noqa: E402

PEERS = [
    "celery", "rq", "dramatiq", "huey", "arq", "saq", "bare-redis",
    "huey-sqlite", "bare-sqlite", "bare-sqlite-full",
    "saq-pg", "procrastinate", "pgqueuer", "pgqueuer-2", "oban", "bare-postgres",
]  # fmt: skip
TASKWARD = [
    "taskward-memory", "taskward-memory-own", "taskward-sqlite", "taskward-sqlite-own",
    "taskward-sqlite-async", "taskward-postgres", "taskward-postgres-own",
    "taskward-postgres-async", "taskward-redis", "taskward-redis-own", "taskward-redis-async",
]  # fmt: skip
# Backend classes: `run.py redis` measures these side by side in one run.
CLASSES = {
    "redis": [
        "taskward-redis", "taskward-redis-own", "taskward-redis-async",
        "huey", "saq", "arq", "rq", "celery", "dramatiq", "bare-redis",
    ],
    "sqlite": [
        "taskward-sqlite", "taskward-sqlite-own", "taskward-sqlite-async",
        "huey-sqlite", "bare-sqlite", "bare-sqlite-full",
    ],
    "postgres": [
        "taskward-postgres", "taskward-postgres-own", "taskward-postgres-async",
        "saq-pg", "procrastinate", "pgqueuer", "pgqueuer-2", "oban", "bare-postgres",
    ],
}  # fmt: skip
# Systems measured in some phases only (their module's ONLY_PHASES).
ONLY_PHASES = {
    "taskward-sqlite-async": {"enqueue", "concurrent"},
    "taskward-postgres-async": {"enqueue", "concurrent"},
    "taskward-redis-async": {"enqueue", "concurrent"},
}
SCALE_SYSTEMS = ["taskward-postgres", "taskward-postgres-own", "bare-postgres"]
SCALE_PROCS = [1, 2, 4]
MEMORY_SYSTEMS = ["taskward-sqlite-own", "taskward-postgres-own", "taskward-redis-own"]
PY312 = {"oban"}


def python_for(system: str) -> str:
    venv = ".venv312" if system in PY312 else ".venv"
    return str(BENCH / venv / "bin" / "python")


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def machine() -> dict[str, object]:
    pip = sh(f"{BENCH}/.venv/bin/pip freeze 2>/dev/null")
    pip312 = sh(f"{BENCH}/.venv312/bin/pip freeze 2>/dev/null")
    return {
        "meta": "machine",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu_model": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
        "mem": sh("free -g | awk '/Mem:/ {print $2\" GiB\"}'"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python312": sh(f"{BENCH}/.venv312/bin/python -V 2>/dev/null"),
        "sqlite": __import__("sqlite3").sqlite_version,
        "servers": servers.versions(),
        "git": sh(f"git -C {BENCH} rev-parse --short HEAD"),
        "git_dirty_src": sh(f"git -C {BENCH}/.. status --porcelain -- src | wc -l"),
        "packages": [ln for ln in (pip + "\n" + pip312).splitlines() if "==" in ln or " @ " in ln],
    }


def record(out: Path, row: dict[str, object]) -> None:
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def uptime(out: Path, label: str) -> None:
    load = sh("uptime")
    git = sh(f"git -C {BENCH} rev-parse --short HEAD")  # the code may move during a long run
    print(f"== {label}: {load} (taskward at {git})", flush=True)
    record(out, {"meta": "uptime", "label": label, "uptime": load, "git": git})


def drive(out: Path, system: str, phase: str, run: int, procs: int | None = None) -> None:
    argv = [python_for(system), "-m", "harness.driver", "--system", system, "--phase", phase,
            "--run", str(run), "--out", str(out)]  # fmt: skip
    if procs:
        argv += ["--procs", str(procs)]
    timeout = int(os.environ.get("PHASE_TIMEOUT", "240"))
    env = dict(os.environ, PYTHONPATH=str(BENCH))
    proc = subprocess.Popen(argv, cwd=BENCH, env=env)
    try:
        rc: object = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        rc = "timeout"
        error = f"driver timeout {timeout}s"
        row = {"system": system, "phase": phase, "run": run, "procs": procs, "ok": False}
        record(out, {**row, "error": error})
    finally:
        if proc.poll() is None:  # SIGTERM: the driver stops its worker group, then exits
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if rc != 0:
        print(f"!! {system} {phase} run {run} failed ({rc}); see {RUN_DIR}/logs/", flush=True)


def main() -> int:
    # SIGTERM (e.g. `kill PID` of this process) -> SystemExit: drivers and servers are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    named = [s for arg in sys.argv[1:] for s in CLASSES.get(arg, [arg])]
    systems = list(dict.fromkeys(named)) or TASKWARD + PEERS
    runs = int(os.environ.get("RUNS", "3"))
    # the enqueue phase also times the drain of what it enqueued
    PHASES = os.environ.get("PHASES", "enqueue concurrent bulk latency").split()
    out = Path(os.environ.get("OUT", BENCH / "results" / "raw.jsonl")).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    started = time.time()
    state = servers.start()
    os.environ["BENCH_REDIS_URL"] = str(state["redis_url"])
    os.environ["BENCH_PG_DSN"] = str(state["pg_dsn"])
    try:
        record(out, machine())
        n, lat_n = (
            int(os.environ.get("BENCH_N", "10000")),
            int(os.environ.get("BENCH_LAT_N", "200")),
        )
        mark = os.environ.get("BENCH_MARK", "redis")
        record(out, {"meta": "settings", "runs": runs, "systems": systems, "n": n,
                     "lat_n": lat_n, "mark": mark})  # fmt: skip
        if os.environ.get("MILLION", "1") == "1":  # first: short, and sure to be done
            # the backends whose taskward row is measured (redis: bench/redis_scale.py)
            million(out, runs, [b for b in ("sqlite", "postgres") if f"taskward-{b}" in systems])
        for run in range(1, runs + 1):
            one_run(out, run, systems, PHASES)
        if os.environ.get("MEMORY", "1") == "1":
            memory(out, [s for s in MEMORY_SYSTEMS if s in systems])
        uptime(out, "end")
    finally:
        servers.stop()
        # keep the worker logs, drop the stores (the 1M-row SQLite file alone is ~230 MB)
        shutil.rmtree(RUN_DIR / "pg", ignore_errors=True)
        for db in RUN_DIR.glob("*.db*"):
            db.unlink()
    record(out, {"meta": "duration", "seconds": time.time() - started})
    env = dict(os.environ, PYTHONPATH=str(BENCH))
    subprocess.run([python_for("x"), "-m", "harness.summarize", str(out)], cwd=BENCH, env=env)
    print(f"make bench took {(time.time() - started) / 60:.1f} min", flush=True)
    return 0


def one_run(out: Path, run: int, systems: list[str], phases: list[str]) -> None:
    """Every system through every phase it takes part in, then the scale runs."""
    uptime(out, f"run {run} start")
    for system in systems:
        for phase in phases:
            if phase in ONLY_PHASES.get(system, {phase}):
                drive(out, system, phase, run)
    if os.environ.get("SCALE", "1") == "1":
        for procs in SCALE_PROCS:
            for system in SCALE_SYSTEMS:
                if system in systems or not sys.argv[1:]:
                    drive(out, system, "scale", run, procs)


def memory(out: Path, systems: list[str]) -> None:
    """The worker's RSS while it drains MEMORY_N jobs, once per system (harness.memory)."""
    env = dict(os.environ, PYTHONPATH=str(BENCH))
    for system in systems:
        argv = [python_for(system), "-m", "harness.memory", "--system", system, "--out", str(out)]
        subprocess.run(argv, cwd=BENCH, env=env)


def million(out: Path, runs: int, backends: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(BENCH))
    rows = os.environ.get("MILLION_ROWS", "1000000")
    py = python_for("x")
    for backend in backends:
        t0 = time.time()
        load = subprocess.run([py, "-m", "harness.million", "load", backend, "--rows", rows],
                              cwd=BENCH, env=env)  # fmt: skip
        secs, ok = time.time() - t0, load.returncode == 0
        record(out, {"meta": "million_load", "backend": backend, "rows": int(rows),
                     "seconds": secs, "ok": ok})  # fmt: skip
        if load.returncode != 0:
            continue
        for run in range(1, runs + 1):
            subprocess.run([py, "-m", "harness.million", "measure", backend, "--run", str(run),
                            "--out", str(out)], cwd=BENCH, env=env)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
