"""Partitioned queues on SQLite: each job's key at insert, and the claim by key.

:func:`keys_at_insert` gives each new job its key: its own, else the one its queue's rule reads
from its arguments, the rule being read in the insert's write transaction (SQLite's single
writer: a rule set at the same time either comes first, or re-keys the job after it).

:func:`claim_by_key`, the claim of a partitioned queue (its keys take turns, each with its own
limits), runs in the claim's ``BEGIN IMMEDIATE`` transaction (SQLite's single
writer: racing claims of other processes wait for it, so every key's limits are exact), as a
Python loop of index seeks, the way ``Backend.fetch`` describes it and ``memory.py``'s
``_fetch_by_key`` does it by a scan:

1. **Walk** the keys that have pending jobs in key order, starting after the queue's cursor
   and wrapping around once (``walk_keys``: one statement for many keys, one seek on the
   partial index ``taskward_jobs_partition`` per key, which lands on the key's first job in
   claim order; with it come the key's hold, rate window and, under a global limit, its
   running jobs). Stop after ``wanted`` keys that may give a job, or
   ``wanted + MAX_KEYS_PER_CLAIM_EXTRA`` keys in all.
2. **Read more candidates** only of the keys whose turns take more than their first job
   (:func:`turn_counts`): a claim of 50 jobs over 50 keys reads no more rows than the walk's.
3. **Claim** the :func:`~taskward.limits.take_turns` merge by id, count each key's starts in
   its rate window, move the cursor to the last key visited.

So a claim costs what it visits and takes, whatever the backlog or the number of keys.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from taskward.backends.sqlite import rows
from taskward.jobs import NewJob
from taskward.limits import (
    MAX_KEYS_PER_CLAIM_EXTRA,
    WAIT_REASONS,
    PartitionBy,
    QueueFlow,
    QueueLimits,
    allowance,
    take_turns,
)

__all__ = ["claim_by_key", "keys_at_insert", "turn_counts"]

Row = Sequence[Any]


def keys_at_insert(
    db: sqlite3.Connection, q: Mapping[str, str], jobs: Sequence[NewJob]
) -> list[str | None]:
    """Each job's partition key: its own, else its queue's rule's, else None.

    The rules are read in ``db``'s write transaction, by one statement (``insert_rules``) for
    the queues of the jobs without a key of their own; none when every job has one.
    """
    keys = [new.partition_key for new in jobs]
    unkeyed = {new.queue for new in jobs if new.partition_key is None}
    if not unkeyed:
        return keys
    found = db.execute(q["insert_rules"], (json.dumps(sorted(unkeyed)),)).fetchall()
    if not found:
        return keys
    rules = {queue: PartitionBy.parse(text) for queue, text in found}
    for n, new in enumerate(jobs):
        rule = rules.get(new.queue)
        if keys[n] is None and rule is not None:
            keys[n] = rule.key_of(new.args, new.kwargs)
    return keys


def claim_by_key(
    db: sqlite3.Connection,
    q: Mapping[str, str],
    params: tuple[Any, ...],
    flow: QueueFlow,
    cursor: str | None,
    now: datetime,
) -> tuple[list[Row], datetime | None]:
    """Claim from a partitioned queue in the caller's transaction; rows in take-turns order.

    ``params`` are ``fetch_jobs``' (now, worker, lease end, queue, wanted); ``flow`` is the
    queue's (its limits apply to each key; its own hold to every key); ``cursor`` the last key
    the previous claim visited. Returns the claimed job rows and when a hold or a full rate
    window that held a key back ends (the earliest), else None.
    """
    queue, wanted = params[3], params[4]
    if flow.held_until is not None and now < flow.held_until:
        db.execute(q["count_wait"], (queue, "held"))  # counted if a job waits
        return [], flow.held_until
    walk = _walk(db, q, queue, wanted, flow.limits, cursor, now)
    last = next(reversed(walk.flows), None)
    if last is not None and last != cursor:
        db.execute(q["move_partition_cursor"], (queue, last))
    if not walk.giving:
        _count_waits(db, q, queue, walk.cut)
        return [], walk.retry_at
    chosen = take_turns(_candidates(db, q, queue, walk.giving, wanted), wanted)
    ids = [row[0] for row in chosen]
    claimed = db.execute(q["claim_ids"], (*params[:3], json.dumps(ids))).fetchall()
    by_id = {row[0]: row for row in claimed}
    ordered = [by_id[job_id] for job_id in ids]
    rate = flow.limits.rate_limit
    if rate is not None:
        window = rate.window_of(now)
        for key, n in Counter(row[26] for row in ordered).items():
            used = walk.flows[key].used_in(window) + n
            db.execute(q["count_key_window"], (queue, key, window, used))
    if len(ordered) < wanted:  # a claim that got all it asked turned nobody away
        _count_waits(db, q, queue, walk.cut)
    return ordered, walk.retry_at


def _count_waits(
    db: sqlite3.Connection, q: Mapping[str, str], queue: str, cut: Mapping[str, _Cut]
) -> None:
    """Count one wait per reason for which a capped key still has pending jobs (none: nothing).

    A key allowed nothing surely has (the walk visits keys with pending jobs only); one allowed
    some is looked at after the claim (``count_key_waits``, one seek per such key).
    """
    if not cut:
        return
    params: list[Any] = [queue]
    for reason in WAIT_REASONS:
        found = cut.get(reason)
        params += [False, "[]"] if found is None else [found.sure, json.dumps(found.keys)]
    db.execute(q["count_key_waits"], params)


_FROM_START: Final = {False: "partition_key > ?3", True: "partition_key IS NOT NULL"}
"""``walk_keys``' ``{start}``: after a key, or from the first one."""


@dataclass
class _Cut:
    """The keys that one reason capped in a claim."""

    sure: bool = False
    """A key it capped was allowed nothing: its pending jobs (it has some) all wait."""
    keys: list[str] = field(default_factory=list)
    """The keys it capped that were allowed some: they wait if jobs are left after the claim."""


@dataclass
class _Walk:
    """What a claim's walk over the keys found (see :func:`_walk`)."""

    flows: dict[str, QueueFlow] = field(default_factory=dict)
    """Each visited key's flow, in visiting order."""
    giving: list[tuple[str, int, Row]] = field(default_factory=list)
    """The keys that may give jobs, in visiting order: how many (their allowance), and their
    first job (id, priority, scheduled_at)."""
    retry_at: datetime | None = None
    """The earliest end of a hold or of a full rate window that held a key back."""
    cut: dict[str, _Cut] = field(default_factory=dict)
    """The keys whose own allowance capped them, by reason (empty when none was)."""

    def visit(self, row: Row, limits: QueueLimits, wanted: int, now: datetime) -> None:
        """Judge one key of ``walk_keys`` by :func:`~taskward.limits.allowance`."""
        key: str = row[0]
        self.flows[key] = flow = rows.key_flow(limits, row[4:7])
        allowed = allowance(flow, wanted=wanted, running=row[7], now=now)
        if allowed.retry_at is not None:
            at = allowed.retry_at
            self.retry_at = at if self.retry_at is None else min(self.retry_at, at)
        if allowed.reason is not None:
            cut = self.cut.setdefault(allowed.reason, _Cut())
            if allowed.count > 0:
                cut.keys.append(key)
            else:
                cut.sure = True
        if allowed.count > 0:
            self.giving.append((key, allowed.count, row[1:4]))


def _walk(
    db: sqlite3.Connection,
    q: Mapping[str, str],
    queue: str,
    wanted: int,
    limits: QueueLimits,
    cursor: str | None,
    now: datetime,
) -> _Walk:
    """Visit the keys with pending jobs after ``cursor``, then from the first one up to it.

    ``walk_keys`` reads them in batches of as many keys as the claim would still visit if every
    one gave a job, so no key is read that the claim would not visit.
    """
    walk = _Walk()
    budget = wanted + MAX_KEYS_PER_CLAIM_EXTRA
    count_running = limits.global_limit is not None
    after, upto, wrapped = cursor, None, cursor is None
    while len(walk.giving) < wanted and len(walk.flows) < budget:
        batch = min(wanted - len(walk.giving), budget - len(walk.flows))
        sql = q["walk_keys"].format(start=_FROM_START[after is None])
        found = db.execute(sql, (queue, count_running, after, batch, upto)).fetchall()
        for row in found:
            walk.visit(row, limits, wanted, now)
        if len(found) == batch:
            after = found[-1][0]
        elif wrapped:
            break  # every key with pending jobs was visited once
        else:
            after, upto, wrapped = None, cursor, True  # from the first key up to the cursor
    return walk


def _candidates(
    db: sqlite3.Connection,
    q: Mapping[str, str],
    queue: str,
    giving: list[tuple[str, int, Row]],
    wanted: int,
) -> list[list[Row]]:
    """Each giving key's first pending jobs in claim order, as many as its turns take.

    The walk brought each key's first job; more are read after the last one read
    (``key_candidates_after``). A key may hold fewer jobs than its allowance: its turns then go
    to the other keys, which are asked for more. Each round either finds every key's share or
    finds a key out of jobs, so it ends within one round per key; usually the first round is
    the only one (and reads nothing when every key takes one job).
    """
    picks: list[list[Row]] = [[first] for _, _, first in giving]
    exhausted = [False] * len(giving)
    while True:
        known = [
            len(p) if done else cap
            for p, done, (_, cap, _) in zip(picks, exhausted, giving, strict=True)
        ]
        short = [
            (i, take - len(picks[i]))
            for i, take in enumerate(turn_counts(known, wanted))
            if take > len(picks[i])
        ]
        if not short:
            return picks
        for i, more in short:
            job_id, priority, scheduled_at = picks[i][-1]
            after = (queue, giving[i][0], priority, scheduled_at, job_id, more)
            found = db.execute(q["key_candidates_after"], after).fetchall()
            picks[i].extend(found)
            exhausted[i] = len(found) < more


def turn_counts(caps: Sequence[int], wanted: int) -> list[int]:
    """How many jobs each key gives when keys holding ``caps`` jobs take turns for ``wanted``.

    The counts :func:`~taskward.limits.take_turns` takes from lists of these lengths, in
    O(keys) steps per round of full turns rather than one step per job.
    """
    counts = [0] * len(caps)
    left = wanted
    active = [i for i, cap in enumerate(caps) if cap > 0]
    while left > 0 and active:
        if left < len(active):
            for i in active[:left]:  # a last, partial turn: the first keys in visiting order
                counts[i] += 1
            break
        turns = min(left // len(active), min(caps[i] - counts[i] for i in active))
        for i in active:
            counts[i] += turns
        left -= turns * len(active)
        active = [i for i in active if counts[i] < caps[i]]
    return counts
