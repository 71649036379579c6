"""Cold and warm timings of ``taskward audit`` on a large tree of real asyncio code.

By default the tree is a copy of asyncio-heavy libraries installed in this venv (FastAPI,
Starlette, psycopg, psycopg_pool, AnyIO, HTTPX, httpcore, Uvicorn, Playwright) plus the
standard library's asyncio package, copied into a temporary folder so that no
``site-packages`` skip rule or pyproject setting applies. ``--tree DIR`` audits a folder of
your own instead.

Each timing is the best and the median of ``--runs`` runs of
``python -m taskward.audit TREE --format json`` as a fresh process (so interpreter start and
imports count, as they do in CI); on a shared machine the best is the one least disturbed:

* cold: an empty cache folder every run (all files parsed, across the cores);
* cold, one process: the same with ``--jobs 1``;
* warm: the cache filled by a previous run, nothing changed since;
* in-process: ``scan_paths`` alone (no interpreter start, no imports), cold and warm.

``--baseline FILE`` also times a standalone audit module run as a script (for example the
previous single-file implementation, ``git show <rev>:src/taskward/audit.py > old_audit.py``).

    .venv/bin/python bench/audit_bench.py             # the default corpus, 5 runs
    .venv/bin/python bench/audit_bench.py --tree src  # your own tree
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from taskward.audit import scan_paths

PACKAGES = (
    "fastapi",
    "starlette",
    "psycopg",
    "psycopg_pool",
    "anyio",
    "httpx",
    "httpcore",
    "uvicorn",
    "playwright",
)


def build_corpus(into: Path) -> Path:
    """Copy the default libraries and stdlib asyncio into ``into``; return the tree."""
    site = Path(sysconfig.get_paths()["purelib"])
    tree = into / "corpus"
    for name in PACKAGES:
        if (site / name).is_dir():
            shutil.copytree(site / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    asyncio_dir = Path(sysconfig.get_paths()["stdlib"]) / "asyncio"
    shutil.copytree(asyncio_dir, tree / "asyncio", ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def size(tree: Path) -> tuple[int, int]:
    """Return the number of ``.py`` files and of their lines."""
    files = list(tree.rglob("*.py"))
    lines = sum(len(p.read_bytes().splitlines()) for p in files)
    return len(files), lines


def timings(runs: int, action: Callable[[], object], before: Callable[[], object]) -> str:
    """Return "best / median" seconds of ``runs`` runs (best: least disturbed by other load)."""
    times = []
    for _ in range(runs):
        before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return f"{min(times):.2f} / {statistics.median(times):.2f}"


def cli(tree: Path, cache: Path, *extra: str) -> Callable[[], object]:
    argv = [sys.executable, "-m", "taskward.audit", str(tree), "--format", "json"]
    argv += ["--cache-dir", str(cache), *extra]
    return lambda: subprocess.run(argv, capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="audit this folder instead of the corpus")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="a standalone audit module to time too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as scratch:
        work = Path(scratch)
        tree = args.tree or build_corpus(work)
        cache = work / "cache"
        files, lines = size(tree)
        clear = lambda: shutil.rmtree(cache, ignore_errors=True)  # noqa: E731
        keep = lambda: None  # noqa: E731
        rows: list[tuple[str, str]] = [
            ("cold, all cores (CLI process)", timings(args.runs, cli(tree, cache), clear)),
            (
                "cold, one process (CLI process)",
                timings(args.runs, cli(tree, cache, "--jobs", "1"), clear),
            ),
        ]
        cli(tree, cache)()  # fill the cache
        rows.append(("warm (CLI process)", timings(args.runs, cli(tree, cache), keep)))
        rows.append(
            (
                "cold, all cores (scan_paths only)",
                timings(args.runs, lambda: scan_paths([tree], cache_dir=cache), clear),
            )
        )
        scan_paths([tree], cache_dir=cache)
        rows.append(
            (
                "warm (scan_paths only)",
                timings(args.runs, lambda: scan_paths([tree], cache_dir=cache), keep),
            )
        )
        if args.baseline is not None:
            argv = [sys.executable, str(args.baseline), str(tree), "--format", "json"]
            run = lambda: subprocess.run(argv, capture_output=True, check=False)  # noqa: E731
            rows.append(("baseline (CLI process)", timings(args.runs, run, keep)))
        report = scan_paths([tree], cache_dir=cache)
    print(f"tree: {args.tree or 'default corpus'}; {files:,} files, {lines:,} lines; ", end="")
    print(f"{os.cpu_count()} CPUs; {args.runs} runs; load average {os.getloadavg()[0]:.1f}")
    print(f"findings: {len(report.findings)} ({report.suppressed} suppressed)\n")
    print("| run | seconds, best / median |\n|---|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds} |")


if __name__ == "__main__":
    main()
