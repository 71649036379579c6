-- 0004: partitioned queues (issue 21): each job's key, the queue's rule and cursor, each key's
-- own hold and rate window.
--
-- taskward_jobs.partition_key: the job's key (the producer's, else the one its queue's rule read
-- from its arguments when it was stored, or when the rule was set); NULL when the queue was not
-- partitioned and the task gave none. The last column, as partition_key is Job's last field.
ALTER TABLE taskward_jobs ADD COLUMN partition_key TEXT;

-- partition_by: the queue's rule as text ("kwarg:tenant", "arg:0": str(PartitionBy)), or NULL.
-- partition_cursor: the last key the previous claim of the queue visited (the next claim starts
-- after it); written by the claim in its own BEGIN IMMEDIATE transaction, NULL after the rule
-- changes. A row with a rule is a row with limits: it stays while the rule does.
ALTER TABLE taskward_queue_limits ADD COLUMN partition_by TEXT;
ALTER TABLE taskward_queue_limits ADD COLUMN partition_cursor TEXT;

-- The partitioned claim walks the keys that have pending jobs ("the next key after k": one seek)
-- and takes each key's jobs in claim order from here. Partial: jobs without a key (queues that
-- are not partitioned) never enter it, so their inserts and claims do not pay for it.
CREATE INDEX taskward_jobs_partition ON taskward_jobs
    (queue, partition_key, priority, scheduled_at, id)
    WHERE state = 'pending' AND partition_key IS NOT NULL;
-- Each key's running jobs: counted for a key's global limit, listed (by id) by partition_flow.
CREATE INDEX taskward_jobs_partition_running ON taskward_jobs (queue, partition_key)
    WHERE state = 'running' AND partition_key IS NOT NULL;

-- One row per key of a queue with a hold or a counted rate window (made on demand: a key
-- without a row has neither). held_until: no job of the key starts before then (epoch seconds);
-- window_index, window_used: the key's rate window, as taskward_queue_limits keeps the queue's.
CREATE TABLE taskward_partition_keys (
    queue TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    held_until REAL,
    window_index INTEGER,
    window_used INTEGER NOT NULL DEFAULT 0 CHECK (window_used >= 0),
    PRIMARY KEY (queue, partition_key)
) WITHOUT ROWID;
