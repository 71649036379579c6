-- 0003: rate limits and holds (issue 21), beside the global limit of 0002.
-- One row per queue that has limits or a hold; no row: neither (fetch_jobs' single statement).
-- global_limit: at most that many running jobs of the queue, or NULL (now nullable: a queue
-- may have only a rate or only a hold). rate_count, rate_period_ms: at most rate_count starts
-- in each fixed window of rate_period_ms milliseconds aligned to the epoch (taskward.limits.Rate),
-- both NULL for no rate. window_index, window_used: the window of the last claim that started
-- jobs and how many it counted (a stored index other than the current window's counts as 0);
-- fetch writes them in the claim's own BEGIN IMMEDIATE transaction. held_until: no job of the
-- queue starts before then (epoch seconds, REAL like every time; what hold_queue stores).
-- updated_at: when the limits or the hold were last set (informational; epoch seconds).
--
-- When a row goes: set_queue_limits with empty limits deletes it only if it has no hold
-- (held_until IS NULL), and hold_queue(until=None) only if it has no limits. A hold that has
-- ended keeps its row, with its past time: deciding that a hold has ended takes a clock, and
-- only fetch has the worker's. Such a row costs nothing: fetch_jobs treats a hold at or before
-- the claim's now as no hold, so a queue with an ended hold claims on the one-statement path.
--
-- SQLite cannot drop a NOT NULL constraint in place: the 0002 table is renamed away, the new
-- one created, its rows copied, the old one dropped (no index, trigger or view refers to it).
ALTER TABLE taskward_queue_limits RENAME TO taskward_queue_limits_0002;

CREATE TABLE taskward_queue_limits (
    queue TEXT PRIMARY KEY,
    global_limit INTEGER CHECK (global_limit >= 0),
    rate_count INTEGER CHECK (rate_count >= 1),
    rate_period_ms INTEGER CHECK (rate_period_ms >= 1),
    window_index INTEGER,
    window_used INTEGER NOT NULL DEFAULT 0 CHECK (window_used >= 0),
    held_until REAL,
    updated_at REAL NOT NULL,
    CHECK ((rate_count IS NULL) = (rate_period_ms IS NULL))
) WITHOUT ROWID;

INSERT INTO taskward_queue_limits (queue, global_limit, updated_at)
SELECT queue, global_limit, updated_at FROM taskward_queue_limits_0002;

DROP TABLE taskward_queue_limits_0002;
