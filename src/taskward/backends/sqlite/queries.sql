-- Every statement the SQLite backend runs, as named blocks (see taskward.backends.sql).
--
-- Conventions: times are REAL unix epoch seconds; JSON values are TEXT. A job is always read
-- with the same 27 columns in the order of taskward.jobs.Job's fields (rows.job_from_row
-- decodes them by position). "{name}" marks a small piece that Python fills in from a fixed
-- whitelist (a PRAGMA level, a WHERE made of the filter_* blocks, an ORDER BY of a known column),
-- never from user input; values always go through "?" parameters.
--
-- INDEXED BY pins the plan of the hot statements to their partial index: without statistics
-- the planner would pick the plain state index, and a schema change that made the index
-- unusable becomes an error in the test suite instead of a silent full scan.

-- == connection ================================================================================

-- name: set_busy_timeout
PRAGMA busy_timeout = {milliseconds};

-- name: set_journal_mode_wal
PRAGMA journal_mode = WAL;

-- name: set_synchronous
PRAGMA synchronous = {level};

-- name: get_journal_mode
PRAGMA journal_mode;

-- name: get_synchronous
PRAGMA synchronous;

-- name: get_busy_timeout
PRAGMA busy_timeout;

-- Changes whenever another connection commits: the cheap cross-process wake-up signal.
-- name: data_version
PRAGMA data_version;

-- name: begin_immediate
BEGIN IMMEDIATE;

-- A read transaction: a consistent snapshot for statements that read twice.
-- name: begin_read
BEGIN DEFERRED;

-- name: commit
COMMIT;

-- name: rollback
ROLLBACK;

-- == migrations ================================================================================

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS taskward_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at REAL NOT NULL
);

-- name: applied_migrations
SELECT version FROM taskward_migrations ORDER BY version;

-- name: record_migration
INSERT INTO taskward_migrations (version, name, applied_at)
VALUES (?, ?, CAST(strftime('%s', 'now') AS REAL));

-- == produce ===================================================================================

-- Ids are handed out by the inserter (it holds the write lock) and never reused: deleting
-- runs remember_last_job_id first.
-- name: last_job_id
SELECT MAX(
    COALESCE((SELECT value FROM taskward_counters WHERE name = 'last_job_id'), 0),
    COALESCE((SELECT MAX(id) FROM taskward_jobs), 0)
);

-- name: remember_last_job_id
INSERT INTO taskward_counters (name, value)
SELECT 'last_job_id', COALESCE(MAX(id), 0) FROM taskward_jobs WHERE true
ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value);

-- One job in one statement, committing on its own: the id comes from the same expression as
-- last_job_id, computed under the write lock the statement takes before it reads. The job's
-- key is ?15 (the producer's, or NULL). A job without a key is not stored in a queue that has
-- a partition rule (no row: one primary-key probe of taskward_queue_limits): the store then
-- inserts it in a transaction that reads the rule (insert_rules) and computes its key.
-- Parameters: task, queue, … timeout as insert_job_row without its id, then the key.
-- name: insert_job_next_id
INSERT INTO taskward_jobs (
    id, task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
    unique_key, tags, meta, depends_on, timeout, partition_key
) SELECT
    1 + MAX(
        COALESCE((SELECT value FROM taskward_counters WHERE name = 'last_job_id'), 0),
        COALESCE((SELECT MAX(id) FROM taskward_jobs), 0)
    ),
    ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
WHERE ?15 IS NOT NULL OR NOT EXISTS (
    SELECT 1 FROM taskward_queue_limits WHERE queue = ?2 AND partition_by IS NOT NULL
);

-- {rows}: insert_job_row once per job (one statement for many rows costs half as much per row
-- as executemany of a one-row statement).
-- name: insert_jobs
INSERT INTO taskward_jobs (
    id, task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
    unique_key, tags, meta, depends_on, timeout, partition_key
) VALUES {rows};

-- name: insert_job_row
(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- The partition rules of the queues of an insert (JSON array of names), read in the insert's
-- own BEGIN IMMEDIATE transaction: no rule set after it can miss its jobs (the rule's
-- set_queue_limits re-keys the waiting jobs under the same lock).
-- name: insert_rules
SELECT queue, partition_by FROM taskward_queue_limits
WHERE queue IN (SELECT value FROM json_each(?)) AND partition_by IS NOT NULL;

-- name: find_unique
SELECT j.id, j.task, j.queue, j.args, j.kwargs, j.state, j.priority, j.attempt, j.max_attempts,
       j.scheduled_at, j.inserted_at, j.attempted_at, j.completed_at, j.cancelled_at,
       j.discarded_at, j.attempted_by, j.lease_until, j.errors, j.result, j.progress,
       j.unique_key, j.tags, j.meta, j.depends_on, j.timeout, j.cancel_requested,
       j.partition_key
FROM taskward_unique_keys AS u
JOIN taskward_jobs AS j ON j.id = u.job_id
WHERE u.unique_key = ?;

-- name: remember_unique
INSERT INTO taskward_unique_keys (unique_key, job_id) VALUES (?, ?)
ON CONFLICT (unique_key) DO UPDATE SET job_id = excluded.job_id;

-- == work ======================================================================================

-- Parameters: now, worker_id, lease_until, queue, limit (> 0).
-- RETURNING order is unspecified: the caller sorts by (priority, scheduled_at, id).
-- The LIMIT is ?5 for a queue without a row in taskward_queue_limits (one primary-key probe
-- finds none: nothing else is evaluated), or for one whose row has only a global limit (and at
-- most a hold that has ended) max(global_limit - its running jobs, 0): counted in this
-- statement, under the claim's BEGIN IMMEDIATE, so claims racing from several processes never
-- exceed the limit. MAX(…, 0) matters: a negative LIMIT means no limit in SQLite. A queue with
-- a rate limit, a hold still in force or a partition rule claims nothing here (LIMIT 0):
-- claim_flow, next in the same transaction, finds its row by the same condition, and the store
-- claims by the arithmetic of taskward.limits.allowance (claim_jobs, then count_window; or key
-- by key for a partitioned queue: walk_keys … claim_ids).
-- A global limit that caps the claim below ?5 passes the LIMIT through taskward_capped (a
-- function of the store's connection: it returns its argument and tells the store that the
-- limit capped this claim, which then counts the wait: count_wait). Only a capped claim calls
-- it, and the running jobs are counted once (one aggregate, used twice).
-- name: fetch_jobs
UPDATE taskward_jobs
SET state = 'running', attempt = attempt + 1, attempted_at = ?1, attempted_by = ?2,
    lease_until = ?3
WHERE id IN (
        SELECT id FROM taskward_jobs INDEXED BY taskward_jobs_claim
        WHERE queue = ?4 AND state = 'pending'
        ORDER BY priority, scheduled_at, id
        LIMIT COALESCE(
            (
                SELECT CASE
                    WHEN rate_count IS NOT NULL OR held_until > ?1 OR partition_by IS NOT NULL
                        THEN 0
                    WHEN global_limit IS NULL THEN ?5
                    ELSE (
                        SELECT CASE
                            WHEN l.global_limit - COUNT(*) >= ?5 THEN ?5
                            ELSE taskward_capped(MAX(l.global_limit - COUNT(*), 0))
                        END
                        FROM taskward_jobs INDEXED BY taskward_jobs_queue_state
                        WHERE queue = ?4 AND state = 'running'
                    )
                END
                FROM taskward_queue_limits AS l
                WHERE l.queue = ?4
            ),
            ?5
        )
    )
    AND NOT EXISTS (SELECT 1 FROM taskward_paused_queues WHERE queue = ?4)
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested, partition_key;

-- Run after fetch_jobs, in its transaction, when it claimed nothing (as it does for a queue it
-- leaves to the store): the queue's row if it has a rate limit, a hold in force or a partition
-- rule (the condition of fetch_jobs' LIMIT 0), and whether the queue is paused; no row
-- otherwise. A claim that got a job skips it, so a queue without limits pays for it (one
-- primary-key probe) only when it had nothing to hand out. Parameters: queue, now.
-- name: claim_flow
SELECT EXISTS (SELECT 1 FROM taskward_paused_queues WHERE queue = ?1),
       global_limit, rate_count, rate_period_ms, partition_by, held_until, window_index,
       window_used, partition_cursor
FROM taskward_queue_limits
WHERE queue = ?1 AND (rate_count IS NOT NULL OR held_until > ?2 OR partition_by IS NOT NULL);

-- The claim of a queue with a rate limit or a hold, by the count the store computed (> 0).
-- Parameters as fetch_jobs; the queue is known not to be paused (claim_flow, same transaction).
-- name: claim_jobs
UPDATE taskward_jobs
SET state = 'running', attempt = attempt + 1, attempted_at = ?1, attempted_by = ?2,
    lease_until = ?3
WHERE id IN (
        SELECT id FROM taskward_jobs INDEXED BY taskward_jobs_claim
        WHERE queue = ?4 AND state = 'pending'
        ORDER BY priority, scheduled_at, id
        LIMIT ?5
    )
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested, partition_key;

-- name: count_running
SELECT COUNT(*) FROM taskward_jobs INDEXED BY taskward_jobs_queue_state
WHERE queue = ? AND state = 'running';

-- The starts counted in the queue's current rate window. Parameters: window, used, queue.
-- name: count_window
UPDATE taskward_queue_limits SET window_index = ?, window_used = ? WHERE queue = ?;

-- == the partitioned claim (partitions.py's claim_by_key) =======================================
-- Run in the claim's BEGIN IMMEDIATE transaction: every step is a seek on
-- taskward_jobs_partition (pending jobs with a key) or on a primary key, so a claim costs what
-- it visits, whatever the backlog or the number of keys.

-- Up to ?4 keys that have pending jobs, in key order: after ?3 ({start} is
-- "partition_key > ?3"), or from the first key ({start} is "partition_key IS NOT NULL"), and
-- none after ?5 (NULL: no bound). Each key comes with its first pending job in claim order
-- (id, priority, scheduled_at), its state (hold, rate window: NULLs and 0 without a row) and,
-- when ?2 (the queue has a global limit), its running jobs. Parameters: queue, count running,
-- after, how many keys, last key.
-- The recursion walks key to key: each step is one seek on taskward_jobs_partition to the first
-- entry after the previous key (which is the next key's first job: the index orders a key's
-- jobs in claim order), however many jobs each key holds; one statement for a whole walk.
-- name: walk_keys
WITH RECURSIVE walk (n, id, k) AS (
    SELECT 1, j.id, j.partition_key FROM taskward_jobs AS j
    WHERE j.id = (
        SELECT id FROM taskward_jobs INDEXED BY taskward_jobs_partition
        WHERE queue = ?1 AND state = 'pending' AND {start}
        ORDER BY partition_key, priority, scheduled_at, id
        LIMIT 1
    )
    UNION ALL
    SELECT w.n + 1, j.id, j.partition_key FROM walk AS w
    JOIN taskward_jobs AS j ON j.id = (
        SELECT id FROM taskward_jobs INDEXED BY taskward_jobs_partition
        WHERE queue = ?1 AND state = 'pending' AND partition_key > w.k
        ORDER BY partition_key, priority, scheduled_at, id
        LIMIT 1
    )
    WHERE w.n < ?4 AND (?5 IS NULL OR w.k < ?5)
)
SELECT w.k, j.id, j.priority, j.scheduled_at,
       s.held_until, s.window_index, COALESCE(s.window_used, 0),
       CASE WHEN ?2 THEN (
           SELECT COUNT(*) FROM taskward_jobs INDEXED BY taskward_jobs_partition_running
           WHERE queue = ?1 AND partition_key = w.k AND state = 'running'
       ) ELSE 0 END
FROM walk AS w
JOIN taskward_jobs AS j ON j.id = w.id
LEFT JOIN taskward_partition_keys AS s ON s.queue = ?1 AND s.partition_key = w.k
WHERE ?5 IS NULL OR w.k <= ?5
ORDER BY w.n;

-- The next ?6 pending jobs of one key after its job (priority ?3, scheduled_at ?4, id ?5), in
-- claim order: for a key whose turns take more than the first job the walk brought.
-- Parameters: queue, key, priority, scheduled_at, id, count.
-- name: key_candidates_after
SELECT id, priority, scheduled_at FROM taskward_jobs INDEXED BY taskward_jobs_partition
WHERE queue = ?1 AND partition_key = ?2 AND state = 'pending'
    AND (priority, scheduled_at, id) > (?3, ?4, ?5)
ORDER BY priority, scheduled_at, id
LIMIT ?6;

-- Claim the jobs the store chose, by rowid (NOT INDEXED: else the planner seeks them through
-- the state index). Parameters: now, worker_id, lease_until, ids (JSON array).
-- name: claim_ids
UPDATE taskward_jobs NOT INDEXED
SET state = 'running', attempt = attempt + 1, attempted_at = ?1, attempted_by = ?2,
    lease_until = ?3
WHERE id IN (SELECT value FROM json_each(?4)) AND state = 'pending'
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested, partition_key;

-- The starts counted in a key's current rate window. Parameters: queue, key, window, used.
-- name: count_key_window
INSERT INTO taskward_partition_keys (queue, partition_key, window_index, window_used)
VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (queue, partition_key) DO UPDATE SET
    window_index = excluded.window_index, window_used = excluded.window_used;

-- The last key a claim of the queue visited. Parameters: queue, key.
-- name: move_partition_cursor
UPDATE taskward_queue_limits SET partition_cursor = ?2 WHERE queue = ?1;

-- A claim that a limit capped below what it asked (allowance's reason ?2: 'held',
-- 'global_limit' or 'rate_limit') counts one wait if the queue still has a pending job after it
-- (one seek on the claim index) and is not paused. Run only by such a claim, in its own
-- transaction (migration 0006). Parameters: queue, reason.
-- name: count_wait
UPDATE taskward_queue_limits
SET waits_held = waits_held + (?2 = 'held'),
    waits_global_limit = waits_global_limit + (?2 = 'global_limit'),
    waits_rate_limit = waits_rate_limit + (?2 = 'rate_limit')
WHERE queue = ?1
    AND EXISTS (
        SELECT 1 FROM taskward_jobs INDEXED BY taskward_jobs_claim
        WHERE queue = ?1 AND state = 'pending'
    )
    AND NOT EXISTS (SELECT 1 FROM taskward_paused_queues WHERE queue = ?1);

-- A partitioned claim in which some keys' own limits capped them: one wait per reason when a
-- key capped for it still has pending jobs after the claim. For each reason (held, then
-- global_limit, then rate_limit): 1 when a key of it surely has (none of its jobs was taken),
-- else 0; and a JSON array of the keys to look at (one seek each on the partition index).
-- Parameters: queue, held sure, held keys, global sure, global keys, rate sure, rate keys.
-- name: count_key_waits
UPDATE taskward_queue_limits
SET waits_held = waits_held + (?2 OR EXISTS (
        SELECT 1 FROM json_each(?3) AS k
        WHERE EXISTS (
            SELECT 1 FROM taskward_jobs INDEXED BY taskward_jobs_partition
            WHERE queue = ?1 AND partition_key = k.value AND state = 'pending'
        )
    )),
    waits_global_limit = waits_global_limit + (?4 OR EXISTS (
        SELECT 1 FROM json_each(?5) AS k
        WHERE EXISTS (
            SELECT 1 FROM taskward_jobs INDEXED BY taskward_jobs_partition
            WHERE queue = ?1 AND partition_key = k.value AND state = 'pending'
        )
    )),
    waits_rate_limit = waits_rate_limit + (?6 OR EXISTS (
        SELECT 1 FROM json_each(?7) AS k
        WHERE EXISTS (
            SELECT 1 FROM taskward_jobs INDEXED BY taskward_jobs_partition
            WHERE queue = ?1 AND partition_key = k.value AND state = 'pending'
        )
    ))
WHERE queue = ?1;

-- Parameters: lease_until, job ids (JSON array), worker_id.
-- name: extend_leases
UPDATE taskward_jobs SET lease_until = ?1
WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'running' AND attempted_by = ?3
RETURNING id, cancel_requested;

-- The fenced outcome write (memory.py's _fence_holds and _apply). Parameters:
-- ?1 id, ?2 attempt, ?3 worker_id, ?4 lease_expired_before or NULL, ?5 new state,
-- ?6 1 to refund the attempt, ?7 scheduled_at or NULL, ?8 error (JSON object) or NULL,
-- ?9 result (JSON) when completed, ?10 completed_at, ?11 cancelled_at, ?12 discarded_at
-- (each NULL to keep the stored value).
-- name: finish_job
UPDATE taskward_jobs
SET state = ?5,
    attempt = attempt - ?6,
    scheduled_at = COALESCE(?7, scheduled_at),
    errors = CASE WHEN ?8 IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(?8)) END,
    result = CASE WHEN ?5 = 'completed' THEN ?9 ELSE result END,
    completed_at = COALESCE(?10, completed_at),
    cancelled_at = COALESCE(?11, cancelled_at),
    discarded_at = COALESCE(?12, discarded_at),
    lease_until = NULL,
    cancel_requested = 0
WHERE id = ?1 AND state = 'running' AND attempt = ?2 AND attempted_by = ?3
    AND (?4 IS NULL OR lease_until < ?4);

-- Key rotation: sealed values written again, only while the job is as it was read (state,
-- attempt, number of errors, and the arguments' envelope when given). Parameters: id, state,
-- attempt, errors count, kwargs (JSON) or NULL, result (JSON) or NULL, errors (JSON array) or
-- NULL (NULL keeps the stored value), the envelope as read or NULL.
-- name: reseal_job
UPDATE taskward_jobs
SET kwargs = COALESCE(?5, kwargs), result = COALESCE(?6, result), errors = COALESCE(?7, errors)
WHERE id = ?1 AND state = ?2 AND attempt = ?3 AND json_array_length(errors) = ?4
    AND (?8 IS NULL OR json_extract(kwargs, '$."taskward.sealed"') = ?8);

-- name: set_progress
UPDATE taskward_jobs SET progress = ?
WHERE id = ? AND state = 'running' AND attempted_by = ?;

-- Is any job of these queues (JSON array) pending in a queue that is not paused, nor full
-- (running jobs at or above its global_limit: a claim would get nothing)? The global limit of
-- a partitioned queue is each key's: such a queue is never judged full here.
-- name: any_pending_in
SELECT EXISTS (
    SELECT 1 FROM taskward_jobs
    WHERE state = 'pending' AND queue IN (SELECT value FROM json_each(?1))
        AND queue NOT IN (SELECT queue FROM taskward_paused_queues)
        AND queue NOT IN (
            SELECT l.queue FROM taskward_queue_limits AS l
            WHERE l.queue IN (SELECT value FROM json_each(?1)) AND l.partition_by IS NULL
                AND l.global_limit <= (
                    SELECT COUNT(*) FROM taskward_jobs INDEXED BY taskward_jobs_queue_state
                    WHERE queue = l.queue AND state = 'running'
                )
        )
);

-- name: any_pending
SELECT EXISTS (
    SELECT 1 FROM taskward_jobs
    WHERE state = 'pending' AND queue NOT IN (SELECT queue FROM taskward_paused_queues)
        AND queue NOT IN (
            SELECT l.queue FROM taskward_queue_limits AS l
            WHERE l.partition_by IS NULL AND l.global_limit <= (
                SELECT COUNT(*) FROM taskward_jobs INDEXED BY taskward_jobs_queue_state
                WHERE queue = l.queue AND state = 'running'
            )
        )
);

-- Finish wakes the waiters of the queues with a global limit that its jobs left (a slot came
-- free): it asks any_global_limits first (a scan of the few rows of queues with limits or
-- holds), and limited_queues_of_jobs only if some queue has one. A rate or a hold is not
-- freed by a finish: their waiters wake by the timers of the claims they held back.
-- name: any_global_limits
SELECT EXISTS (SELECT 1 FROM taskward_queue_limits WHERE global_limit IS NOT NULL);

-- The queues with a global limit among those of these jobs (JSON array of ids). Driven by the
-- ids (rowid lookups), never by a scan of a limited queue's jobs.
-- name: limited_queues_of_jobs
SELECT DISTINCT queue FROM taskward_jobs
WHERE id IN (SELECT value FROM json_each(?))
    AND EXISTS (
        SELECT 1 FROM taskward_queue_limits AS l
        WHERE l.queue = taskward_jobs.queue AND l.global_limit IS NOT NULL
    );

-- == maintain ==================================================================================

-- name: promote_due
UPDATE taskward_jobs INDEXED BY taskward_jobs_due SET state = 'pending'
WHERE (state = 'scheduled' OR state = 'retryable') AND scheduled_at <= ?;

-- name: expired_leases
SELECT id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
       inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
       lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
       cancel_requested, partition_key
FROM taskward_jobs INDEXED BY taskward_jobs_lease
WHERE state = 'running' AND lease_until < ?
ORDER BY id
LIMIT ?;

-- The COALESCE is memory.py's _finished_at, and the expression of index taskward_jobs_finished.
-- Jobs of one finished state per minute of finishing, from the prune index (a range scan).
-- name: finished_per_minute
SELECT CAST(COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) / 60 AS INTEGER)
           AS minute,
       COUNT(*)
FROM taskward_jobs INDEXED BY taskward_jobs_finished
WHERE (state = 'completed' OR state = 'failed' OR state = 'discarded' OR state = 'cancelled')
    AND state = ? AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= ?
GROUP BY minute;

-- name: prune_state
DELETE FROM taskward_jobs INDEXED BY taskward_jobs_finished
WHERE (state = 'completed' OR state = 'failed' OR state = 'discarded' OR state = 'cancelled')
    AND state = ? AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) < ?;

-- == admin =====================================================================================

-- name: get_job
SELECT id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
       inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
       lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
       cancel_requested, partition_key
FROM taskward_jobs
WHERE id = ?;

-- The jobs of some ids (get_jobs; ?1: a JSON array of at most 500 ids), in no order.
-- name: get_jobs
SELECT id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
       inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
       lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
       cancel_requested, partition_key
FROM taskward_jobs
WHERE id IN (SELECT value FROM json_each(?1));

-- {where}: filter_* blocks joined with AND (or "1"); {order_by}: a whitelisted column.
-- name: list_jobs
SELECT id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
       inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
       lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
       cancel_requested, partition_key
FROM taskward_jobs
WHERE {where}
ORDER BY {order_by}
LIMIT ? OFFSET ?;

-- name: count_jobs
SELECT COUNT(*) FROM taskward_jobs WHERE {where};

-- name: filter_states
state IN (SELECT value FROM json_each(?));

-- name: filter_queue
queue = ?;

-- name: filter_task
task = ?;

-- The steps of one workflow (its index, then rowid lookups).
-- name: filter_workflow
id IN (SELECT job_id FROM taskward_steps WHERE workflow_id = ?);

-- Parameters: now, cancel error record's "at" (ISO 8601), reason, id.
-- name: cancel_waiting
UPDATE taskward_jobs
SET state = 'cancelled', cancelled_at = ?1,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempt, 'at', ?2, 'kind', 'Cancelled', 'message', ?3, 'traceback', NULL))
WHERE id = ?4 AND state IN ('blocked', 'scheduled', 'pending', 'retryable')
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested, partition_key;

-- name: request_cancel
UPDATE taskward_jobs SET cancel_requested = 1
WHERE id = ? AND state = 'running'
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested, partition_key;

-- Parameters: now, id.
-- name: retry_job
UPDATE taskward_jobs
SET state = 'pending', scheduled_at = ?1, max_attempts = MAX(max_attempts, attempt + 1),
    completed_at = NULL, cancelled_at = NULL, discarded_at = NULL, cancel_requested = 0
WHERE id = ?2 AND state IN ('failed', 'discarded', 'cancelled')
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested, partition_key;

-- retry_job with an operator's edit (taskward.edits; read and written in one transaction).
-- Parameters: now, id, args and kwargs (JSON text; NULL keeps them), queue, priority, meta,
-- partition_key.
-- name: retry_job_edited
UPDATE taskward_jobs
SET state = 'pending', scheduled_at = ?1, max_attempts = MAX(max_attempts, attempt + 1),
    completed_at = NULL, cancelled_at = NULL, discarded_at = NULL, cancel_requested = 0,
    args = COALESCE(?3, args), kwargs = COALESCE(?4, kwargs), queue = ?5, priority = ?6,
    meta = ?7, partition_key = ?8
WHERE id = ?2 AND state IN ('failed', 'discarded', 'cancelled')
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested, partition_key;

-- name: delete_job
DELETE FROM taskward_jobs WHERE id = ? AND state <> 'running';

-- name: count_by_queue_and_state
SELECT queue, state, COUNT(*) FROM taskward_jobs GROUP BY queue, state;

-- name: list_paused
SELECT queue FROM taskward_paused_queues ORDER BY queue;

-- name: pause_queue
INSERT INTO taskward_paused_queues (queue) VALUES (?) ON CONFLICT (queue) DO NOTHING;

-- name: resume_queue
DELETE FROM taskward_paused_queues WHERE queue = ?;

-- Parameters: queue, global_limit, rate_count, rate_period_ms, partition_by (NULLs for no
-- such limit). updated_at: now as epoch seconds with milliseconds (julianday keeps them on
-- every SQLite version; unixepoch('subsec') needs 3.42). The hold is kept. So is the rate
-- window while the window's length stays the same (a changed count applies to the current
-- window); a window of another length numbers its windows differently, so its count starts
-- again. The partition cursor is kept, whatever the rule (as every store keeps it: any key is
-- a place to start, and the claim wraps around).
-- name: set_queue_limits
INSERT INTO taskward_queue_limits (
    queue, global_limit, rate_count, rate_period_ms, partition_by, updated_at
) VALUES (?1, ?2, ?3, ?4, ?5, (julianday('now') - 2440587.5) * 86400.0)
ON CONFLICT (queue) DO UPDATE SET
    global_limit = excluded.global_limit,
    rate_count = excluded.rate_count,
    rate_period_ms = excluded.rate_period_ms,
    window_index = CASE WHEN rate_period_ms = excluded.rate_period_ms THEN window_index END,
    window_used = CASE WHEN rate_period_ms = excluded.rate_period_ms THEN window_used ELSE 0 END,
    partition_by = excluded.partition_by,
    updated_at = excluded.updated_at;

-- Empty limits: the row keeps only its hold (drop_empty_queue_row deletes it if it has none).
-- name: clear_queue_limits
UPDATE taskward_queue_limits
SET global_limit = NULL, rate_count = NULL, rate_period_ms = NULL, window_index = NULL,
    window_used = 0, partition_by = NULL, partition_cursor = NULL,
    waits_held = 0, waits_global_limit = 0, waits_rate_limit = 0,
    updated_at = (julianday('now') - 2440587.5) * 86400.0
WHERE queue = ?;

-- The queue's partition rule as stored (no row: none). Parameter: queue.
-- name: queue_rule
SELECT partition_by FROM taskward_queue_limits WHERE queue = ?;

-- The waiting jobs of a queue, to key by a new rule (rows.key_params). Parameter: queue.
-- name: waiting_arguments
SELECT id, args, kwargs FROM taskward_jobs INDEXED BY taskward_jobs_queue_state
WHERE queue = ?;

-- Parameters: key, id.
-- name: set_partition_key
UPDATE taskward_jobs SET partition_key = ? WHERE id = ?;

-- Parameters: queue, held_until. A hold only grows: the later of the stored and the new wins.
-- name: hold_queue
INSERT INTO taskward_queue_limits (queue, held_until, updated_at)
VALUES (?1, ?2, (julianday('now') - 2440587.5) * 86400.0)
ON CONFLICT (queue) DO UPDATE SET
    held_until = MAX(COALESCE(held_until, excluded.held_until), excluded.held_until),
    updated_at = excluded.updated_at;

-- name: release_hold
UPDATE taskward_queue_limits
SET held_until = NULL, updated_at = (julianday('now') - 2440587.5) * 86400.0
WHERE queue = ?;

-- A row with neither limits nor a hold goes: the queue is back on fetch_jobs' cheapest path.
-- name: drop_empty_queue_row
DELETE FROM taskward_queue_limits
WHERE queue = ? AND global_limit IS NULL AND rate_count IS NULL AND partition_by IS NULL
    AND held_until IS NULL;

-- A hold is not a limit: a row with only a hold is not listed.
-- name: list_queue_limits
SELECT queue, global_limit, rate_count, rate_period_ms, partition_by FROM taskward_queue_limits
WHERE global_limit IS NOT NULL OR rate_count IS NOT NULL OR partition_by IS NOT NULL
ORDER BY queue;

-- name: list_queue_flow
SELECT queue, global_limit, rate_count, rate_period_ms, partition_by, held_until, window_index,
       window_used, waits_held, waits_global_limit, waits_rate_limit
FROM taskward_queue_limits
ORDER BY queue;

-- One key's hold, as hold_queue's. Parameters: queue, key, held_until.
-- name: hold_key
INSERT INTO taskward_partition_keys (queue, partition_key, held_until) VALUES (?1, ?2, ?3)
ON CONFLICT (queue, partition_key) DO UPDATE SET
    held_until = MAX(COALESCE(held_until, excluded.held_until), excluded.held_until);

-- Parameters: queue, key.
-- name: release_key_hold
UPDATE taskward_partition_keys SET held_until = NULL WHERE queue = ? AND partition_key = ?;

-- A key's row with neither a hold nor a rate window goes. Parameters: queue, key.
-- name: drop_empty_key_row
DELETE FROM taskward_partition_keys
WHERE queue = ? AND partition_key = ? AND held_until IS NULL AND window_index IS NULL;

-- The queue's limits (no row: none) and one key's state (no row: none). Parameters: queue, key.
-- name: partition_flow
SELECT l.global_limit, l.rate_count, l.rate_period_ms, l.partition_by,
       k.held_until, k.window_index, COALESCE(k.window_used, 0)
FROM (SELECT 1) AS one
LEFT JOIN taskward_queue_limits AS l ON l.queue = ?1
LEFT JOIN taskward_partition_keys AS k ON k.queue = ?1 AND k.partition_key = ?2;

-- The ids of one key's running jobs, ascending. Parameters: queue, key, how many at most.
-- name: key_running_ids
SELECT id FROM taskward_jobs INDEXED BY taskward_jobs_partition_running
WHERE queue = ? AND partition_key = ? AND state = 'running'
ORDER BY id
LIMIT ?;

-- == workflows (flows.py; the rules are taskward.graph's) ======================================
-- Every statement runs in the write (or read) transaction of the call that causes it: the
-- finish, cancel, retry or delete that ends a step releases or cancels its dependents in the
-- same transaction, so a step is released once, whichever process ends its last dependency.

-- Parameters: name, inserted_at.
-- name: insert_workflow
INSERT INTO taskward_workflows (name, inserted_at) VALUES (?, ?);

-- Parameters: job_id, workflow_id, name, on_failure, finalizer, waiting.
-- name: insert_step
INSERT INTO taskward_steps (job_id, workflow_id, name, on_failure, finalizer, waiting)
VALUES (?, ?, ?, ?, ?, ?);

-- Parameters: parent, child.
-- name: insert_edge
INSERT INTO taskward_edges (parent, child) VALUES (?, ?);

-- name: get_workflow_row
SELECT name, inserted_at FROM taskward_workflows WHERE id = ?;

-- A workflow's steps still stored, in insert order: the step's columns, then the 27 job columns.
-- name: workflow_steps
SELECT s.name, s.on_failure, s.finalizer,
       j.id, j.task, j.queue, j.args, j.kwargs, j.state, j.priority, j.attempt, j.max_attempts,
       j.scheduled_at, j.inserted_at, j.attempted_at, j.completed_at, j.cancelled_at,
       j.discarded_at, j.attempted_by, j.lease_until, j.errors, j.result, j.progress,
       j.unique_key, j.tags, j.meta, j.depends_on, j.timeout, j.cancel_requested,
       j.partition_key
FROM taskward_steps AS s INDEXED BY taskward_steps_workflow
JOIN taskward_jobs AS j ON j.id = s.job_id
WHERE s.workflow_id = ?
ORDER BY s.job_id;

-- The steps of a workflow that cancel_workflow may cancel (not its finalizers), in order.
-- name: workflow_cancellable
SELECT job_id FROM taskward_steps INDEXED BY taskward_steps_workflow
WHERE workflow_id = ? AND finalizer = 0
ORDER BY job_id;

-- The steps waiting for ?1, in edge order, with their policy.
-- name: step_children
SELECT e.child, s.on_failure FROM taskward_edges AS e INDEXED BY taskward_edges_parent
JOIN taskward_steps AS s ON s.job_id = e.child
WHERE e.parent = ?1
ORDER BY e.rowid;

-- name: step_name
SELECT name FROM taskward_steps WHERE job_id = ?;

-- A dependency of a blocked step ended as it needs: one fewer to wait for. No row when the
-- step is not blocked. Parameter: the step's job id.
-- name: count_down_step
UPDATE taskward_steps SET waiting = waiting - 1
WHERE job_id = ?1 AND EXISTS (SELECT 1 FROM taskward_jobs WHERE id = ?1 AND state = 'blocked')
RETURNING waiting;

-- Release a blocked step (graph.released_state): scheduled when its time is later than now.
-- Parameters: now, id.
-- name: release_step
UPDATE taskward_jobs
SET state = CASE WHEN scheduled_at > ?1 THEN 'scheduled' ELSE 'pending' END
WHERE id = ?2 AND state = 'blocked'
RETURNING queue, state;

-- A dependency ended other than completed: cancel the blocked step (kind DependencyFailed).
-- Parameters: now, the record's "at" (ISO 8601), message, id.
-- name: cancel_step
UPDATE taskward_jobs
SET state = 'cancelled', cancelled_at = ?1,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempt, 'at', ?2, 'kind', 'DependencyFailed', 'message', ?3,
        'traceback', NULL))
WHERE id = ?4 AND state = 'blocked'
RETURNING id;

-- Parameters: propagated (0/1), id.
-- name: mark_propagated
UPDATE taskward_steps SET propagated = ? WHERE job_id = ?;

-- A step's policy, its propagated flag and its state, and the states of its dependencies
-- as a JSON array (null: deleted). No row when the job is not a step. Parameter: job id.
-- name: step_recount
SELECT s.on_failure, s.propagated, j.state, (
    SELECT json_group_array(p.state) FROM json_each(j.depends_on) AS d
    LEFT JOIN taskward_jobs AS p ON p.id = d.value
)
FROM taskward_steps AS s
JOIN taskward_jobs AS j ON j.id = s.job_id
WHERE s.job_id = ?;

-- The step ids waiting for ?1 (edge order).
-- name: step_child_ids
SELECT child FROM taskward_edges INDEXED BY taskward_edges_parent WHERE parent = ? ORDER BY rowid;

-- Parameters: waiting, propagated (0/1), id.
-- name: store_step_waiting
UPDATE taskward_steps SET waiting = ?, propagated = ? WHERE job_id = ?;

-- Parameters: id.
-- name: block_step
UPDATE taskward_jobs SET state = 'blocked', cancelled_at = NULL WHERE id = ?;

-- The sweep: the blocked jobs after id ?1, by id, at most ?2, each with its number of
-- dependencies (the sweep's budget of lookups; step_recount reads their states).
-- name: blocked_after
SELECT id, json_array_length(depends_on)
FROM taskward_jobs INDEXED BY taskward_jobs_state
WHERE state = 'blocked' AND id > ?1
ORDER BY id
LIMIT ?2;

-- Parameters: waiting, id.
-- name: recount_step
UPDATE taskward_steps SET waiting = ? WHERE job_id = ?;

-- name: job_state
SELECT state FROM taskward_jobs WHERE id = ?;

-- == schedules =================================================================================

-- The state columns (last_fire_at, last_job_id: record_cron_fires's; paused:
-- set_schedule_paused's) are not written here: a replace keeps them.
-- name: save_schedule
INSERT INTO taskward_schedules (
    name, task, cron, timezone, args, kwargs, queue, priority, max_attempts, created_at,
    catch_up, max_catch_up, catch_up_within, overlap
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    task = excluded.task, cron = excluded.cron, timezone = excluded.timezone,
    args = excluded.args, kwargs = excluded.kwargs, queue = excluded.queue,
    priority = excluded.priority, max_attempts = excluded.max_attempts,
    created_at = excluded.created_at, catch_up = excluded.catch_up,
    max_catch_up = excluded.max_catch_up, catch_up_within = excluded.catch_up_within,
    overlap = excluded.overlap;

-- name: delete_schedule
DELETE FROM taskward_schedules WHERE name = ?;

-- name: list_schedules
SELECT name, task, cron, timezone, args, kwargs, queue, priority, max_attempts, created_at,
       catch_up, max_catch_up, catch_up_within, overlap, last_fire_at, last_job_id, paused
FROM taskward_schedules
ORDER BY name;

-- Parameters: paused (0 or 1), name.
-- name: set_schedule_paused
UPDATE taskward_schedules SET paused = ? WHERE name = ?;

-- == cron fire history (migration 0007) ========================================================

-- name: schedule_exists
SELECT 1 FROM taskward_schedules WHERE name = ?;

-- A planned time already recorded keeps its first record. Parameters: schedule, planned_at,
-- outcome, job_id, reason, count, recorded_at.
-- name: record_cron_fire
INSERT INTO taskward_cron_history (
    schedule, planned_at, outcome, job_id, reason, count, recorded_at
) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (schedule, planned_at) DO NOTHING;

-- Keep the newest ?2 rows of schedule ?1 (the subquery is NULL while there are fewer).
-- name: trim_cron_history
DELETE FROM taskward_cron_history
WHERE schedule = ?1 AND planned_at < (
    SELECT planned_at FROM taskward_cron_history WHERE schedule = ?1
    ORDER BY planned_at DESC LIMIT 1 OFFSET ?2 - 1
);

-- The last fire time never moves back; the last job id changes only when one is given and
-- this call's newest planned time is not older than the stored one (a stale scheduler's late
-- record must not move it back; SET reads the row's old values).
-- Parameters: name, newest planned_at, job id or NULL.
-- name: advance_cron_state
UPDATE taskward_schedules
SET last_fire_at = max(coalesce(last_fire_at, ?2), ?2),
    last_job_id = CASE
        WHEN ?3 IS NOT NULL AND (last_fire_at IS NULL OR ?2 >= last_fire_at) THEN ?3
        ELSE last_job_id
    END
WHERE name = ?1;

-- name: cron_history
SELECT planned_at, outcome, job_id, reason, count, recorded_at
FROM taskward_cron_history
WHERE schedule = ?
ORDER BY planned_at DESC
LIMIT ?;

-- == coordination ==============================================================================

-- Take the lease if it is free, expired (expires_at <= now) or already ours; changes() = 0
-- when another holder keeps it. Parameters: name, holder, until, now.
-- name: acquire_lease
INSERT INTO taskward_leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE taskward_leases.holder = excluded.holder OR taskward_leases.expires_at <= ?4;

-- name: record_worker
INSERT INTO taskward_workers (id, hostname, pid, queues, started_at, heartbeat_at, running)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    hostname = excluded.hostname, pid = excluded.pid, queues = excluded.queues,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
    running = excluded.running;

-- name: remove_worker
DELETE FROM taskward_workers WHERE id = ?;

-- name: list_workers
SELECT id, hostname, pid, queues, started_at, heartbeat_at, running
FROM taskward_workers
WHERE heartbeat_at >= ?
ORDER BY id;

-- == health (taskward.health.figures; backends/sqlite/health.py) ===============================
-- Read in one snapshot. Each statement reads one partial index's rows, never the whole table.

-- Pending jobs per queue, the earliest due first: a covering scan of the claim index.
-- name: health_pending
SELECT queue, COUNT(*), MIN(scheduled_at)
FROM taskward_jobs INDEXED BY taskward_jobs_claim
WHERE state = 'pending'
GROUP BY queue;

-- Scheduled and retryable jobs already due that the Stager has not moved yet: a range of the
-- promotion index (empty while the Stager keeps up). Parameter: now.
-- name: health_due_later
SELECT queue, COUNT(*), MIN(scheduled_at)
FROM taskward_jobs INDEXED BY taskward_jobs_due
WHERE (state = 'scheduled' OR state = 'retryable') AND scheduled_at <= ?1
GROUP BY queue;

-- Running jobs per queue and how many are stuck (HealthQuery.is_stuck: the lease ended before
-- ?1, the timeout ended before ?1, or no timeout and started before ?2), by the lease index.
-- name: health_running
SELECT queue, COUNT(*),
    SUM(lease_until < ?1 OR (timeout IS NOT NULL AND attempted_at + timeout < ?1)
        OR (timeout IS NULL AND attempted_at < ?2))
FROM taskward_jobs INDEXED BY taskward_jobs_lease
WHERE state = 'running'
GROUP BY queue;

-- The stuck jobs, longest running first (the store keeps the first few of each queue).
-- name: health_stuck
SELECT queue, id
FROM taskward_jobs INDEXED BY taskward_jobs_lease
WHERE state = 'running'
    AND (lease_until < ?1 OR (timeout IS NOT NULL AND attempted_at + timeout < ?1)
        OR (timeout IS NULL AND attempted_at < ?2))
ORDER BY COALESCE(attempted_at, inserted_at), id;

-- Runs per queue and task that ended at or after ?2 (and at or after ?1: the short window), and
-- the failed ones: a range of the prune index per final state (as finished_per_minute), plus a
-- look-up of each row's queue and task. Last, the run times of the completed ones in whole
-- microseconds, comma-separated (taskward.health.run_times: SQLite has no percentile
-- aggregate, and ranking them in SQL, a window sort, took 4 times as long as this whole
-- statement; the rows are read here anyway, and the text costs about 15 ms per 50,000).
-- name: health_ended
SELECT queue, task,
    SUM(COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= ?1),
    SUM(state <> 'completed'
        AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= ?1),
    COUNT(*),
    SUM(state <> 'completed'),
    group_concat(CASE WHEN state = 'completed' AND attempted_at IS NOT NULL
        THEN CAST(round((completed_at - attempted_at) * 1000000) AS INTEGER) END)
FROM taskward_jobs INDEXED BY taskward_jobs_finished
WHERE (state = 'completed' OR state = 'failed' OR state = 'discarded' OR state = 'cancelled')
    AND state IN ('completed', 'failed', 'discarded')
    AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= ?2
GROUP BY queue, task;
