-- Every statement the SQLite backend runs, as named blocks (see taskward.backends.sql).
--
-- Conventions: times are REAL unix epoch seconds; JSON values are TEXT. A job is always read
-- with the same 26 columns in the order of taskward.jobs.Job's fields (rows.job_from_row
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
-- last_job_id, computed under the write lock the statement takes before it reads.
-- name: insert_job_next_id
INSERT INTO taskward_jobs (
    id, task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
    unique_key, tags, meta, depends_on, timeout
) VALUES (
    1 + MAX(
        COALESCE((SELECT value FROM taskward_counters WHERE name = 'last_job_id'), 0),
        COALESCE((SELECT MAX(id) FROM taskward_jobs), 0)
    ),
    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
);

-- {rows}: insert_job_row once per job (one statement for many rows costs half as much per row
-- as executemany of a one-row statement).
-- name: insert_jobs
INSERT INTO taskward_jobs (
    id, task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
    unique_key, tags, meta, depends_on, timeout
) VALUES {rows};

-- name: insert_job_row
(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: find_unique
SELECT j.id, j.task, j.queue, j.args, j.kwargs, j.state, j.priority, j.attempt, j.max_attempts,
       j.scheduled_at, j.inserted_at, j.attempted_at, j.completed_at, j.cancelled_at,
       j.discarded_at, j.attempted_by, j.lease_until, j.errors, j.result, j.progress,
       j.unique_key, j.tags, j.meta, j.depends_on, j.timeout, j.cancel_requested
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
-- a rate limit or a hold still in force claims nothing here (LIMIT 0): claim_flow, next in the
-- same transaction, finds its row by the same condition, and the store claims with the
-- arithmetic of taskward.limits.allowance (claim_jobs, count_window).
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
                    WHEN rate_count IS NOT NULL OR held_until > ?1 THEN 0
                    WHEN global_limit IS NULL THEN ?5
                    ELSE MIN(?5, MAX(global_limit - (
                        SELECT COUNT(*) FROM taskward_jobs INDEXED BY taskward_jobs_queue_state
                        WHERE queue = ?4 AND state = 'running'
                    ), 0))
                END
                FROM taskward_queue_limits
                WHERE queue = ?4
            ),
            ?5
        )
    )
    AND NOT EXISTS (SELECT 1 FROM taskward_paused_queues WHERE queue = ?4)
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested;

-- Run after fetch_jobs in its transaction (so the data version read is the one of its commit:
-- no other connection commits while this one holds the write lock). Parameters: queue, now.
-- Returns the data version, then, for a queue that fetch_jobs left to the store (its row
-- matches the condition of fetch_jobs' LIMIT 0), the queue's name, whether it is paused and
-- its row (as rows.flow_from_row reads it); NULLs for every other queue, which pays for one
-- more primary-key probe in a statement the claim runs anyway.
-- name: claim_flow
SELECT v.data_version, l.queue,
       CASE WHEN l.queue IS NULL THEN NULL
            ELSE EXISTS (SELECT 1 FROM taskward_paused_queues WHERE queue = ?1) END,
       l.global_limit, l.rate_count, l.rate_period_ms, l.held_until, l.window_index,
       l.window_used
FROM pragma_data_version AS v
LEFT JOIN taskward_queue_limits AS l
    ON l.queue = ?1 AND (l.rate_count IS NOT NULL OR l.held_until > ?2);

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
          cancel_requested;

-- name: count_running
SELECT COUNT(*) FROM taskward_jobs INDEXED BY taskward_jobs_queue_state
WHERE queue = ? AND state = 'running';

-- The starts counted in the queue's current rate window. Parameters: window, used, queue.
-- name: count_window
UPDATE taskward_queue_limits SET window_index = ?, window_used = ? WHERE queue = ?;

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

-- name: set_progress
UPDATE taskward_jobs SET progress = ?
WHERE id = ? AND state = 'running' AND attempted_by = ?;

-- Is any job of these queues (JSON array) pending in a queue that is not paused, nor full
-- (running jobs at or above its global_limit: a claim would get nothing)?
-- name: any_pending_in
SELECT EXISTS (
    SELECT 1 FROM taskward_jobs
    WHERE state = 'pending' AND queue IN (SELECT value FROM json_each(?1))
        AND queue NOT IN (SELECT queue FROM taskward_paused_queues)
        AND queue NOT IN (
            SELECT l.queue FROM taskward_queue_limits AS l
            WHERE l.queue IN (SELECT value FROM json_each(?1))
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
            WHERE l.global_limit <= (
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
       cancel_requested
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
       cancel_requested
FROM taskward_jobs
WHERE id = ?;

-- {where}: filter_* blocks joined with AND (or "1"); {order_by}: a whitelisted column.
-- name: list_jobs
SELECT id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
       inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
       lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
       cancel_requested
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

-- Parameters: now, cancel error record's "at" (ISO 8601), reason, id.
-- name: cancel_waiting
UPDATE taskward_jobs
SET state = 'cancelled', cancelled_at = ?1,
    errors = json_insert(errors, '$[#]', json_object(
        'attempt', attempt, 'at', ?2, 'kind', 'Cancelled', 'message', ?3, 'traceback', NULL))
WHERE id = ?4 AND state IN ('scheduled', 'pending', 'retryable')
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested;

-- name: request_cancel
UPDATE taskward_jobs SET cancel_requested = 1
WHERE id = ? AND state = 'running'
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested;

-- Parameters: now, id.
-- name: retry_job
UPDATE taskward_jobs
SET state = 'pending', scheduled_at = ?1, max_attempts = MAX(max_attempts, attempt + 1),
    completed_at = NULL, cancelled_at = NULL, discarded_at = NULL, cancel_requested = 0
WHERE id = ?2 AND state IN ('failed', 'discarded', 'cancelled')
RETURNING id, task, queue, args, kwargs, state, priority, attempt, max_attempts, scheduled_at,
          inserted_at, attempted_at, completed_at, cancelled_at, discarded_at, attempted_by,
          lease_until, errors, result, progress, unique_key, tags, meta, depends_on, timeout,
          cancel_requested;

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

-- Parameters: queue, global_limit, rate_count, rate_period_ms (NULLs for no such limit).
-- updated_at: now as epoch seconds with milliseconds (julianday keeps them on every SQLite
-- version; unixepoch('subsec') needs 3.42). The hold is kept. So is the rate window while the
-- window's length stays the same (a changed count applies to the current window); a window of
-- another length numbers its windows differently, so its count starts again.
-- name: set_queue_limits
INSERT INTO taskward_queue_limits (queue, global_limit, rate_count, rate_period_ms, updated_at)
VALUES (?1, ?2, ?3, ?4, (julianday('now') - 2440587.5) * 86400.0)
ON CONFLICT (queue) DO UPDATE SET
    global_limit = excluded.global_limit,
    rate_count = excluded.rate_count,
    rate_period_ms = excluded.rate_period_ms,
    window_index = CASE WHEN rate_period_ms = excluded.rate_period_ms THEN window_index END,
    window_used = CASE WHEN rate_period_ms = excluded.rate_period_ms THEN window_used ELSE 0 END,
    updated_at = excluded.updated_at;

-- Empty limits: the row keeps only its hold (drop_empty_queue_row deletes it if it has none).
-- name: clear_queue_limits
UPDATE taskward_queue_limits
SET global_limit = NULL, rate_count = NULL, rate_period_ms = NULL, window_index = NULL,
    window_used = 0, updated_at = (julianday('now') - 2440587.5) * 86400.0
WHERE queue = ?;

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
WHERE queue = ? AND global_limit IS NULL AND rate_count IS NULL AND held_until IS NULL;

-- A hold is not a limit: a row with only a hold is not listed.
-- name: list_queue_limits
SELECT queue, global_limit, rate_count, rate_period_ms FROM taskward_queue_limits
WHERE global_limit IS NOT NULL OR rate_count IS NOT NULL
ORDER BY queue;

-- name: list_queue_flow
SELECT queue, global_limit, rate_count, rate_period_ms, held_until, window_index, window_used
FROM taskward_queue_limits
ORDER BY queue;

-- == schedules =================================================================================

-- name: save_schedule
INSERT INTO taskward_schedules (
    name, task, cron, timezone, args, kwargs, queue, priority, max_attempts, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    task = excluded.task, cron = excluded.cron, timezone = excluded.timezone,
    args = excluded.args, kwargs = excluded.kwargs, queue = excluded.queue,
    priority = excluded.priority, max_attempts = excluded.max_attempts,
    created_at = excluded.created_at;

-- name: delete_schedule
DELETE FROM taskward_schedules WHERE name = ?;

-- name: list_schedules
SELECT name, task, cron, timezone, args, kwargs, queue, priority, max_attempts, created_at
FROM taskward_schedules
ORDER BY name;

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
