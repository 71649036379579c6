-- 0002: per-queue limits (issue 21), shared by every process that opens the file.
-- One row per limited queue; no row: no limit. fetch_jobs reads the row of its queue by this
-- primary key in the claim's own BEGIN IMMEDIATE transaction, and caps the claim at
-- global_limit minus the queue's running jobs (counted on taskward_jobs_queue_state).
-- updated_at: when the limit was last set (informational; unix epoch seconds).
CREATE TABLE taskward_queue_limits (
    queue TEXT PRIMARY KEY,
    global_limit INTEGER NOT NULL CHECK (global_limit >= 0),
    updated_at REAL NOT NULL
) WITHOUT ROWID;
