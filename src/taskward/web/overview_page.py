"""The dashboard's overview: health first, from the same report ``/health/jobs`` serves.

Per queue the verdict and its reasons, the age of the oldest due job, backlog, stuck jobs,
the failure rate over the last hour and the capacity; per task the runs and failures of the
last hour and the p50 and p95 run times of its successful runs; the workers and a throughput
chart (``throughput_chart``). Pausing a queue is a form POST from its row.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from taskward.errors import BackendUnavailable, InvalidOptions
from taskward.health import HealthReason, HealthReport, HealthVerdict, QueueHealth
from taskward.web.admin import Admin
from taskward.web.formatting import age, number, plural, run_time
from taskward.web.job_health import ReportCache
from taskward.web.pages import Pages, back
from taskward.web.queries import queue_overview
from taskward.web.throughput_chart import chart_view

__all__ = ["overview_routes"]

OVERVIEW_HEALTH_MAX_AGE = 1.0
"""Seconds the overview reuses a health report: a page polled every 2 s by several browsers
costs the store about one check per second, as the probes of ``/health/jobs`` do."""
OVERVIEW_HEALTH_TIMEOUT = 2.0
"""Seconds the overview waits for the health check before it shows the counts without it."""

_health_caches: WeakKeyDictionary[Admin, ReportCache] = WeakKeyDictionary()

VERDICT_BADGES = {
    HealthVerdict.OK: "s-completed",
    HealthVerdict.DEGRADED: "s-retryable",
    HealthVerdict.FAILING: "s-failed",
}
"""The badge colour of each verdict (the state badges' green, amber and red)."""
STUCK_IDS_LINKED = 3
"""Stuck jobs of a queue linked by id on the overview (all of them are counted)."""
WAITING_STATES = ("blocked", "scheduled", "pending", "retryable")


async def _overview_health(admin: Admin) -> tuple[HealthReport | None, str | None]:
    """The manager's health report (one source with ``/health/jobs``), cached about 1 s.

    A check that fails or takes too long leaves the overview up: it says why, once.
    """
    cache = _health_caches.get(admin)
    if cache is None:
        # A short bound: the page polls every 2 s, and a store that hangs must not hold it.
        cache = _health_caches[admin] = ReportCache(
            admin.manager, OVERVIEW_HEALTH_MAX_AGE, timeout=OVERVIEW_HEALTH_TIMEOUT
        )
    try:
        return await cache.get(), None
    except Exception as exc:  # the counts still show; the health cell says it is unknown
        text = str(exc) if isinstance(exc, BackendUnavailable) else type(exc).__name__
        return None, text


def _count(queue: dict[str, Any], *states: str) -> dict[str, Any]:
    """A count of ``states`` in one queue: its value, text ("~" when estimated) and flag."""
    n = sum(queue["counts"].get(s, 0) for s in states)
    estimated = any(s in queue["estimated"] for s in states)
    return {"n": n, "text": ("~" if estimated else "") + number(n), "estimated": estimated}


def _reason_text(reason: HealthReason) -> str:
    """A reason without its queue (the row names it): ``oldest due job waited 412 s (...)``."""
    message = reason.message
    prefix = f"queue {reason.queue!r}"
    if message.startswith(prefix):
        message = message[len(prefix) :].lstrip(",: ")
    return message


def _reason_short(reason: HealthReason) -> str:
    """A reason in a few words for the queue table (the full message is its tooltip)."""
    value, limit = reason.value, reason.limit
    match reason.threshold:
        case "max_oldest_due_age":
            return f"waited {age(value)} (over {age(limit)})"
        case "max_backlog":
            return f"backlog {value:,.0f} (over {limit:,.0f})"
        case "max_stuck":
            return f"{value:,.0f} stuck (over {limit:,.0f})"
        case "max_failure_rate_5m" | "max_failure_rate_60m":
            window = "5 min" if reason.threshold.endswith("5m") else "1 h"
            return f"{reason.task}: {value:.0%} failed in {window} (over {limit:.0%})"
        case "min_workers":
            if value == 0:
                return "no live worker while jobs wait"
            return f"{value:,.0f} {plural(int(value), 'worker')} (under {limit:,.0f})"
    return _reason_text(reason)


def _health_row(health: QueueHealth | None, checked: bool) -> dict[str, Any]:
    """One queue's health figures as the overview shows them (``checked``: a report exists)."""
    if health is None:  # nothing due, running or ended lately: ok, when the check ran
        verdict = HealthVerdict.OK.value if checked else "unknown"
        return {
            "verdict": verdict,
            "verdict_class": VERDICT_BADGES[HealthVerdict.OK] if checked else "",
            "reasons": [],
            "reasons_short": [],
            "oldest_due_age": None,
            "oldest_due": "—",
            "backlog": 0,
            "backlog_text": "0",
            "stuck": 0,
            "stuck_ids": [],
            "failure_rate": None,
            "failure_rate_text": "—",
            "failure_title": "no run ended in the last hour",
        }
    runs = sum(t.last_60m.runs for t in health.tasks)
    failures = sum(t.last_60m.failures for t in health.tasks)
    rate = failures / runs if runs else None
    title = (
        f"{number(failures)} of {number(runs)} {plural(runs, 'run')} failed in the last hour"
        if runs
        else "no run ended in the last hour"
    )
    return {
        "verdict": health.verdict.value,
        "verdict_class": VERDICT_BADGES[health.verdict],
        "reasons": [_reason_text(r) for r in health.reasons],
        "reasons_short": [_reason_short(r) for r in health.reasons],
        "oldest_due_age": health.oldest_due_age,
        "oldest_due": age(health.oldest_due_age),
        "backlog": health.backlog,
        "backlog_text": number(health.backlog),
        "stuck": health.stuck,
        "stuck_ids": list(health.stuck_ids[:STUCK_IDS_LINKED]),
        "failure_rate": rate,
        "failure_rate_text": "—" if rate is None else f"{rate:.0%}",
        "failure_title": title,
    }


def _overview_rows(
    queues: list[dict[str, Any]], report: HealthReport | None
) -> list[dict[str, Any]]:
    """Per queue: the stats' counts and limits with the health report's figures and verdict."""
    by_name = {q["name"]: q for q in queues}
    if report is not None:  # a queue only the report knows (no job counted yet) gets a row
        for health in report.queues:
            by_name.setdefault(
                health.queue,
                {
                    "name": health.queue,
                    "counts": {},
                    "estimated": [],
                    "paused": health.paused,
                    "concurrency": 0,
                    "workers": health.workers,
                    "global_limit": None,
                    "rate_limit": None,
                    "rate_used": None,
                    "rate_full": False,
                    "held_until": None,
                    "waits": {},
                },
            )
    rows = []
    for name in sorted(by_name):
        queue = by_name[name]
        judged = report.queue(name) if report is not None else None
        rows.append(
            {
                **queue,
                **_health_row(judged, report is not None),
                "waiting": _count(queue, *WAITING_STATES),
                "running": _count(queue, "running"),
                "completed": _count(queue, "completed"),
                "failed": _count(queue, "failed"),
                "discarded": _count(queue, "discarded"),
                "workers_text": f"{number(queue['workers'])} " + plural(queue["workers"], "worker"),
            }
        )
    return rows


TASKS_SHOWN = 30
"""Tasks the overview lists (most failures in the last hour first); the report has them all."""


def _rate_text(failures: int, runs: int) -> str:
    return f"{failures / runs:.0%}" if runs else "—"


def _task_rows(report: HealthReport | None) -> list[dict[str, Any]]:
    """Per (queue, task) with a run in the last hour: runs, failures, rates and run times.

    Over 5 and 60 minutes, as the health report counts them; ``flagged`` when a rate tripped
    a threshold; p50 and p95 of the hour's successful runs (``timed``: it had one).
    """
    if report is None:
        return []
    flagged = {(r.queue, r.task) for r in report.reasons if r.task is not None}
    rows: list[dict[str, Any]] = [
        {
            "queue": t.queue,
            "task": t.task,
            "runs": number(t.last_60m.runs),
            "failures": number(t.last_60m.failures),
            "rate": _rate_text(t.last_60m.failures, t.last_60m.runs),
            "runs_5m": number(t.last_5m.runs),
            "failures_5m": number(t.last_5m.failures),
            "rate_5m": _rate_text(t.last_5m.failures, t.last_5m.runs),
            "p50": run_time(t.p50_seconds),
            "p95": run_time(t.p95_seconds),
            "timed": t.p50_seconds is not None,
            "flagged": (t.queue, t.task) in flagged,
            "order": (-t.last_60m.failures, -t.last_60m.runs, t.queue, t.task),
        }
        for q in report.queues
        for t in q.tasks
    ]
    rows.sort(key=lambda row: row["order"])
    return rows[:TASKS_SHOWN]


async def _overview_context(admin: Admin, request: Request) -> dict[str, Any]:
    tw = admin.manager
    stats = await tw.get_statistics()
    queues = await queue_overview(tw, stats)
    report, health_error = await _overview_health(admin)

    def total(*states: str) -> str:
        """The sum over every queue, "~" first when a part of it is an estimate."""
        n = sum(q["counts"].get(s, 0) for q in queues for s in states)
        estimated = any(s in q["estimated"] for q in queues for s in states)
        return f"~{number(n)}" if estimated else number(n)

    def dead_total() -> int:
        return sum(q["counts"].get(s, 0) for q in queues for s in ("failed", "discarded"))

    jobs = request.url_for("dashboard_jobs").path
    dead = request.url_for("dashboard_dead").path
    workers = stats["workers"]["total"]
    if report is not None:
        verdict = report.verdict.value
        tone = {HealthVerdict.OK: "ok", HealthVerdict.FAILING: "bad"}.get(report.verdict, "")
        verdict_class = f"v-{verdict} {tone}".strip()
        verdict_title = "; ".join(r.message for r in report.reasons) or "every queue is ok"
    else:
        verdict, verdict_class = "unknown", "v-unknown"
        verdict_title = f"the health check failed: {health_error}"
    totals = [
        ("health", verdict, verdict_class, "#queues", verdict_title),
        (
            "waiting",
            total(*WAITING_STATES),
            "",
            f"{jobs}?state=waiting",
            "",
        ),
        ("running", total("running"), "run", f"{jobs}?state=running", ""),
        ("completed", total("completed"), "ok", f"{jobs}?state=completed", ""),
        (
            plural(dead_total(), "dead letter"),
            total("failed", "discarded"),
            "bad",
            dead,
            "",
        ),
        (plural(workers, "worker"), number(workers), "", "#workers", ""),
    ]
    return {
        "queues": _overview_rows(queues, report),
        "tasks": _task_rows(report),
        "any_estimate": any(q["estimated"] for q in queues),
        "health_error": health_error,
        "totals": totals,
        "workers": stats["workers"]["nodes"],
        "throughput": chart_view(await admin.timeline.get()),
    }


def overview_routes(router: APIRouter, pages: Pages) -> None:
    """Add this page's routes (the page, its polled fragment, its forms) to ``router``."""
    reader = [Depends(pages.admin.access.read)]

    @router.get("", name="dashboard", dependencies=reader)
    async def overview(request: Request) -> HTMLResponse:
        if "sign-in" in request.query_params:  # the link shown to anonymous readers
            pages.admin.access.sign_in(request)
        context = await _overview_context(pages.admin, request)
        return pages.render(request, "overview.html", nav="overview", **context)

    @router.get("/fragments/overview", name="dashboard_overview_fragment", dependencies=reader)
    async def overview_fragment(request: Request) -> HTMLResponse:
        context = await _overview_context(pages.admin, request)
        return pages.render(request, "_overview.html", **context)

    writer = [Depends(pages.admin.access.write)]
    tw = pages.admin.manager
    admin = pages.admin

    @router.post("/queues/{name}/{action}", name="dashboard_queue_action", dependencies=writer)
    async def queue_action(request: Request, name: str, action: str) -> RedirectResponse:
        if action not in ("pause", "resume"):
            raise HTTPException(404, f"unknown action {action!r}")
        try:
            await (tw.pause_queue(name) if action == "pause" else tw.resume_queue(name))
        except InvalidOptions as exc:
            raise HTTPException(400, str(exc)) from exc
        return back(admin, request, "dashboard", f"queue {name} {action}d")
