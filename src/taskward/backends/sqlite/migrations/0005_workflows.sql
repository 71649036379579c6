-- 0005: workflows (taskward.graph): the blocked state, the workflows, their steps and edges.
--
-- taskward_jobs accepts the state 'blocked' (a step waiting for its dependencies). SQLite
-- cannot change a CHECK constraint in place: the table is rebuilt (a new table, the rows
-- copied, the old one dropped, the new one renamed), and every index and trigger that 0001
-- and 0004 made on it is made again, with the same name and definition. The columns keep
-- their order (Job's fields; partition_key last, as 0004 added it).
CREATE TABLE taskward_jobs_0005 (
    id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '[]',
    kwargs TEXT NOT NULL DEFAULT '{}',
    -- OR, not IN: an IN list costs an ephemeral table per row written (3 µs per bulk insert).
    state TEXT NOT NULL CHECK (state = 'scheduled' OR state = 'pending' OR state = 'running'
        OR state = 'retryable' OR state = 'completed' OR state = 'failed'
        OR state = 'discarded' OR state = 'cancelled' OR state = 'blocked'),
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
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    partition_key TEXT
);

INSERT INTO taskward_jobs_0005 (
    id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
    inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
    lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
    cancel_requested, partition_key
) SELECT
    id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
    inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
    lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
    cancel_requested, partition_key
FROM taskward_jobs;

-- Drops its indexes and its trigger with it.
DROP TABLE taskward_jobs;

ALTER TABLE taskward_jobs_0005 RENAME TO taskward_jobs;

-- 0001's indexes and trigger, as they were.
CREATE INDEX taskward_jobs_claim ON taskward_jobs (queue, priority, scheduled_at, id)
    WHERE state = 'pending';
CREATE INDEX taskward_jobs_due ON taskward_jobs (scheduled_at)
    WHERE state = 'scheduled' OR state = 'retryable';
CREATE INDEX taskward_jobs_lease ON taskward_jobs (lease_until) WHERE state = 'running';
-- list by state (sorted by id), stats; release_blocked's blocked steps by id.
CREATE INDEX taskward_jobs_state ON taskward_jobs (state);
CREATE INDEX taskward_jobs_queue_state ON taskward_jobs (queue, state);
CREATE INDEX taskward_jobs_task ON taskward_jobs (task);
CREATE INDEX taskward_jobs_finished ON taskward_jobs
    (state, COALESCE(completed_at, cancelled_at, discarded_at, inserted_at))
    WHERE state = 'completed' OR state = 'failed' OR state = 'discarded' OR state = 'cancelled';

CREATE TRIGGER taskward_jobs_forget_unique_key AFTER DELETE ON taskward_jobs
    WHEN old.unique_key IS NOT NULL
BEGIN
    DELETE FROM taskward_unique_keys WHERE unique_key = old.unique_key AND job_id = old.id;
END;

-- 0004's indexes, as they were.
CREATE INDEX taskward_jobs_partition ON taskward_jobs
    (queue, partition_key, priority, scheduled_at, id)
    WHERE state = 'pending' AND partition_key IS NOT NULL;
CREATE INDEX taskward_jobs_partition_running ON taskward_jobs (queue, partition_key)
    WHERE state = 'running' AND partition_key IS NOT NULL;

-- One row per workflow; ids handed out by SQLite (rows are never deleted, so never reused).
-- inserted_at: epoch seconds, as every time.
CREATE TABLE taskward_workflows (
    id INTEGER PRIMARY KEY,
    name TEXT,
    inserted_at REAL NOT NULL
);

-- One row per step, keyed by its job (the job ids of a workflow are its insert order).
-- waiting: how many dependencies still hold the step back (decremented by the transaction
-- that ends each, recounted by a retry and by release_blocked); propagated: cancelled because
-- a dependency ended (a retry of that dependency makes it wait again).
CREATE TABLE taskward_steps (
    job_id INTEGER PRIMARY KEY,
    workflow_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    on_failure TEXT NOT NULL CHECK (on_failure = 'cancel' OR on_failure = 'continue'),
    finalizer INTEGER NOT NULL DEFAULT 0,
    waiting INTEGER NOT NULL DEFAULT 0,
    propagated INTEGER NOT NULL DEFAULT 0
);
-- get_workflow, cancel_workflow, list_jobs' workflow filter: a workflow's steps in order.
CREATE INDEX taskward_steps_workflow ON taskward_steps (workflow_id, job_id);

-- "child waits for parent", one row per dependency (in depends_on order).
CREATE TABLE taskward_edges (
    parent INTEGER NOT NULL,
    child INTEGER NOT NULL
);
-- The steps waiting for a step that ends.
CREATE INDEX taskward_edges_parent ON taskward_edges (parent);

-- A deleted (or pruned) job takes its step row and the edges to its dependents with it. A
-- delete of a step that had not ended has told its dependents first (the store, in the same
-- transaction). Only a job with meta can be a step: plain jobs skip the two probes.
CREATE TRIGGER taskward_jobs_forget_step AFTER DELETE ON taskward_jobs
    WHEN old.meta <> '{}'
BEGIN
    DELETE FROM taskward_steps WHERE job_id = old.id;
    DELETE FROM taskward_edges WHERE parent = old.id;
END;
