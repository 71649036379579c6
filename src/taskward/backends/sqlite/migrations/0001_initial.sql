-- 0001: the initial schema.
-- One row per job; columns in the order of taskward.jobs.Job's fields. Ids are handed out by
-- the inserter under the write lock (no AUTOINCREMENT: its sqlite_sequence write costs a page
-- per commit); taskward_counters keeps them from being reused after the newest jobs are deleted.
CREATE TABLE taskward_jobs (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '[]',
    kwargs TEXT NOT NULL DEFAULT '{}',
    -- OR, not IN: an IN list costs an ephemeral table per row written (3 µs per bulk insert).
    state TEXT NOT NULL CHECK (state = 'scheduled' OR state = 'pending' OR state = 'running'
        OR state = 'retryable' OR state = 'completed' OR state = 'failed'
        OR state = 'discarded' OR state = 'cancelled'),
    priority INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    scheduled_at REAL NOT NULL,
    inserted_at REAL NOT NULL,
    attempted_at REAL,
    completed_at REAL,
    cancelled_at REAL,
    discarded_at REAL,
    attempted_by TEXT,
    lease_until REAL,
    errors TEXT NOT NULL DEFAULT '[]',
    result TEXT,
    progress TEXT,
    unique_key TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    meta TEXT NOT NULL DEFAULT '{}',
    depends_on TEXT NOT NULL DEFAULT '[]',
    timeout REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

-- fetch: the next pending jobs of a queue, in claim order.
CREATE INDEX taskward_jobs_claim ON taskward_jobs (queue, priority, scheduled_at, id)
    WHERE state = 'pending';
-- promote_due: scheduled and retryable jobs whose time has come.
CREATE INDEX taskward_jobs_due ON taskward_jobs (scheduled_at)
    WHERE state = 'scheduled' OR state = 'retryable';
-- expired_leases: running jobs by lease end.
CREATE INDEX taskward_jobs_lease ON taskward_jobs (lease_until) WHERE state = 'running';
-- list by state (sorted by id: the rowid ends every index), stats.
CREATE INDEX taskward_jobs_state ON taskward_jobs (state);
-- list by queue (and queue + state, sorted by id); stats as a covering scan.
CREATE INDEX taskward_jobs_queue_state ON taskward_jobs (queue, state);
-- list by task, sorted by id.
CREATE INDEX taskward_jobs_task ON taskward_jobs (task);
-- prune: finished jobs per state by the time they finished (the same expression and WHERE as
-- prune_state). Partial, so that inserting and claiming jobs never touches it.
CREATE INDEX taskward_jobs_finished ON taskward_jobs
    (state, COALESCE(completed_at, cancelled_at, discarded_at, inserted_at))
    WHERE state = 'completed' OR state = 'failed' OR state = 'discarded' OR state = 'cancelled';

-- The latest job inserted with each unique key (several jobs may share a key over time).
-- A duplicate is judged against this job only, as the reference backend does.
CREATE TABLE taskward_unique_keys (
    unique_key TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL
) WITHOUT ROWID;

-- Deleting (pruning) the job a key points at frees the key.
CREATE TRIGGER taskward_jobs_forget_unique_key AFTER DELETE ON taskward_jobs
    WHEN old.unique_key IS NOT NULL
BEGIN
    DELETE FROM taskward_unique_keys WHERE unique_key = old.unique_key AND job_id = old.id;
END;

-- last_job_id: the highest job id ever handed out, recorded before jobs are deleted.
CREATE TABLE taskward_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE taskward_paused_queues (
    queue TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE taskward_schedules (
    name TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    args TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    queue TEXT,
    priority INTEGER,
    max_attempts INTEGER,
    created_at REAL
) WITHOUT ROWID;

-- Named TTL leases (leader election).
CREATE TABLE taskward_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE taskward_workers (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    queues TEXT NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    running INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
