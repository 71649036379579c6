"""How often a limit held a queue's jobs back (``QueueFlow.waits``, migration 0010).

A claim that no limit capped does nothing for them. One that a limit capped runs
``count_wait``, which counts it under its reason if the queue still has a pending job:

- a hold or a full rate window (known before the claim, from ``allowance``): in the claim's
  own transaction, after it, in the same pipeline (no round trip added);
- a global limit (known only from what the claim took: fewer jobs than it asked): after the
  claim's commit, on the same connection. Nothing else capped such a claim, so it was capped
  exactly when pending jobs are left, which the statement looks for.

The partitioned claim counts in ``taskward_claim_by_key`` itself, on the row it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskward.backends.postgres.connections import AsyncPooledConnection
from taskward.limits import Allowance

__all__ = ["count_capped", "count_global_limit"]


async def count_capped(
    conn: AsyncPooledConnection,
    q: Mapping[str, str],
    queue: str,
    allowed: Allowance,
    global_limit: int | None,
) -> int:
    """Count a wait for a claim its hold or rate window capped; what to check after it.

    ``count_wait`` goes out in the open pipeline, after the claim, so it reads what the claim
    left. ``global_limit``: the row's; a claim the global limit held to its full count instead
    counts under ``global_limit``. Returns how many jobs the claim asked under a global limit
    and nothing else (see :func:`count_global_limit`), else 0.
    """
    if allowed.reason is None:
        return 0 if global_limit is None else allowed.count
    params: dict[str, Any] = {
        "queue": queue,
        "reason": allowed.reason,
        "global_limit": global_limit,
    }
    await conn.cursor().execute(q["count_wait"], params)
    return 0


async def count_global_limit(
    conn: AsyncPooledConnection, q: Mapping[str, str], queue: str, *, asked: int, claimed: int
) -> None:
    """After a claim under a global limit: count a wait if it took fewer than it ``asked``."""
    if claimed < asked:
        params = {"queue": queue, "reason": "global_limit", "global_limit": None}
        await conn.run(q["count_wait"], params)
