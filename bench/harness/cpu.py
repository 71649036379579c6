"""CPU time by side during a drain, read from /proc (Linux): the worker's processes, the
PostgreSQL server (postmaster and every child) and the Redis server.

Divided by the jobs done between two snapshots it gives CPU per job: what a 2-core machine
pays for each job, whichever process pays it. A system with one worker process leaves the
second core to the servers; per-job CPU shows what that costs when the cores are shared.
"""

from __future__ import annotations

import json
import os
from typing import Any

from harness.common import DATA_DIR

HZ = os.sysconf("SC_CLK_TCK")
SIDES = ("worker", "postgres", "redis")


def _stat(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:  # exited meanwhile
        return None
    return text.rsplit(")", 1)[1].split()  # after "(comm)": state ppid pgrp session ...


def _servers() -> tuple[int | None, int | None]:
    try:
        state: dict[str, Any] = json.loads((DATA_DIR / "servers.json").read_text())
    except (OSError, ValueError):
        return None, None
    return state.get("pg_pid"), state.get("redis_pid")


def snapshot(worker_session: int | None, exclude: frozenset[int] = frozenset()) -> dict[str, float]:
    """CPU seconds so far of the worker session's processes and of each server.

    A process's own time plus that of its children it has reaped: a child that exits between
    two snapshots (a forked job, a closed PostgreSQL connection) moves its time into its
    parent's, so it is counted once either way. ``exclude``: server processes that work for
    the harness (the driver's polling connection), not for the system measured.
    """
    pg, redis = _servers()
    out = dict.fromkeys(SIDES, 0.0)
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in exclude:
            continue
        fields = _stat(pid)
        if fields is None:
            continue
        ppid, session = int(fields[1]), int(fields[3])
        # utime, stime, then cutime, cstime (children waited for)
        secs = sum(int(f) for f in fields[11:15]) / HZ
        if worker_session is not None and session == worker_session:
            out["worker"] += secs
        elif pg is not None and pg in (int(pid), ppid):
            out["postgres"] += secs
        elif redis is not None and int(pid) == redis:
            out["redis"] += secs
    return out


def per_job(
    before: dict[str, float], after: dict[str, float], jobs: int
) -> dict[str, float] | None:
    """Microseconds of CPU per job on each side between two snapshots."""
    if jobs <= 0:
        return None
    return {side: (after[side] - before[side]) / jobs * 1e6 for side in SIDES}
