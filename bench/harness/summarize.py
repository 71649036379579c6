# ruff: noqa: RUF001
"""Raw JSONL -> results/RESULTS.md (tables) and results/*.png (charts).

    python -m harness.summarize results/raw.jsonl [--md results/RESULTS.md]

Every figure is the median over runs with its spread (min-max, and +-half-range in %). Ratios of
taskward to a peer are computed per run (both measured in that same run), then the median and
spread of those per-run ratios are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

Row = dict[str, Any]
CLASSES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "redis": "Redis", "memory": "memory"}
# taskward's comparable (mark) variant per backend class, and the class it is compared with:
# the first of the candidates the results hold (memory:// has no durable store; before the
# Redis backend it was set against the Redis peers, which run with persistence off).
TW = {
    "sqlite": ("taskward-sqlite",),
    "postgres": ("taskward-postgres",),
    "redis": ("taskward-redis", "taskward-memory"),
}


def load(path: Path) -> tuple[list[Row], list[Row]]:
    rows, meta = [], []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            (meta if "meta" in r else rows).append(r)
    return rows, meta


def agg(xs: list[float]) -> tuple[float, float, float, int] | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs), len(xs)


def num(x: float | None, nd: int = 0) -> str:
    if x is None:
        return "–"
    if nd == 0 and abs(x) < 10:
        nd = 1
    return f"{x:,.{nd}f}"


def cell(a: tuple[float, float, float, int] | None, nd: int = 0) -> tuple[str, str]:
    if a is None:
        return "–", ""
    med, lo, hi, n = a
    pm = f" (±{(hi - lo) / 2 / med * 100:.0f}%)" if med else ""
    return num(med, nd), f"{num(lo, nd)}–{num(hi, nd)}{pm}" + ("" if n >= 3 else f" n={n}")


class Results:
    def __init__(self, rows: list[Row], meta: list[Row]) -> None:
        self.rows, self.meta = rows, meta
        self.by: dict[tuple[str, str, Any], list[Row]] = defaultdict(list)
        self.order: list[str] = []
        self.info: dict[str, Row] = {}
        for r in rows:
            self.by[(r["system"], r["phase"], r.get("procs"))].append(r)
            if r["system"] not in self.order and r["phase"] not in ("million", "memory"):
                self.order.append(r["system"])
            if "config" in r:
                self.info[r["system"]] = r

    def values(self, system: str, phase: str, key: str, procs: Any = None) -> list[float]:
        return [r[key] for r in self.by[(system, phase, procs)] if r.get(key) is not None]

    def a(self, system: str, phase: str, key: str, procs: Any = None) -> Any:
        return agg(self.values(system, phase, key, procs))

    def per_run(self, system: str, phase: str, key: str) -> dict[int, float]:
        return {r["run"]: r[key] for r in self.by[(system, phase, None)] if r.get(key)}

    def failures(self, system: str, phase: str, procs: Any = None) -> str:
        errs = {r.get("error") for r in self.by[(system, phase, procs)] if not r.get("ok")}
        errs |= {
            "drain timeout" for r in self.by[(system, phase, procs)] if r.get("drain_timed_out")
        }
        return "; ".join(sorted(e for e in errs if e))

    def systems_of(self, backend: str) -> list[str]:
        return [s for s in self.order if self.info.get(s, {}).get("backend") == backend]


def header(res: Results, md: list[str]) -> None:
    m = next((x for x in res.meta if x["meta"] == "machine"), {})
    s = next((x for x in res.meta if x["meta"] == "settings"), {})
    dur = next((x for x in res.meta if x["meta"] == "duration"), {})
    md += [
        "# taskward side by side with the Python job queues",
        "",
        f"Measured {m.get('date', '?')} by `make bench` on {m.get('cpus', '?')} CPUs "
        f"({m.get('cpu_model', '?')}), {m.get('mem', '?')} RAM, Linux {m.get('kernel', '?')}, "
        f"Python {m.get('python', '?')} (oban: {m.get('python312', '?')}), SQLite "
        f"{m.get('sqlite', '?')}, PostgreSQL {m.get('servers', {}).get('postgres', '?')}, Redis "
        f"{m.get('servers', {}).get('redis', '?')}. taskward at commit {m.get('git', '?')}"
        + (
            f" with {m['git_dirty_src']} uncommitted file(s) under src/ in the working tree "
            "(other engineers were editing)"
            if str(m.get("git_dirty_src", "0")) not in ("", "0")
            else ""
        )
        + ".",
        "",
        f"**Each figure: median of {s.get('runs', '?')} runs** (systems interleaved within each "
        "run; every (system, phase, run) is a fresh driver process) with its spread: min–max "
        "(±half-range as % of the median). Ratios taskward ÷ peer are taken per run, between "
        f"figures measured in the same run, then their median and min–max are given. N = "
        f"{s.get('n', '?'):,} jobs, latency: {s.get('lat_n', '?')} jobs 10 ms apart.",
        "",
        *(
            [
                "**Job mark: `BENCH_MARK=file`**: every job's body is one 16-byte append to a "
                "local file (no Redis round trip), so the queue's own cost shows; the driver "
                "counts done jobs by the file's size. The CPU tables' Redis column is then the "
                "queue's own use of Redis alone.",
                "",
            ]
            if s.get("mark") == "file"
            else []
        ),
        "**The machine is shared**: other engineers' work (test suites) may run on the same 2 "
        "cores during the measurement. Load averages (1/5/15 min) recorded by the harness:",
        "",
    ]
    for x in res.meta:
        if x["meta"] == "uptime":
            at = f" (taskward at {x['git']})" if x.get("git") else ""
            md.append(f"- {x['label']}: `{x['uptime']}`{at}")
    if dur:
        md += ["", f"Whole `make bench` run: {dur['seconds'] / 60:.1f} min."]
    md.append("")


def table_enqueue(res: Results, md: list[str]) -> None:
    md += [
        "## Enqueue — jobs/s, one producer process",
        "",
        "*concurrent*: 64 producers at once in that process (asyncio tasks for an async API,",
        "threads for a sync one), each call one job; ×: concurrent ÷ one-by-one.",
        "",
        "| system | backend | one-by-one | spread | concurrent | × | bulk | spread |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for s in res.order:
        b = res.info[s]["backend"]
        one = cell(res.a(s, "enqueue", "enqueue_rate"))
        bulk_rows = res.by[(s, "bulk", None)]
        if bulk_rows and all(r.get("bulk") == "n/a" for r in bulk_rows):
            bulk = ("no bulk API", "")
        else:
            bulk = cell(res.a(s, "bulk", "bulk_rate"))
        many = res.a(s, "concurrent", "concurrent_rate")
        single = res.a(s, "enqueue", "enqueue_rate")
        gain = f"{many[0] / single[0]:.1f}" if many and single else ""
        conc = cell(many)[0] if many else ""
        md.append(f"| {s} | {b} | {one[0]} | {one[1]} | {conc} | {gain} | {bulk[0]} | {bulk[1]} |")
    md.append("")


def table_drain(res: Results, md: list[str]) -> None:
    md += [
        "## Drain — N pre-queued no-op jobs, worker started cold, jobs/s",
        "",
        "steady = (N−1) / (first → last job start); wall = N / (worker spawn → all done), "
        "start-up included. `-own` rows: taskward without the Redis mark, completion and "
        "timestamps read from its store (steady = N / first claim → last completion).",
        "",
        "| system | backend | steady | spread | wall | spread | start-up s | failures |",
        "|---|---|---:|---|---:|---|---:|---|",
    ]
    for s in res.order:
        b = res.info[s]["backend"]
        st = cell(res.a(s, "enqueue", "drain_rate_steady"))
        wa = cell(res.a(s, "enqueue", "drain_rate_wall"))
        su = res.a(s, "enqueue", "worker_startup_s")
        n = {r.get("n") for r in res.by[(s, "enqueue", None)]}
        note = f" (N={n.pop():,})" if len(n) == 1 and n != {10000} else ""
        md.append(
            f"| {s}{note} | {b} | {st[0]} | {st[1]} | {wa[0]} | {wa[1]} | "
            f"{num(su[0], 2) if su else '–'} | {res.failures(s, 'enqueue')} |"
        )
    md.append("")


def table_cpu(res: Results, md: list[str]) -> None:
    """CPU per job in the drain (harness.cpu), by side: who pays for each job."""
    md += [
        "## CPU per job in the drain — µs, median of runs",
        "",
        "CPU time read from /proc over the last 90% of the drain (after start-up), divided by "
        "the jobs done meanwhile: the worker's processes (job bodies included: the Redis mark "
        "costs the worker about 150–200 µs of it), the PostgreSQL server (postmaster and every "
        "child) and the Redis server, each with the time of the children it reaped (RQ's "
        "forked work-horses, closed connections). The driver's own process and the PostgreSQL "
        "connection the `-own` rows poll on are left out; its Redis polling (a GET every 5 ms) "
        "is in the Redis column. RQ's row covers its 1,000 jobs. On 2 cores a "
        "system draining D jobs/s with one worker process can spend up to 1 s / D of worker "
        "CPU per job and leave the other core to the server; one with two worker processes "
        "shares both cores with the server, so its total per job bounds its rate.",
        "",
        "| system | backend | worker | PostgreSQL | Redis | total | jobs per CPU-second |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in res.order:
        rows = [r["cpu_us_per_job"] for r in res.by[(s, "enqueue", None)]
                if r.get("cpu_us_per_job")]  # fmt: skip
        if not rows:
            continue
        side = {k: agg([r[k] for r in rows]) for k in ("worker", "postgres", "redis")}
        total = agg([sum(r.values()) for r in rows])
        med = {k: (v[0] if v else None) for k, v in side.items()}
        per_sec = 1e6 / total[0] if total and total[0] else None
        md.append(
            f"| {s} | {res.info[s]['backend']} | {num(med['worker'])} | "
            f"{num(med['postgres'])} | {num(med['redis'])} | {num(total[0] if total else None)}"
            f" | {num(per_sec)} |"
        )
    md.append("")


def table_latency(res: Results, md: list[str]) -> None:
    md += [
        "## Start latency — idle worker, jobs 10 ms apart, ms (median of per-run percentiles)",
        "",
        "| system | backend | p50 | spread | p95 | spread | p99 | spread | failures |",
        "|---|---|---:|---|---:|---|---:|---|---|",
    ]
    for s in res.order:
        cells: list[str] = []
        for k in ("lat_p50_ms", "lat_p95_ms", "lat_p99_ms"):
            cells += cell(res.a(s, "latency", k), 1)
        md.append(
            f"| {s} | {res.info[s]['backend']} | "
            + " | ".join(cells)
            + f" | {res.failures(s, 'latency')} |"
        )
    md.append("")


def ratio(res: Results, tw: str, peer: str, phase: str, key: str, invert: bool = False) -> str:
    a, b = res.per_run(tw, phase, key), res.per_run(peer, phase, key)
    rs = [(b[k] / a[k]) if invert else (a[k] / b[k]) for k in a if k in b and a[k] and b[k]]
    if not rs:
        return "–"
    med = statistics.median(rs)
    return f"{med:.2f}× ({min(rs):.2f}–{max(rs):.2f})" if len(rs) > 1 else f"{med:.2f}×"


def table_ratios(res: Results, md: list[str]) -> None:
    md += [
        "## taskward ÷ peer, same run (>1 = taskward better; latency = peer p50 ÷ taskward p50)",
        "",
        "Comparable figures only: taskward's job body is the same `mark()` as every "
        "peer's. The Redis class compares taskward-redis where it was measured (otherwise "
        "memory://, not durable, set against the Redis peers, which ran with persistence off).",
        "",
        "| class | taskward | peer | enqueue one-by-one | bulk | drain steady | drain wall "
        "| latency p50 |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for backend, candidates in TW.items():
        tw = next((t for t in candidates if t in res.info), None)
        if tw is None:
            continue
        for peer in res.systems_of(backend):
            if peer.startswith("taskward"):
                continue
            md.append(
                f"| {CLASSES[backend]} | {tw} | {peer} | "
                f"{ratio(res, tw, peer, 'enqueue', 'enqueue_rate')} | "
                f"{ratio(res, tw, peer, 'bulk', 'bulk_rate')} | "
                f"{ratio(res, tw, peer, 'enqueue', 'drain_rate_steady')} | "
                f"{ratio(res, tw, peer, 'enqueue', 'drain_rate_wall')} | "
                f"{ratio(res, tw, peer, 'latency', 'lat_p50_ms', invert=True)} |"
            )
    md.append("")


def table_scale(res: Results, md: list[str]) -> None:
    procs = sorted({r["procs"] for r in res.rows if r["phase"] == "scale" and r.get("procs")})
    if not procs:
        return
    systems = [s for s in res.order if any(res.by[(s, "scale", p)] for p in procs)]
    md += [
        "## Scale — drain of N pre-queued jobs (bulk-enqueued) on PostgreSQL by worker processes",
        "",
        "taskward: processes × the async slots of its configuration (see Configurations; 50 "
        "unless BENCH_TW_CONCURRENCY says otherwise); bare loop: processes × claim 100. jobs/s, "
        "steady (wall in brackets).",
        "",
        "| system | " + " | ".join(f"{p} proc{'s' if p > 1 else ''}" for p in procs) + " |",
        "|---|" + "---:|" * len(procs),
    ]
    for s in systems:
        cells = []
        for p in procs:
            st = cell(res.a(s, "scale", "drain_rate_steady", p))
            wa = res.a(s, "scale", "drain_rate_wall", p)
            fail = res.failures(s, "scale", p)
            cells.append(
                f"{st[0]} ({num(wa[0]) if wa else '–'}) {st[1]}" + (f" **{fail}**" if fail else "")
            )
        md.append(f"| {s} | " + " | ".join(cells) + " |")
    md.append("")


def table_million(res: Results, md: list[str]) -> None:
    rows = [r for r in res.rows if r["phase"] == "million"]
    if not rows:
        return
    loads = [x for x in res.meta if x["meta"] == "million_load"]
    md += [
        f"## Listing and statistics with {rows[0].get('rows', 0):,} jobs in the table, ms",
        "",
        "One bulk load per backend, PostgreSQL then VACUUM ANALYZE ("
        + ", ".join(f"{x['backend']}: {x['rows']:,} rows in {x['seconds']:.0f} s" for x in loads)
        + "); each run is a fresh process: *cold* = its first call, *warm* = median of the "
        "next 5. States: 94% completed, 2% failed, 2% pending, 1% scheduled, 1% cancelled; "
        "4 queues.",
        "",
        "| backend | query | cold | spread | warm | spread |",
        "|---|---|---:|---|---:|---|",
    ]
    labels = {
        "list_first_page": "list_tasks() first page (50, newest first)",
        "list_failed": "list_tasks(state='failed')",
        "list_queue_pending": "list_tasks(queue='emails', state='pending')",
        "statistics": "get_statistics()",
    }
    for backend in ("sqlite", "postgres"):
        rs = [r for r in rows if r["backend"] == backend and r.get("ok")]
        if not rs:
            continue
        for key, label in labels.items():
            cold = cell(agg([r[f"{key}_cold_ms"] for r in rs]), 1)
            warm = cell(agg([r[f"{key}_ms"] for r in rs]), 1)
            md.append(f"| {backend} | {label} | {cold[0]} | {cold[1]} | {warm[0]} | {warm[1]} |")
    md.append("")


def table_memory(res: Results, md: list[str]) -> None:
    rows = [r for r in res.rows if r["phase"] == "memory"]
    if not rows:
        return
    md += [
        f"## Worker memory while draining {rows[0].get('n', 0):,} jobs",
        "",
        "One worker process (`taskward worker -q default=50`, the job does no I/O), jobs "
        "pre-queued in bulk; resident set (VmRSS) sampled every 0.25 s. *before*: first "
        "sample once 1% are done (warm); *after*: all done.",
        "",
        "| system | before MiB | after MiB | growth | peak MiB | drain s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if not r.get("ok"):
            md.append(f"| {r['system']} | – | – | – | – | **{r.get('error', 'failed')}** |")
            continue
        growth = r["rss_after_mib"] - r["rss_before_mib"]
        md.append(
            f"| {r['system']} | {r['rss_before_mib']:.1f} | {r['rss_after_mib']:.1f} | "
            f"{growth:+.1f} | {r['rss_peak_mib']:.1f} | {r['drain_s']:.1f} |"
        )
    md.append("")


def memory_chart(res: Results, path: Path) -> None:
    rows = [r for r in res.rows if r["phase"] == "memory" and r.get("samples")]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for r in rows:
        done = [s[1] for s in r["samples"]]
        mib = [s[2] for s in r["samples"]]
        ax.plot(done, mib, marker=".", label=r["system"])
    ax.set_xlabel("jobs completed")
    ax.set_ylabel("worker RSS, MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"taskward worker memory while draining {rows[0].get('n', 0):,} jobs", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table_configs(res: Results, md: list[str]) -> None:
    md += ["## Configurations", "", "| system | backend | worker config |", "|---|---|---|"]
    for s in res.order:
        md.append(f"| {s} | {res.info[s]['backend']} | {res.info[s]['config']} |")
    m = next((x for x in res.meta if x["meta"] == "machine"), {})
    if m.get("packages"):
        pkgs = dict.fromkeys(p for p in m["packages"] if p.split("==")[0].lower() in KEY_PACKAGES)
        md += ["", "Versions: " + ", ".join(f"`{p}`" for p in pkgs) + "."]
    md.append("")


KEY_PACKAGES = {
    "celery", "rq", "dramatiq", "huey", "arq", "saq", "procrastinate", "pgqueuer", "oban",
    "redis", "hiredis", "psycopg", "asyncpg", "kombu",
}  # fmt: skip


COLORS = {"memory": "#999999", "sqlite": "#4c72b0", "postgres": "#55a868", "redis": "#c44e52"}


def bars(res: Results, path: Path, title: str, series: list[tuple[str, str, str]], log: bool,
         unit: str) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in res.order if any(res.a(s, ph, k) for _, ph, k in series)]
    fig, ax = plt.subplots(figsize=(10, 0.38 * len(systems) * len(series) + 1.5))
    h = 0.8 / len(series)
    for j, (_, phase, key) in enumerate(series):
        for i, s in enumerate(systems):
            a = res.a(s, phase, key)
            if not a:
                continue
            med, lo, hi, _ = a
            y = i + j * h
            b = res.info[s]["backend"]
            ax.barh(y, med, h * 0.9, color=COLORS.get(b, "#777"), alpha=1 - 0.3 * j,
                    xerr=[[med - lo], [hi - med]], capsize=2,
                    edgecolor="black" if s.startswith("taskward") else "none")  # fmt: skip
            ax.text(med, y, f" {med:,.1f}" if med < 10 else f" {med:,.0f}", va="center",
                    fontsize=7)  # fmt: skip
    ax.set_yticks([i + h * (len(series) - 1) / 2 for i in range(len(systems))])
    ax.set_yticklabels(systems, fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(
        unit + ("  (" + " / ".join(s[0] for s in series) + ")" if len(series) > 1 else "")
    )
    ax.set_title(title + "  — median, whiskers = min–max; colour = backend", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def charts(res: Results, outdir: Path) -> None:
    bars(res, outdir / "drain.png", "Drain, steady jobs/s",
         [("steady", "enqueue", "drain_rate_steady")], False, "jobs/s")  # fmt: skip
    bars(res, outdir / "enqueue.png", "Enqueue jobs/s",
         [("one-by-one", "enqueue", "enqueue_rate"), ("bulk", "bulk", "bulk_rate")], True,
         "jobs/s (log)")  # fmt: skip
    bars(res, outdir / "latency.png", "Start latency p50 / p99, ms",
         [("p50", "latency", "lat_p50_ms"), ("p99", "latency", "lat_p99_ms")], True,
         "ms (log)")  # fmt: skip
    procs = sorted({r["procs"] for r in res.rows if r["phase"] == "scale" and r.get("procs")})
    if procs:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for s in dict.fromkeys(r["system"] for r in res.rows if r["phase"] == "scale"):
            meds = [res.a(s, "scale", "drain_rate_steady", p) for p in procs]
            ax.errorbar(procs, [m[0] if m else None for m in meds],
                        yerr=[[m[0] - m[1] if m else 0 for m in meds],
                              [m[2] - m[0] if m else 0 for m in meds]],
                        marker="o", capsize=3, label=s)  # fmt: skip
        ax.set_xticks(procs)
        ax.set_xlabel("worker processes")
        ax.set_ylabel("drain jobs/s (steady)")
        ax.set_title("PostgreSQL drain by worker processes (2-core machine)", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(outdir / "scale.png", dpi=110)
        plt.close(fig)


def million_chart(res: Results, path: Path) -> None:
    rows = [r for r in res.rows if r["phase"] == "million" and r.get("ok")]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["list_first_page", "list_failed", "list_queue_pending", "statistics"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.2
    for j, (backend, cold) in enumerate(
        [("sqlite", False), ("sqlite", True), ("postgres", False), ("postgres", True)]
    ):
        rs = [r for r in rows if r["backend"] == backend]
        suffix = "_cold_ms" if cold else "_ms"
        for i, k in enumerate(keys):
            a = agg([r[k + suffix] for r in rs])
            if not a:
                continue
            med, lo, hi, _ = a
            ax.bar(i + (j - 1.5) * width, med, width * 0.9, yerr=[[med - lo], [hi - med]],
                   capsize=2, color=COLORS[backend], alpha=0.5 if cold else 1.0,
                   label=f"{backend} {'cold' if cold else 'warm'}" if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(["first page", "state=failed", "queue+pending", "statistics"])
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title(f"taskward listing/statistics with {rows[0].get('rows', 0):,} jobs", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", type=Path)
    ap.add_argument("--md", type=Path)
    a = ap.parse_args()
    res = Results(*load(a.raw))
    md: list[str] = []
    header(res, md)
    table_ratios(res, md)
    table_enqueue(res, md)
    table_drain(res, md)
    table_cpu(res, md)
    table_latency(res, md)
    table_scale(res, md)
    table_million(res, md)
    table_memory(res, md)
    table_configs(res, md)
    md += [
        "Charts: `drain.png` `enqueue.png` `latency.png` `scale.png` `million.png` `memory.png`.",
        "",
    ]
    out = a.md or a.raw.parent / "RESULTS.md"
    out.write_text("\n".join(md))
    charts(res, out.parent)
    million_chart(res, out.parent / "million.png")
    memory_chart(res, out.parent / "memory.png")
    print(f"wrote {out} and charts in {out.parent}")


if __name__ == "__main__":
    main()
