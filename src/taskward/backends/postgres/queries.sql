-- Every statement the PostgreSQL backend runs, as named blocks (see taskward.backends.sql).
--
-- Conventions: "{schema}" (the quoted schema), "{channel}" (its NOTIFY channel) and
-- "{job_columns}" (the 27 job columns in the order of taskward.jobs.Job's fields, the table's
-- order too) are filled in once at load. "{where}" and "{order_by}" are built by Python from a fixed whitelist, never
-- from user input; values always go through %(name)s parameters. JSON goes in as text cast to
-- json, so what is stored is exactly what the producer encoded.

-- == migrations ================================================================================

-- Serialises migrations of one schema across every process that starts at once.
-- name: migration_lock
SELECT pg_advisory_xact_lock(hashtext('taskward.migrate'), hashtext(%(schema)s));

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS {schema}.taskward_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version FROM {schema}.taskward_migrations ORDER BY version;

-- name: record_migration
INSERT INTO {schema}.taskward_migrations (version, name) VALUES (%(version)s, %(name)s);

-- Any statement makes psycopg begin the caller's implicit transaction (see _outside_transaction).
-- name: join_transaction
SELECT 1;

-- == produce ===================================================================================

-- Every insert stores the job's partition key (migration 0008): the producer's
-- (%(partition_key)s), else the one the rule of the job's queue reads from its arguments
-- (taskward_key_of), else NULL. The rule is read in the insert's own statement, so the limits
-- table's lock is held until the insert's transaction ends: a rule set or changed meanwhile
-- (set_queue_limits locks the table ACCESS EXCLUSIVE, then re-keys the queue's waiting jobs)
-- waits for the insert to commit and re-keys its job, or is committed before the insert's
-- snapshot is taken. A queue without a row costs one probe of that small table's key. Each
-- insert returns the stored key as its last column.

-- The bulk insert inside a caller's transaction. The batch travels as one JSON array of rows
-- (rows.insert_rows): dumping one string costs the client a fraction of dumping 14
-- parameter arrays, and jsonb parses it once; a row leaves out trailing defaults, which ->>
-- reads as NULL. Ids come from the identity in the order of the rows, so the caller sorts the
-- returned ids to pair them with its jobs. Notifies each queue given pending jobs (see
-- insert_job).
-- name: insert_jobs
WITH job AS (
    INSERT INTO {schema}.taskward_jobs (
        task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
        unique_key, tags, meta, depends_on, timeout, partition_key
    )
    SELECT r->>0, r->>1, (r->>2)::json, COALESCE(r->>3, '{}')::json, r->>4,
           (r->>5)::smallint, (r->>6)::integer, (r->>7)::timestamptz, %(now)s, r->>8,
           CASE WHEN r->9 IS NULL THEN ARRAY[]::text[]
                ELSE ARRAY(SELECT jsonb_array_elements_text(r->9)) END,
           COALESCE(r->>10, '{}')::json,
           CASE WHEN r->11 IS NULL THEN ARRAY[]::bigint[]
                ELSE ARRAY(SELECT jsonb_array_elements_text(r->11)::bigint) END,
           (r->>12)::double precision,
           COALESCE(r->>13, (
               SELECT {schema}.taskward_key_of(
                   l.partition_kwarg, l.partition_arg, (r->>2)::json,
                   COALESCE(r->>3, '{}')::json
               )
               FROM {schema}.taskward_queue_limits AS l WHERE l.queue = r->>1
           ))
    FROM jsonb_array_elements(%(rows)s::jsonb) AS r
    RETURNING id, queue, state, partition_key
), woke AS (
    SELECT pg_notify('{channel}', queue)
    FROM (SELECT DISTINCT queue FROM job WHERE state = 'pending') AS due
)
SELECT id, (SELECT count(*) FROM woke), partition_key FROM job;

-- A bulk insert outside a caller's transaction is one transaction: bulk_floor, copy_jobs,
-- bulk_ids, COMMIT; then notify_queues. COPY has no RETURNING, so its rows take their ids from the identity, in
-- row order (the server draws them while the client still writes), and bulk_ids finds them
-- after: above the floor drawn here, up to the session's last id. (Reserving the ids before
-- the COPY, by nextval over generate_series, kept the client waiting 35 ms per 10,000 jobs.)
-- With the floor, the rule of every partitioned queue ("kwarg:name" or "arg:N", as
-- taskward.limits.PartitionBy prints it): the client keys the copied rows by them (COPY
-- computes nothing). Read in the bulk's transaction, so the limits table's lock is held until
-- its commit, as an insert statement's is (see the head of this section).
-- name: bulk_floor
SELECT nextval(pg_get_serial_sequence('{schema}.taskward_jobs', 'id')),
       ARRAY(
           SELECT l.queue FROM {schema}.taskward_queue_limits AS l
           WHERE l.partition_kwarg IS NOT NULL OR l.partition_arg IS NOT NULL
           ORDER BY l.queue
       ),
       ARRAY(
           SELECT CASE WHEN l.partition_kwarg IS NOT NULL THEN 'kwarg:' || l.partition_kwarg
                       ELSE 'arg:' || l.partition_arg END
           FROM {schema}.taskward_queue_limits AS l
           WHERE l.partition_kwarg IS NOT NULL OR l.partition_arg IS NOT NULL
           ORDER BY l.queue
       );

-- COPY parses rows at about twice the speed of an INSERT … SELECT, and streams, so the server
-- stores rows while the client still writes. Rows come from rows.copy_rows, in this
-- column order.
-- name: copy_jobs
COPY {schema}.taskward_jobs (
    task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
    unique_key, tags, meta, depends_on, timeout, partition_key
) FROM STDIN;

-- The ids the COPY drew: when the last one is floor + n, no other session drew one meanwhile
-- and they are floor + 1 .. floor + n (the second column is NULL); else the second column
-- lists the ids of the rows this transaction wrote in that span (xmin: its own 32-bit xid).
-- The queues are notified after the commit (notify_queues).
-- name: bulk_ids
WITH span AS (
    SELECT currval(pg_get_serial_sequence('{schema}.taskward_jobs', 'id')) AS last
)
SELECT last,
       CASE WHEN last - %(floor)s = %(n)s THEN NULL ELSE ARRAY(
           SELECT id FROM {schema}.taskward_jobs
           WHERE id > %(floor)s AND id <= last
               AND xmin::text::bigint = txid_current() %% 4294967296
           ORDER BY id
       ) END
FROM span;

-- Every insert statement notifies the queues of the pending jobs it inserted (a NOTIFY is
-- delivered when, and only if, its transaction commits: a transactional enqueue wakes workers
-- on the caller's commit). In the statement, not in a trigger: a statement-level trigger with
-- a transition table cost ≈ 0.2 ms per insert, a third of a one-job enqueue.
-- name: insert_job
WITH job AS (
    INSERT INTO {schema}.taskward_jobs (
        task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
        unique_key, tags, meta, depends_on, timeout, partition_key
    ) VALUES (
        %(task)s, %(queue)s, %(args)s::json, %(kwargs)s::json, %(state)s, %(priority)s,
        %(max_attempts)s, %(scheduled_at)s, %(now)s, %(unique_key)s, %(tags)s::text[],
        %(meta)s::json, %(depends_on)s::bigint[], %(timeout)s,
        COALESCE(%(partition_key)s::text, (
            SELECT {schema}.taskward_key_of(
                l.partition_kwarg, l.partition_arg, %(args)s::json, %(kwargs)s::json
            )
            FROM {schema}.taskward_queue_limits AS l WHERE l.queue = %(queue)s
        ))
    )
    RETURNING id, queue, state, partition_key
)
SELECT id, CASE WHEN state = 'pending' THEN pg_notify('{channel}', queue) END, partition_key
FROM job;

-- insert_job for the common job (no unique key, tags, meta, dependencies or timeout): fewer
-- parameters to encode and bind on the producer's hot path.
-- name: insert_job_basic
WITH job AS (
    INSERT INTO {schema}.taskward_jobs (
        task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
        partition_key
    ) VALUES (
        %(task)s, %(queue)s, %(args)s::json, %(kwargs)s::json, %(state)s, %(priority)s,
        %(max_attempts)s, %(scheduled_at)s, %(now)s,
        COALESCE(%(partition_key)s::text, (
            SELECT {schema}.taskward_key_of(
                l.partition_kwarg, l.partition_arg, %(args)s::json, %(kwargs)s::json
            )
            FROM {schema}.taskward_queue_limits AS l WHERE l.queue = %(queue)s
        ))
    )
    RETURNING id, queue, state, partition_key
)
SELECT id, CASE WHEN state = 'pending' THEN pg_notify('{channel}', queue) END, partition_key
FROM job;

-- insert_job_basic plus whether a live idle worker offers a slot of the queue (a crashed
-- worker's offer stays, but counts no more once its heartbeat is older than its lease): a
-- producer tries insert_job_dispatch (a function call, about 18 µs more per insert) only
-- after an insert saw an offer, so a busy system's producers pay one index probe, no more.
-- name: insert_job_probe
WITH job AS (
    INSERT INTO {schema}.taskward_jobs (
        task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
        partition_key
    ) VALUES (
        %(task)s, %(queue)s, %(args)s::json, %(kwargs)s::json, %(state)s, %(priority)s,
        %(max_attempts)s, %(scheduled_at)s, %(now)s,
        COALESCE(%(partition_key)s::text, (
            SELECT {schema}.taskward_key_of(
                l.partition_kwarg, l.partition_arg, %(args)s::json, %(kwargs)s::json
            )
            FROM {schema}.taskward_queue_limits AS l WHERE l.queue = %(queue)s
        ))
    )
    RETURNING id, queue, partition_key
)
SELECT id, NULL::text, NULL::timestamptz,
       EXISTS (
           SELECT 1
           FROM {schema}.taskward_offers AS o
           JOIN {schema}.taskward_workers AS w ON w.id = o.worker_id
           WHERE o.queue = %(queue)s
               AND w.heartbeat_at >= %(now)s::timestamptz - make_interval(secs => o.lease_seconds)
       ),
       pg_notify('{channel}', queue),
       partition_key
FROM job;

-- insert_job_basic for a due job that an idle worker may take at once (migration 0005's
-- function, keyed since 0008: it takes a standing offer, if any, and stores the job running for
-- that worker, whose listener gets it in the NOTIFY; else inserts it pending and notifies its
-- queue).
-- Only outside a caller's transaction (an offer held until someone else's commit would stall
-- the worker taking it back) and for payloads that fit a NOTIFY. Used once an insert saw a
-- standing offer of the queue (the fourth column: one was taken, so more may stand).
-- name: insert_job_dispatch
SELECT o_id, o_worker, o_lease, o_worker IS NOT NULL, o_key
FROM {schema}.taskward_insert_dispatch(
    %(task)s::text, %(queue)s::text, %(args)s::json, %(kwargs)s::json, %(priority)s::integer,
    %(max_attempts)s::integer, %(scheduled_at)s::timestamptz, %(now)s::timestamptz,
    %(partition_key)s::text
);

-- The jobs dispatched to a worker that it never received (a NOTIFY lost with its LISTEN
-- connection, or too large to send): it adopts them. A dispatched job is attempt 1, attempted
-- at its insert time; a claimed one never is.
-- name: dispatched_to
SELECT {job_columns}
FROM {schema}.taskward_jobs
WHERE queue = %(queue)s AND state = 'running' AND attempted_by = %(worker_id)s
    AND attempt = 1 AND attempted_at = inserted_at AND id <> ALL(%(known)s::bigint[]);

-- Held until the inserting transaction ends: concurrent inserts of one unique key (from any
-- process) take turns, so the check below and the insert after it cannot race.
-- name: lock_unique_key
SELECT pg_advisory_xact_lock(hashtext('taskward.unique'), hashtext(%(key)s));

-- name: find_unique
SELECT {job_columns}
FROM {schema}.taskward_jobs
WHERE id = (SELECT job_id FROM {schema}.taskward_unique_keys WHERE unique_key = %(key)s);

-- name: remember_unique
INSERT INTO {schema}.taskward_unique_keys (unique_key, job_id) VALUES (%(key)s, %(job_id)s)
ON CONFLICT (unique_key) DO UPDATE SET job_id = excluded.job_id;

-- == work ======================================================================================

-- Claim in priority, then schedule order; SKIP LOCKED lets many workers claim side by side
-- without waiting on each other. RETURNING order is unspecified: the caller sorts.
-- The claim commits without waiting for its WAL flush (synchronous_commit off for this
-- statement's own transaction only, set by the CTE): the flush is most of an idle worker's
-- start latency. A claim lost in a server crash only leaves its jobs pending, to be claimed
-- again (at-least-once), and the durable commit of the outcome flushes the claim before it.
-- "id = ANY(ARRAY(…))", not "id IN (…)": the claim runs as a prepared statement, and with
-- IN the server's generic plan (chosen once a table is small enough to make it look cheap)
-- hash-joined the claimed ids against a sequential scan of the whole table: 2.5 ms of server
-- CPU per claim of 50 jobs on a 10,000-job table, against 1.2 ms with the ids as an array
-- probed through the primary key, which every plan of this form does.
-- name: fetch_jobs
-- A queue with a limit (migration 0006) is never claimed here: the claim finds no job, and the
-- caller, seeing none, asks queue_is_limited whether to take the limited claim
-- (fetch_limit_lock, fetch_jobs_limited). The check costs a claim about 25 us of server time;
-- a marker row for a limited queue, which needs the UPDATE inside a CTE, cost 100 us more.
-- A limit that is being set for the first time cannot slip past: set_queue_limits locks the
-- limits table, which this statement reads, ACCESS EXCLUSIVE, so it waits for every claim
-- running, and those after it run (and take their snapshots: a statement's snapshot is taken
-- after the locks on its tables were granted) once the limit is committed.
WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
UPDATE {schema}.taskward_jobs
SET state = 'running', attempt = attempt + 1, attempted_at = %(now)s,
    attempted_by = %(worker_id)s, lease_until = %(lease_until)s
WHERE (SELECT setting FROM async_commit) = 'off' AND id = ANY(ARRAY(
    SELECT id FROM {schema}.taskward_jobs
    WHERE queue = %(queue)s AND state = 'pending'
        AND NOT EXISTS (SELECT 1 FROM {schema}.taskward_paused_queues WHERE queue = %(queue)s)
        AND NOT EXISTS (SELECT 1 FROM {schema}.taskward_queue_limits WHERE queue = %(queue)s)
    ORDER BY priority, scheduled_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
))
RETURNING {job_columns};

-- name: queue_is_limited
SELECT EXISTS (SELECT 1 FROM {schema}.taskward_queue_limits WHERE queue = %(queue)s);

-- The limited claim is one transaction of two statements, sent in one pipeline (work.py): the
-- connection is in autocommit, so the statements up to the pipeline's sync are one implicit
-- transaction, committed by the sync (rolled back if one fails). First this one: claims of one
-- limited queue take turns on its row (no row: the limit was cleared, claim as fetch_jobs). It
-- returns the row's limits, hold and rate window (migration 0007), which stay as read until the
-- transaction ends. For a queue whose last claim found only a global limit, fetch_jobs_limited
-- follows in the same round trip; otherwise the caller reads the row first (a flush, not a
-- sync: the row stays locked), applies taskward.limits.allowance to the hold and the rate, and
-- sends fetch_jobs_rated (or nothing) before the sync; a row with a partition rule (migration
-- 0008) sends claim_by_key instead.
-- name: fetch_limit_lock
SELECT global_limit, rate_count, rate_period_ms, rate_window, rate_window_used, held_until,
       partition_kwarg IS NOT NULL OR partition_arg IS NOT NULL
FROM {schema}.taskward_queue_limits WHERE queue = %(queue)s FOR UPDATE;

-- Then the claim, capped at the limit minus the queue's running jobs. The count must not read
-- the snapshot of the statement above (taken before its wait for the row: a claim that
-- committed during the wait would not be counted); this statement's snapshot is taken after
-- the lock was granted, so it sees every claim of the queue before ours, and none can commit
-- until we do. A dispatched job is never of a limited queue, nor one fetch_jobs claims: every
-- running job of the queue is counted here. Counted on the (queue, state, id) index: "state
-- BETWEEN 'running' AND 'running'", not "state = 'running'", which lets the planner prefer
-- the small lease index (WHERE state = 'running') and filter every running job of every queue
-- by queue (0.7 ms with 5,000 running elsewhere, against 0.13 ms); the range cannot prove
-- that index's predicate, and estimates as well (from migration 0004's statistics).
-- The limit comes from the row, read in this statement's snapshot (the row we hold, as the
-- lock read it), so the claim goes out with the lock, before the caller has seen the row. A
-- row that has more than a global limit (a rate, a hold in force at %(now)s, a partition rule),
-- none, or no row, caps the claim at 0 (GREATEST skips the NULL), and the caller claims the
-- general way.
-- name: fetch_jobs_limited
WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
UPDATE {schema}.taskward_jobs
SET state = 'running', attempt = attempt + 1, attempted_at = %(now)s,
    attempted_by = %(worker_id)s, lease_until = %(lease_until)s
WHERE (SELECT setting FROM async_commit) = 'off' AND id = ANY(ARRAY(
    SELECT id FROM {schema}.taskward_jobs
    WHERE queue = %(queue)s AND state = 'pending'
        AND NOT EXISTS (SELECT 1 FROM {schema}.taskward_paused_queues WHERE queue = %(queue)s)
    ORDER BY priority, scheduled_at, id
    LIMIT LEAST(%(limit)s, GREATEST((
        SELECT l.global_limit FROM {schema}.taskward_queue_limits AS l
        WHERE l.queue = %(queue)s AND l.rate_count IS NULL
            AND (l.held_until IS NULL OR l.held_until <= %(now)s)
            AND l.partition_kwarg IS NULL AND l.partition_arg IS NULL
    ) - (
        SELECT count(*) FROM {schema}.taskward_jobs
        WHERE queue = %(queue)s AND state BETWEEN 'running' AND 'running'
    ), 0))
    FOR UPDATE SKIP LOCKED
))
RETURNING {job_columns};

-- The claim of a queue with a rate limit, or a global limit and an ended hold (or, rarely, a
-- row left with only an ended hold): %(limit)s is already capped by the rate
-- (taskward.limits.allowance, from the row fetch_limit_lock holds); the global limit, when
-- there is one (NULL: none, and the running jobs are not counted), caps as in
-- fetch_jobs_limited. The same statement counts the starts
-- in the window of the claim's clock (%(window)s, whose starts before this claim were
-- %(used)s: 0 when the row's window is an older one), on the row this transaction holds: the
-- next claim of the queue, from any process, waits for our commit and reads them. A claim
-- that took nothing writes nothing (an older window counts as empty anyway). The row's update
-- runs though the main query does not read it: PostgreSQL runs every data-modifying CTE to
-- completion.
-- name: fetch_jobs_rated
WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS setting),
claimed AS (
    UPDATE {schema}.taskward_jobs
    SET state = 'running', attempt = attempt + 1, attempted_at = %(now)s,
        attempted_by = %(worker_id)s, lease_until = %(lease_until)s
    WHERE (SELECT setting FROM async_commit) = 'off' AND id = ANY(ARRAY(
        SELECT id FROM {schema}.taskward_jobs
        WHERE queue = %(queue)s AND state = 'pending'
            AND NOT EXISTS (SELECT 1 FROM {schema}.taskward_paused_queues WHERE queue = %(queue)s)
        ORDER BY priority, scheduled_at, id
        LIMIT CASE WHEN %(global_limit)s::integer IS NULL THEN %(limit)s
                   ELSE LEAST(%(limit)s, GREATEST(%(global_limit)s::integer - (
                       SELECT count(*) FROM {schema}.taskward_jobs
                       WHERE queue = %(queue)s AND state BETWEEN 'running' AND 'running'
                   ), 0)) END
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING {job_columns}
), counted AS (
    UPDATE {schema}.taskward_queue_limits
    SET rate_window = %(window)s::bigint,
        rate_window_used = %(used)s::integer + (SELECT count(*) FROM claimed)
    WHERE queue = %(queue)s AND %(window)s::bigint IS NOT NULL
        AND EXISTS (SELECT 1 FROM claimed)
)
SELECT * FROM claimed;

-- The row of a queue that has nothing left but a hold that ended long ago (work.HOLD_ROW_KEPT):
-- its claims go back to fetch_jobs. The caller holds the row (fetch_limit_lock), so it is as
-- read; a later hold creates a row again under lock_queue_limits.
-- name: delete_ended_hold
DELETE FROM {schema}.taskward_queue_limits
WHERE queue = %(queue)s AND global_limit IS NULL AND rate_count IS NULL
    AND partition_kwarg IS NULL AND partition_arg IS NULL;

-- One claim of a queue turned away by a limit (migration 0010): counted under %(reason)s when
-- the queue still has a pending job after the claim and is not paused. Run only when a limit
-- capped the claim: in its transaction after it, when the hold or the rate window capped it
-- (%(global_limit)s: the row's, or NULL; a claim whose jobs the global limit then capped to the
-- full limit counts under global_limit instead, as taskward.limits.allowance says); or after
-- it, when a claim under a global limit took fewer jobs than it asked (%(reason)s
-- 'global_limit', %(global_limit)s NULL: nothing else capped it). No wait for the WAL flush,
-- as the claims.
-- name: count_wait
WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
UPDATE {schema}.taskward_queue_limits AS l
SET waits_held = l.waits_held + (w.reason = 'held')::integer,
    waits_global_limit = l.waits_global_limit + (w.reason = 'global_limit')::integer,
    waits_rate_limit = l.waits_rate_limit + (w.reason = 'rate_limit')::integer
FROM (
    SELECT CASE WHEN %(reason)s::text <> 'held' AND %(global_limit)s::integer <= (
                    SELECT count(*) FROM {schema}.taskward_jobs
                    WHERE queue = %(queue)s AND state BETWEEN 'running' AND 'running'
                ) THEN 'global_limit'
                ELSE %(reason)s::text END AS reason
) AS w
WHERE (SELECT setting FROM async_commit) = 'off' AND l.queue = %(queue)s
    AND (  -- a pending job: the first of the claim index (no plan prefers a scan to find it)
        SELECT 1 FROM {schema}.taskward_jobs WHERE queue = %(queue)s AND state = 'pending'
        ORDER BY priority, scheduled_at, id
        LIMIT 1
    ) IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM {schema}.taskward_paused_queues WHERE queue = %(queue)s);

-- The claim of a partitioned queue (migration 0008's function says how): one statement, one
-- round trip, that takes the queue's row lock itself. Rows: the claimed jobs in turn order
-- (the 27 job columns in JOB_COLUMNS' order, then two NULLs), then one row of NULL job
-- columns with the time a hold or a rate window held the claim back until, and what the
-- queue's row held ('none': no rule, nothing done).
-- name: claim_by_key
SELECT *
FROM {schema}.taskward_claim_by_key(
    %(queue)s::text, %(limit)s::integer, %(worker_id)s::text, %(now)s::timestamptz,
    %(lease_until)s::timestamptz, %(now_ms)s::bigint, %(lag_ms)s::bigint, %(extra)s::integer
) AS c;

-- name: extend_leases
UPDATE {schema}.taskward_jobs SET lease_until = %(lease_until)s
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND attempted_by = %(worker_id)s
RETURNING id, cancel_requested;

-- The fenced outcome write of a whole batch (memory.py's _fence_holds and _apply): a row is
-- written only while its job is running, at that attempt, leased by this worker (and, for a
-- rescue, with its lease expired). Returns the ids written (the rest were refused) and their
-- queues: the caller wakes the limited ones (notify_limited_queues), whose slots came free.
-- Not here: notifying in this statement (a probe of the limits table per row, or the UPDATE in
-- a CTE) cost every finish 60 to 190 us of server time, for the rare limited queue.
-- name: finish_jobs
UPDATE {schema}.taskward_jobs AS j
SET state = u.state,
    attempt = j.attempt - u.refund,
    scheduled_at = COALESCE(u.scheduled_at, j.scheduled_at),
    errors = CASE WHEN u.error IS NULL THEN j.errors
                  ELSE j.errors || jsonb_build_array(u.error::jsonb) END,
    result = CASE WHEN u.state = 'completed' THEN u.result::json ELSE j.result END,
    completed_at = CASE WHEN u.state IN ('completed', 'failed') THEN u.at ELSE j.completed_at END,
    cancelled_at = CASE WHEN u.state = 'cancelled' THEN u.at ELSE j.cancelled_at END,
    discarded_at = CASE WHEN u.state = 'discarded' THEN u.at ELSE j.discarded_at END,
    lease_until = NULL,
    cancel_requested = false
FROM unnest(
    %(ids)s::bigint[], %(attempts)s::integer[], %(states)s::text[], %(refunds)s::integer[],
    %(scheduled_ats)s::timestamptz[], %(errors)s::text[], %(results)s::text[],
    %(ats)s::timestamptz[], %(expired_befores)s::timestamptz[]
) AS u (id, attempt, state, refund, scheduled_at, error, result, at, expired_before)
WHERE j.id = u.id AND j.state = 'running' AND j.attempt = u.attempt
    AND j.attempted_by = %(worker_id)s
    AND (u.expired_before IS NULL OR j.lease_until < u.expired_before)
RETURNING j.id, j.queue,
    -- An outcome waiter watches this ended job (migration 0012): work.py notifies it. While
    -- nobody waits, one probe of an empty primary key per row.
    u.state IN ('completed', 'failed', 'discarded', 'cancelled') AND EXISTS (
        SELECT 1 FROM {schema}.taskward_watches AS w WHERE w.job_id = j.id
    );

-- Key rotation: sealed values written again, each only while its job is as it was read
-- (state, attempt, number of errors); a NULL keeps the stored value. Returns the ids written.
-- name: reseal_jobs
UPDATE {schema}.taskward_jobs AS j
SET kwargs = COALESCE(r.kwargs::json, j.kwargs),
    result = COALESCE(r.result::json, j.result),
    errors = COALESCE(r.errors::jsonb, j.errors)
FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(attempts)s::integer[],
            %(counts)s::integer[], %(kwargs)s::text[], %(results)s::text[], %(errors)s::text[],
            %(envelopes)s::text[])
     AS r(id, state, attempt, errors_count, kwargs, result, errors, envelope)
WHERE j.id = r.id AND j.state = r.state AND j.attempt = r.attempt
    AND jsonb_array_length(j.errors) = r.errors_count
    AND (r.envelope IS NULL OR j.kwargs ->> 'taskward.sealed' = r.envelope)
RETURNING j.id;

-- name: set_progress
UPDATE {schema}.taskward_jobs SET progress = %(progress)s::json
WHERE id = %(id)s AND state = 'running' AND attempted_by = %(worker_id)s;

-- Which of these queues have a claimable job (pending, queue not paused)? One index probe each.
-- name: pending_queues_in
SELECT q FROM unnest(%(queues)s::text[]) AS q
WHERE EXISTS (SELECT 1 FROM {schema}.taskward_jobs WHERE queue = q AND state = 'pending')
    AND NOT EXISTS (SELECT 1 FROM {schema}.taskward_paused_queues WHERE queue = q);

-- name: pending_queues
SELECT DISTINCT queue FROM {schema}.taskward_jobs
WHERE state = 'pending'
    AND queue NOT IN (SELECT queue FROM {schema}.taskward_paused_queues);

-- name: listen
LISTEN "{channel}";

-- name: notify
SELECT pg_notify('{channel}', %(queue)s);

-- After a COPY of jobs (COPY cannot notify itself).
-- name: notify_queues
SELECT pg_notify('{channel}', queue) FROM unnest(%(queues)s::text[]) AS queue;

-- After a finish that freed slots of these queues: wake the workers of those with a global
-- limit (a finish gives no start back to a rate, and ends no hold).
-- name: notify_limited_queues
SELECT pg_notify('{channel}', u.queue) FROM unnest(%(queues)s::text[]) AS u (queue)
WHERE EXISTS (
    SELECT 1 FROM {schema}.taskward_queue_limits AS l
    WHERE l.queue = u.queue AND l.global_limit IS NOT NULL
);

-- == maintain ==================================================================================

-- Promote due jobs and wake the workers of their queues, in one statement.
-- name: promote_due
WITH promoted AS (
    UPDATE {schema}.taskward_jobs SET state = 'pending'
    WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= %(now)s
    RETURNING queue
)
SELECT queue, count(*), pg_notify('{channel}', queue) FROM promoted GROUP BY queue;

-- name: expired_leases
SELECT {job_columns}
FROM {schema}.taskward_jobs
WHERE state = 'running' AND lease_until < %(now)s
ORDER BY id
LIMIT %(limit)s;

-- Finished jobs per minute of finishing and state, from the prune index (its expression and
-- its predicate). date_trunc works in UTC: the session time zone is UTC.
-- name: finished_per_minute
SELECT date_trunc('minute', COALESCE(completed_at, cancelled_at, discarded_at, inserted_at))
           AS minute,
       state, count(*)
FROM {schema}.taskward_jobs
WHERE state IN ('completed', 'failed', 'discarded', 'cancelled')
    AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= %(since)s
GROUP BY minute, state
ORDER BY minute, state;

-- Deletes at most %(limit)s rows, so a large backlog is pruned in short transactions. The
-- ids go through an array for the reason given at fetch_jobs (no whole-table hash join).
-- The conditions are checked again on the row deleted: a failed job an operator retries
-- while this runs is pending (or finished anew) by the time its row lock is granted, and
-- the DELETE re-checks only its own conditions on the newer row, not the subquery's.
-- name: prune_state
DELETE FROM {schema}.taskward_jobs
WHERE id = ANY(ARRAY(
    SELECT id FROM {schema}.taskward_jobs
    WHERE state IN ('completed', 'failed', 'discarded', 'cancelled') AND state = %(state)s
        AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) < %(before)s
    LIMIT %(limit)s
)) AND state = %(state)s
    AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) < %(before)s;

-- == admin =====================================================================================

-- name: get_job
SELECT {job_columns} FROM {schema}.taskward_jobs WHERE id = %(id)s;

-- The jobs of some ids (get_jobs), in no order.
-- name: get_jobs
SELECT {job_columns} FROM {schema}.taskward_jobs WHERE id = ANY(%(ids)s::bigint[]);

-- name: list_jobs
SELECT {job_columns}
FROM {schema}.taskward_jobs
WHERE {where}
ORDER BY {order_by}
LIMIT %(limit)s OFFSET %(offset)s;

-- Exact up to the cap only: past it the listing estimates (count_jobs_plan).
-- name: count_jobs
SELECT count(*) FROM (
    SELECT 1 FROM {schema}.taskward_jobs WHERE {where} LIMIT %(count_cap)s
) AS capped;

-- The planner's estimate of the matching rows (a cheap EXPLAIN, no scan).
-- name: count_jobs_plan
EXPLAIN (FORMAT JSON) SELECT 1 FROM {schema}.taskward_jobs WHERE {where};

-- name: filter_states
state = ANY(%(states)s::text[]);

-- name: filter_queue
queue = %(queue)s;

-- name: filter_task
task = %(task)s;

-- The steps of one workflow (migration 0009's index of a workflow's steps, then the key).
-- name: filter_workflow
id = ANY(ARRAY(
    SELECT s.job_id FROM {schema}.taskward_steps AS s WHERE s.workflow_id = %(workflow)s
));

-- name: cancel_waiting
UPDATE {schema}.taskward_jobs
SET state = 'cancelled', cancelled_at = %(now)s,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'attempt', attempt, 'at', %(at)s::text, 'kind', 'Cancelled',
        'message', %(reason)s::text, 'traceback', NULL))
WHERE id = %(id)s AND state IN ('blocked', 'scheduled', 'pending', 'retryable')
RETURNING {job_columns};

-- name: request_cancel
UPDATE {schema}.taskward_jobs SET cancel_requested = true
WHERE id = %(id)s AND state = 'running'
RETURNING {job_columns};

-- name: retry_job
UPDATE {schema}.taskward_jobs
SET state = 'pending', scheduled_at = %(now)s, max_attempts = GREATEST(max_attempts, attempt + 1),
    completed_at = NULL, cancelled_at = NULL, discarded_at = NULL, cancel_requested = false
WHERE id = %(id)s AND state IN ('failed', 'discarded', 'cancelled')
RETURNING {job_columns};

-- A retry with an operator's edit (backends/postgres/edits.py): the job is locked and read,
-- then retried with its new fields by retry_job_edited in the same transaction. The key is
-- computed as at insert (see insert_job), from the new arguments and the new queue's rule;
-- a job whose arguments and queue stay keeps its key (rekey false).
-- name: lock_job_for_edit
SELECT {job_columns} FROM {schema}.taskward_jobs WHERE id = %(id)s FOR UPDATE;

-- name: retry_job_edited
UPDATE {schema}.taskward_jobs AS j
SET state = 'pending', scheduled_at = %(now)s, max_attempts = GREATEST(max_attempts, attempt + 1),
    completed_at = NULL, cancelled_at = NULL, discarded_at = NULL, cancel_requested = false,
    args = COALESCE(%(args)s::json, j.args), kwargs = COALESCE(%(kwargs)s::json, j.kwargs),
    queue = %(queue)s, priority = %(priority)s, meta = %(meta)s::json,
    partition_key = CASE WHEN NOT %(rekey)s THEN j.partition_key ELSE COALESCE(
        %(partition_key)s::text,
        (SELECT {schema}.taskward_key_of(
             l.partition_kwarg, l.partition_arg,
             COALESCE(%(args)s::json, j.args), COALESCE(%(kwargs)s::json, j.kwargs))
         FROM {schema}.taskward_queue_limits AS l WHERE l.queue = %(queue)s),
        j.partition_key) END
WHERE id = %(id)s AND state IN ('failed', 'discarded', 'cancelled')
RETURNING {job_columns};

-- name: delete_job
DELETE FROM {schema}.taskward_jobs WHERE id = %(id)s AND state <> 'running';

-- For this transaction only: JIT compiling a scan of a large table costs more than it saves.
-- name: jit_off
SET LOCAL jit = off;

-- Counts by queue and state without reading the whole table (a GROUP BY over every row took
-- ~200 ms with 1,000,000 jobs). Both parts walk the (queue, state, id) index, index-only
-- (it must stay: without it each step below would be a scan):
-- 1. grp: the (queue, state) pairs that exist, one index descent each ("loose index scan":
--    the first entry past the previous pair), so a million rows of one pair cost one step.
-- 2. per pair, its count: exact for the states a job passes through (few rows at a time);
--    for the finished states, which pile up, at most %(count_cap)s rows are read and the
--    caller estimates a pair that reached it (count_pair_plan). Two subqueries rather than
--    one with LIMIT NULL: a Limit node would only add work to every row of a large backlog.
-- Cost: ~0.25 us per row counted, plus ~0.03 ms per pair (1,000,000 jobs, 4 queues: ~20 ms).
-- Many small pairs are all counted exactly: 100 queues of 10,000 jobs cost as much as the
-- former scan (~250 ms).
-- name: count_by_queue_and_state
WITH RECURSIVE grp AS (
    (SELECT queue, state FROM {schema}.taskward_jobs ORDER BY queue, state LIMIT 1)
    UNION ALL
    SELECT later.queue, later.state
    FROM grp, LATERAL (
        SELECT j.queue, j.state FROM {schema}.taskward_jobs AS j
        WHERE (j.queue, j.state) > (grp.queue, grp.state)
        ORDER BY j.queue, j.state
        LIMIT 1
    ) AS later
)
SELECT queue, state,
    CASE WHEN state IN ('completed', 'failed', 'discarded', 'cancelled') THEN (
        SELECT count(*) FROM (
            SELECT 1 FROM {schema}.taskward_jobs AS j
            WHERE j.queue = grp.queue AND j.state = grp.state
            LIMIT %(count_cap)s
        ) AS capped
    ) ELSE (
        SELECT count(*) FROM {schema}.taskward_jobs AS j
        WHERE j.queue = grp.queue AND j.state = grp.state
    ) END
FROM grp;

-- The planner's estimate of one pair's rows (a cheap EXPLAIN, no scan): from the extended
-- statistics on (queue, state) of migration 0004, scaled to the table's current size.
-- name: count_pair_plan
EXPLAIN (FORMAT JSON) SELECT 1 FROM {schema}.taskward_jobs
WHERE queue = %(queue)s AND state = %(state)s;

-- name: list_paused
SELECT queue FROM {schema}.taskward_paused_queues ORDER BY queue;

-- name: pause_queue
INSERT INTO {schema}.taskward_paused_queues (queue) VALUES (%(queue)s)
ON CONFLICT (queue) DO NOTHING;

-- name: resume_queue
WITH resumed AS (
    DELETE FROM {schema}.taskward_paused_queues WHERE queue = %(queue)s RETURNING queue
)
SELECT pg_notify('{channel}', queue) FROM resumed;

-- == queue limits and holds (migrations 0006, 0007, 0008) ======================================

-- A row with a limit or a partition rule; one with only a hold is no limit
-- (Backend.queue_limits).
-- name: list_queue_limits
SELECT queue, global_limit, rate_count, rate_period_ms, partition_kwarg, partition_arg
FROM {schema}.taskward_queue_limits
WHERE global_limit IS NOT NULL OR rate_count IS NOT NULL OR partition_kwarg IS NOT NULL
    OR partition_arg IS NOT NULL
ORDER BY queue;

-- name: list_queue_flow
SELECT queue, global_limit, rate_count, rate_period_ms, partition_kwarg, partition_arg,
       rate_window, rate_window_used, held_until, waits_held, waits_global_limit,
       waits_rate_limit
FROM {schema}.taskward_queue_limits
ORDER BY queue;

-- A change of the limits of a queue that has a row: claims of the queue take turns on it, so the
-- next one reads the new limits. The hold and the rate window stay. Wakes the queue's workers
-- (a raised limit has room for them). Not when it sets or changes a partition rule (no row
-- updated): that is done under the table's lock, re-keying the waiting jobs (re_key_jobs). A
-- rule cleared here needs neither: no key is needed any more, and an insert that read the old
-- rule only stores a key that nothing reads.
-- name: update_queue_limit
WITH saved AS (
    UPDATE {schema}.taskward_queue_limits
    SET global_limit = %(global_limit)s, rate_count = %(rate_count)s,
        rate_period_ms = %(rate_period_ms)s, partition_kwarg = %(partition_kwarg)s::text,
        partition_arg = %(partition_arg)s::integer, updated_at = now()
    WHERE queue = %(queue)s
        AND (%(partition_kwarg)s::text IS NULL AND %(partition_arg)s::integer IS NULL
             OR partition_kwarg IS NOT DISTINCT FROM %(partition_kwarg)s::text
                AND partition_arg IS NOT DISTINCT FROM %(partition_arg)s::integer)
    RETURNING queue
)
SELECT pg_notify('{channel}', queue) FROM saved;

-- The first row of a queue (create_queue_limit or create_queue_hold, in one transaction after
-- this lock): a plain claim (fetch_jobs) or a dispatch that began before the row and commits
-- after it could hand out jobs that no limited claim counted (or that a hold should have kept).
-- Every one of them reads this table, so the lock waits for all that are running; those that
-- come meanwhile wait for our commit, then see the row. Claims of every queue pause for that
-- long (milliseconds): rows are created rarely (a queue that is held again and again keeps its
-- row, see migration 0007). The lock_timeout bounds the wait behind a foreign transaction
-- holding the table.
-- name: lock_queue_limits
LOCK TABLE {schema}.taskward_queue_limits IN ACCESS EXCLUSIVE MODE;

-- name: queue_limits_lock_timeout
SET LOCAL lock_timeout = '100ms';

-- name: create_queue_limit
WITH saved AS (
    INSERT INTO {schema}.taskward_queue_limits AS l (
        queue, global_limit, rate_count, rate_period_ms, partition_kwarg, partition_arg,
        updated_at
    )
    VALUES (
        %(queue)s, %(global_limit)s, %(rate_count)s, %(rate_period_ms)s,
        %(partition_kwarg)s::text, %(partition_arg)s::integer, now()
    )
    ON CONFLICT (queue) DO UPDATE
        SET global_limit = excluded.global_limit, rate_count = excluded.rate_count,
            rate_period_ms = excluded.rate_period_ms, partition_kwarg = excluded.partition_kwarg,
            partition_arg = excluded.partition_arg, updated_at = excluded.updated_at
    RETURNING l.queue
)
SELECT pg_notify('{channel}', queue) FROM saved;

-- A partition rule set or changed (after lock_queue_limits, before create_queue_limit stores
-- it, in one transaction): every waiting job of the queue gets its key by the new rule,
-- producers' keys included (the rule is the queue's). No insert is in flight (each holds the
-- table's lock until its commit, and those that come wait for ours), no claim either. A rule
-- the row already has changes nothing. Reads every waiting job of the queue: rules change
-- rarely.
-- name: re_key_jobs
UPDATE {schema}.taskward_jobs AS j
SET partition_key = {schema}.taskward_key_of(
    %(partition_kwarg)s::text, %(partition_arg)s::integer, j.args, j.kwargs
)
WHERE j.queue = %(queue)s
    AND NOT EXISTS (
        SELECT 1 FROM {schema}.taskward_queue_limits AS l
        WHERE l.queue = %(queue)s
            AND l.partition_kwarg IS NOT DISTINCT FROM %(partition_kwarg)s::text
            AND l.partition_arg IS NOT DISTINCT FROM %(partition_arg)s::integer
    );

-- No limit, first step (clear_queue_limits, then delete_empty_queue_row, one transaction): the
-- limits go, the hold and the window stay; this row lock makes a hold_queue that comes
-- meanwhile wait for our commit (then find the row gone and create it again, or kept).
-- name: clear_queue_limits
WITH cleared AS (
    UPDATE {schema}.taskward_queue_limits
    SET global_limit = NULL, rate_count = NULL, rate_period_ms = NULL, partition_kwarg = NULL,
        partition_arg = NULL, updated_at = now(),
        -- counted under the limits cleared (migration 0010): gone with them
        waits_held = 0, waits_global_limit = 0, waits_rate_limit = 0
    WHERE queue = %(queue)s
    RETURNING queue
)
SELECT pg_notify('{channel}', queue) FROM cleared;

-- A row with no limit, no rule and no hold goes: claims of its queue go back to fetch_jobs.
-- name: delete_empty_queue_row
DELETE FROM {schema}.taskward_queue_limits
WHERE queue = %(queue)s AND global_limit IS NULL AND rate_count IS NULL AND held_until IS NULL
    AND partition_kwarg IS NULL AND partition_arg IS NULL;

-- A hold of a queue that has a row: only grows (GREATEST skips a NULL). No wake-up: a longer
-- hold lets no job start. No row updated: the caller creates one (create_queue_hold).
-- name: hold_queue
UPDATE {schema}.taskward_queue_limits
SET held_until = GREATEST(held_until, %(until)s), updated_at = now()
WHERE queue = %(queue)s;

-- The first row of a queue, for a hold (after lock_queue_limits, as create_queue_limit).
-- name: create_queue_hold
INSERT INTO {schema}.taskward_queue_limits AS l (queue, held_until, updated_at)
VALUES (%(queue)s, %(until)s, now())
ON CONFLICT (queue) DO UPDATE
    SET held_until = GREATEST(l.held_until, excluded.held_until), updated_at = now();

-- A hold released (first step; then delete_empty_queue_row, one transaction): the queue's
-- workers on every host wake and claim again.
-- name: release_queue_hold
WITH released AS (
    UPDATE {schema}.taskward_queue_limits
    SET held_until = NULL, updated_at = now()
    WHERE queue = %(queue)s
    RETURNING queue
)
SELECT pg_notify('{channel}', queue) FROM released;

-- A hold of one key (migration 0008's taskward_partitions), created on demand; only grows. No
-- table lock: a key's row is no limit that other claims must see from their first statement
-- (the partitioned claim reads it under the queue's row lock).
-- name: hold_key
INSERT INTO {schema}.taskward_partitions AS p (queue, partition_key, held_until)
VALUES (%(queue)s, %(key)s, %(until)s)
ON CONFLICT (queue, partition_key) DO UPDATE
    SET held_until = GREATEST(p.held_until, excluded.held_until);

-- A key's hold released: the queue's workers on every host wake and claim again.
-- name: release_key_hold
WITH released AS (
    UPDATE {schema}.taskward_partitions
    SET held_until = NULL
    WHERE queue = %(queue)s AND partition_key = %(key)s
    RETURNING queue
)
SELECT pg_notify('{channel}', queue) FROM released;

-- One key of a queue: the queue's limits (no row: none), the key's hold and rate window (no
-- row: none), and the ids of its running jobs (the running-by-key index of 0008).
-- name: partition_flow
SELECT l.global_limit, l.rate_count, l.rate_period_ms, l.partition_kwarg, l.partition_arg,
       p.held_until, p.rate_window, COALESCE(p.rate_window_used, 0),
       ARRAY(
           SELECT j.id FROM {schema}.taskward_jobs AS j
           WHERE j.queue = %(queue)s AND j.partition_key = %(key)s
               AND j.state BETWEEN 'running' AND 'running'
           ORDER BY j.id
           LIMIT %(shown)s
       )
FROM (SELECT 1) AS one
LEFT JOIN {schema}.taskward_queue_limits AS l ON l.queue = %(queue)s
LEFT JOIN {schema}.taskward_partitions AS p
    ON p.queue = %(queue)s AND p.partition_key = %(key)s;

-- Keys whose hold ended and whose rate window closed a day ago, by the database's clock
-- (the claims judge them by the workers' clocks; a day is far beyond any lag): a missing row is
-- the same state. Without this a queue partitioned by, say, a user id would keep a row per user
-- for ever. At most %(limit)s rows per statement; the conditions are checked again on the row
-- deleted (a claim or a hold may have written it meanwhile; see prune_state).
-- name: prune_partitions
DELETE FROM {schema}.taskward_partitions AS p
WHERE (p.queue, p.partition_key) IN (
    SELECT s.queue, s.partition_key
    FROM {schema}.taskward_partitions AS s
    WHERE (s.held_until IS NULL OR s.held_until < now() - interval '1 day')
        AND (s.rate_window IS NULL OR NOT EXISTS (
            SELECT 1 FROM {schema}.taskward_queue_limits AS l
            WHERE l.queue = s.queue AND (s.rate_window + 1) * l.rate_period_ms
                >= (extract(epoch FROM now() - interval '1 day') * 1000)::bigint
        ))
    LIMIT %(limit)s
)
    AND (p.held_until IS NULL OR p.held_until < now() - interval '1 day')
    AND (p.rate_window IS NULL OR NOT EXISTS (
        SELECT 1 FROM {schema}.taskward_queue_limits AS l
        WHERE l.queue = p.queue AND (p.rate_window + 1) * l.rate_period_ms
            >= (extract(epoch FROM now() - interval '1 day') * 1000)::bigint
    ));

-- == schedules =================================================================================

-- The state columns (last_fire_at, last_job_id: record_cron_fires's; paused:
-- set_schedule_paused's) are not written here: a replace keeps them.
-- name: save_schedule
INSERT INTO {schema}.taskward_schedules (
    name, task, cron, timezone, args, kwargs, queue, priority, max_attempts, created_at,
    catch_up, max_catch_up, catch_up_within, overlap
) VALUES (
    %(name)s, %(task)s, %(cron)s, %(timezone)s, %(args)s::json, %(kwargs)s::json, %(queue)s,
    %(priority)s, %(max_attempts)s, %(created_at)s, %(catch_up)s, %(max_catch_up)s,
    %(catch_up_within)s, %(overlap)s
)
ON CONFLICT (name) DO UPDATE SET
    task = excluded.task, cron = excluded.cron, timezone = excluded.timezone,
    args = excluded.args, kwargs = excluded.kwargs, queue = excluded.queue,
    priority = excluded.priority, max_attempts = excluded.max_attempts,
    created_at = excluded.created_at, catch_up = excluded.catch_up,
    max_catch_up = excluded.max_catch_up, catch_up_within = excluded.catch_up_within,
    overlap = excluded.overlap;

-- name: delete_schedule
DELETE FROM {schema}.taskward_schedules WHERE name = %(name)s;

-- name: list_schedules
SELECT name, task, cron, timezone, args, kwargs, queue, priority, max_attempts, created_at,
       catch_up, max_catch_up, catch_up_within, overlap, last_fire_at, last_job_id, paused
FROM {schema}.taskward_schedules
ORDER BY name;

-- name: set_schedule_paused
UPDATE {schema}.taskward_schedules SET paused = %(paused)s WHERE name = %(name)s;

-- == cron fire history (migration 0011) ========================================================

-- Records of a schedule that exists (locked, so a concurrent delete waits or wins); a planned
-- time already recorded keeps its first record. The state: the last fire time never moves
-- back, the last job id changes only when one is given and this call's newest planned time is
-- not older than the stored one (a stale scheduler's late record must not move it back; SET
-- reads the row's old values).
-- name: record_cron_fires
WITH owner AS (
    SELECT name FROM {schema}.taskward_schedules WHERE name = %(name)s FOR UPDATE
), added AS (
    INSERT INTO {schema}.taskward_cron_history (
        schedule, planned_at, outcome, job_id, reason, count, recorded_at
    )
    SELECT owner.name, f.planned_at, f.outcome, f.job_id, f.reason, f.count, %(now)s
    FROM owner, unnest(
        %(planned_at)s::timestamptz[], %(outcome)s::text[], %(job_id)s::bigint[],
        %(reason)s::text[], %(count)s::integer[]
    ) AS f (planned_at, outcome, job_id, reason, count)
    ON CONFLICT (schedule, planned_at) DO NOTHING
)
UPDATE {schema}.taskward_schedules s
SET last_fire_at = greatest(s.last_fire_at, %(newest)s),
    last_job_id = CASE
        WHEN %(last_job_id)s::bigint IS NOT NULL
             AND (s.last_fire_at IS NULL OR %(newest)s::timestamptz >= s.last_fire_at)
        THEN %(last_job_id)s::bigint
        ELSE s.last_job_id
    END
FROM owner
WHERE s.name = owner.name;

-- Keep the newest %(keep)s rows of the schedule (the subquery is NULL while there are fewer).
-- name: trim_cron_history
DELETE FROM {schema}.taskward_cron_history
WHERE schedule = %(name)s AND planned_at < (
    SELECT planned_at FROM {schema}.taskward_cron_history WHERE schedule = %(name)s
    ORDER BY planned_at DESC OFFSET %(keep)s - 1 LIMIT 1
);

-- name: cron_history
SELECT planned_at, outcome, job_id, reason, count, recorded_at
FROM {schema}.taskward_cron_history
WHERE schedule = %(name)s
ORDER BY planned_at DESC
LIMIT %(limit)s;

-- == coordination ==============================================================================

-- Take the lease if it is free, expired or already ours; no row back when another holds it.
-- name: acquire_lease
INSERT INTO {schema}.taskward_leases AS l (name, holder, expires_at)
VALUES (%(name)s, %(holder)s, %(until)s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= %(now)s
RETURNING name;

-- name: record_worker
INSERT INTO {schema}.taskward_workers (id, hostname, pid, queues, started_at, heartbeat_at, running)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(queues)s::json, %(started_at)s, %(heartbeat_at)s,
        %(running)s)
ON CONFLICT (id) DO UPDATE SET
    hostname = excluded.hostname, pid = excluded.pid, queues = excluded.queues,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
    running = excluded.running;

-- name: remove_worker
DELETE FROM {schema}.taskward_workers WHERE id = %(id)s;

-- name: remove_offers
DELETE FROM {schema}.taskward_offers WHERE worker_id = %(id)s;

-- An idle worker offers one slot of a queue to producers (see insert_job_dispatch); not of a
-- limited queue (migration 0006: none is dispatched), where no row is written.
-- name: offer_slot
-- Offers of the queue left by workers that stopped heartbeating (crashed) go at the same time:
-- no producer takes them any more, and removing one never loses a job.
WITH stale AS (
    DELETE FROM {schema}.taskward_offers AS o
    WHERE o.queue = %(queue)s AND o.worker_id <> %(worker_id)s
        AND NOT EXISTS (
            SELECT 1 FROM {schema}.taskward_workers AS w
            WHERE w.id = o.worker_id
                AND w.heartbeat_at >= %(now)s::timestamptz - make_interval(secs => o.lease_seconds)
        )
)
INSERT INTO {schema}.taskward_offers (worker_id, queue, lease_seconds)
SELECT %(worker_id)s, %(queue)s, %(lease_seconds)s
WHERE NOT EXISTS (SELECT 1 FROM {schema}.taskward_queue_limits WHERE queue = %(queue)s)
ON CONFLICT (queue, worker_id) DO UPDATE SET lease_seconds = excluded.lease_seconds;

-- Takes an offer back; no row returned: a producer took it, and its job is on its way.
-- name: withdraw_slot
DELETE FROM {schema}.taskward_offers WHERE worker_id = %(worker_id)s AND queue = %(queue)s
RETURNING 1;

-- name: list_workers
SELECT id, hostname, pid, queues, started_at, heartbeat_at, running
FROM {schema}.taskward_workers
WHERE heartbeat_at >= %(alive_since)s
ORDER BY id;

-- == workflows (migration 0009; the rules are taskward.graph's) ================================

-- A workflow's first statement: its row, and an id for each of its %(n)s steps (the client
-- sorts them: the steps take them in insert order, and each step's depends_on names its
-- dependencies' ids before they are stored).
-- name: workflow_begin
WITH wf AS (
    INSERT INTO {schema}.taskward_workflows (name, inserted_at) VALUES (%(name)s, %(now)s)
    RETURNING id
)
SELECT (SELECT id FROM wf),
       ARRAY(
           SELECT nextval(pg_get_serial_sequence('{schema}.taskward_jobs', 'id'))
           FROM generate_series(1, %(n)s)
       );

-- Every step of a workflow, set-based: the jobs (ids given; the partition key as insert_jobs
-- reads it) from one JSON array of rows (flows.step_params), their rows of taskward_steps
-- from another (each waiting for all its dependencies: the client counts them, each listed
-- once), the edges from two arrays; the queues given pending steps are notified. Returns the
-- jobs that got a partition key and their keys (the client builds the rest of each job).
-- name: insert_steps
WITH job AS (
    INSERT INTO {schema}.taskward_jobs (
        id, task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
        unique_key, tags, meta, depends_on, timeout, partition_key
    )
    SELECT (r->>0)::bigint, r->>1, r->>2, (r->>3)::json, (r->>4)::json, r->>5,
           (r->>6)::smallint, (r->>7)::integer, (r->>8)::timestamptz, %(now)s, r->>9,
           ARRAY(SELECT jsonb_array_elements_text(r->10)), (r->>11)::json,
           ARRAY(SELECT jsonb_array_elements_text(r->12)::bigint),
           (r->>13)::double precision,
           COALESCE(r->>14, (
               SELECT {schema}.taskward_key_of(
                   l.partition_kwarg, l.partition_arg, (r->>3)::json, (r->>4)::json
               )
               FROM {schema}.taskward_queue_limits AS l WHERE l.queue = r->>2
           ))
    FROM jsonb_array_elements(%(rows)s::jsonb) AS r
    RETURNING id, queue, state, partition_key
), step AS (
    INSERT INTO {schema}.taskward_steps (
        job_id, workflow_id, name, quoted, on_failure, finalizer, waiting
    )
    SELECT (r->>0)::bigint, %(workflow)s, r->>1, r->>2, r->>3, (r->>4)::boolean,
           (r->>5)::integer
    FROM jsonb_array_elements(%(steps)s::jsonb) AS r
), edge AS (
    INSERT INTO {schema}.taskward_edges (parent, child)
    SELECT u.parent, u.child
    FROM unnest(%(parents)s::bigint[], %(children)s::bigint[]) AS u (parent, child)
), woke AS (
    SELECT pg_notify('{channel}', queue)
    FROM (SELECT DISTINCT queue FROM job WHERE state = 'pending') AS due
)
SELECT ARRAY(SELECT id FROM job WHERE partition_key IS NOT NULL ORDER BY id),
       ARRAY(SELECT partition_key FROM job WHERE partition_key IS NOT NULL ORDER BY id),
       (SELECT count(*) FROM woke);

-- A workflow and its steps still stored, in insert order: one row per step (the workflow's
-- name and time, the 27 job columns, the step's name, policy and finalizer flag); one row of
-- NULL step columns when none is left; no row: no such workflow.
-- name: get_workflow
SELECT w.name, w.inserted_at, st.*
FROM {schema}.taskward_workflows AS w
LEFT JOIN LATERAL (
    SELECT {job_columns}, s.name AS step_name, s.on_failure, s.finalizer
    FROM {schema}.taskward_steps AS s
    JOIN {schema}.taskward_jobs AS j ON j.id = s.job_id
    WHERE s.workflow_id = w.id
) AS st ON true
WHERE w.id = %(id)s
ORDER BY st.id;

-- After finish_jobs, in its transaction (one pipeline), when some update of the batch ends a
-- step others wait for: the rows that statement wrote (this transaction's row versions; a
-- fenced-out update wrote none) are ended for their dependents.
-- name: finish_steps_ended
SELECT {schema}.taskward_steps_ended(
    array_agg(j.id ORDER BY j.id), array_agg(j.state ORDER BY j.id),
    array_agg(u.at ORDER BY j.id), array_agg(u.at_text ORDER BY j.id)
)
FROM unnest(%(ended)s::bigint[], %(ended_ats)s::timestamptz[], %(ended_texts)s::text[])
    AS u (id, at, at_text)
JOIN {schema}.taskward_jobs AS j ON j.id = u.id
WHERE j.xmin::text::bigint = txid_current() %% 4294967296;

-- A waiting job just cancelled (cancel_waiting, same transaction): an end its dependents see.
-- name: step_cancelled
SELECT {schema}.taskward_steps_ended(
    ARRAY[%(id)s::bigint], ARRAY['cancelled'], ARRAY[%(now)s::timestamptz], ARRAY[%(at)s::text]
);

-- A job just retried (retry_job, same transaction): its state as a step (NULL: not a step).
-- name: step_retried
SELECT {schema}.taskward_step_retried(%(id)s);

-- name: delete_step_or_job
SELECT {schema}.taskward_delete_job(%(id)s, %(now)s, %(at)s);

-- The same, only for a job in one of %(states)s: FOR UPDATE locks the row and checks its
-- state again once a concurrent change commits, so the function deletes what was checked.
-- name: delete_job_in_states
SELECT {schema}.taskward_delete_job(picked.id, %(now)s, %(at)s)
FROM (
    SELECT id FROM {schema}.taskward_jobs
    WHERE id = %(id)s AND state = ANY(%(states)s::text[])
    FOR UPDATE
) AS picked;

-- name: cancel_workflow
SELECT {schema}.taskward_cancel_workflow(%(id)s, %(reason)s, %(now)s, %(at)s);

-- name: release_blocked
SELECT released, last_id
FROM {schema}.taskward_release_blocked(%(now)s, %(limit)s, %(after)s, %(budget)s);

-- == health (taskward.health.figures; backends/postgres/health.py) ============================
-- Each statement reads one partial index's rows (claim, due, lease, prune), never the history.

-- Pending jobs per queue and the earliest due: the claim index (pending rows only).
-- name: health_pending
SELECT queue, count(*), min(scheduled_at)
FROM {schema}.taskward_jobs
WHERE state = 'pending'
GROUP BY queue;

-- Scheduled and retryable jobs already due that the Stager has not moved yet: the due index
-- (empty while the Stager keeps up).
-- name: health_due_later
SELECT queue, count(*), min(scheduled_at)
FROM {schema}.taskward_jobs
WHERE state IN ('scheduled', 'retryable') AND scheduled_at <= %(now)s
GROUP BY queue;

-- Running jobs per queue and how many are stuck (HealthQuery.is_stuck): the lease index.
-- name: health_running
SELECT queue, count(*), count(*) FILTER (
    WHERE lease_until < %(grace_cutoff)s
        OR (timeout IS NOT NULL
            AND attempted_at + timeout * interval '1 second' < %(grace_cutoff)s)
        OR (timeout IS NULL AND attempted_at < %(started_cutoff)s))
FROM {schema}.taskward_jobs
WHERE state = 'running'
GROUP BY queue;

-- The stuck jobs, longest running first (the store keeps the first few of each queue).
-- name: health_stuck
SELECT queue, id
FROM {schema}.taskward_jobs
WHERE state = 'running'
    AND (lease_until < %(grace_cutoff)s
        OR (timeout IS NOT NULL
            AND attempted_at + timeout * interval '1 second' < %(grace_cutoff)s)
        OR (timeout IS NULL AND attempted_at < %(started_cutoff)s))
ORDER BY COALESCE(attempted_at, inserted_at), id;

-- Runs per queue and task that ended in the long window (and in the short one), and the failed
-- ones: the prune index's range (its expression and predicate, as finished_per_minute), plus
-- each row's queue and task. Cancelled jobs are in the range but are no run. Then the run
-- times of the completed ones (taskward.health.run_times): how many, and the p50 and p95
-- nearest ranks (percentile_disc), ranked per group from an array. Not percentile_disc over
-- the rows: an ordered-set aggregate rules out the hash aggregate, and sorting the hour's rows
-- by queue and task (on disk past work_mem) took 3 times as long as the whole statement.
-- date_part, not extract: extract returns numeric, and the casts cost a third of the ranking.
-- name: health_ended
SELECT queue, task, recent, recent_failed, runs, failed, cardinality(ran),
    (SELECT percentile_disc(ARRAY[0.5, 0.95]::float8[]) WITHIN GROUP (ORDER BY seconds)
        FROM unnest(ran) AS seconds)
FROM (
    SELECT queue, task,
        count(*) FILTER (WHERE state <> 'cancelled'
            AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at)
                >= %(recent_since)s) AS recent,
        count(*) FILTER (WHERE state IN ('failed', 'discarded')
            AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at)
                >= %(recent_since)s) AS recent_failed,
        count(*) FILTER (WHERE state <> 'cancelled') AS runs,
        count(*) FILTER (WHERE state IN ('failed', 'discarded')) AS failed,
        array_agg(date_part('epoch', completed_at - attempted_at))
            FILTER (WHERE state = 'completed' AND attempted_at IS NOT NULL) AS ran
    FROM {schema}.taskward_jobs
    WHERE state IN ('completed', 'failed', 'discarded', 'cancelled')
        AND COALESCE(completed_at, cancelled_at, discarded_at, inserted_at) >= %(since)s
    GROUP BY queue, task
) AS ended;

-- == outcome watches (migration 0012; postgres/watches.py) ====================================

-- name: listen_ends
LISTEN "{channel}_ends";

-- Watch these jobs for this watcher until now + seconds (a refresh moves `until` on).
-- name: watch_jobs
INSERT INTO {schema}.taskward_watches (job_id, watcher, until)
SELECT id, %(watcher)s, now() + make_interval(secs => %(seconds)s)
FROM unnest(%(ids)s::bigint[]) AS id
ON CONFLICT (job_id, watcher) DO UPDATE SET until = EXCLUDED.until;

-- name: unwatch_jobs
DELETE FROM {schema}.taskward_watches
WHERE watcher = %(watcher)s AND job_id = ANY(%(ids)s::bigint[]);

-- Watches of processes that died without dropping them (run by each refresh).
-- name: drop_expired_watches
DELETE FROM {schema}.taskward_watches WHERE until < now();

-- These jobs ended (finish_jobs said they are watched; a cancel, a delete): one NOTIFY per
-- watched one, its id as the payload. Nothing is sent for a job nobody watches.
-- name: notify_ends
SELECT pg_notify('{channel}_ends', w.job_id::text)
FROM (
    SELECT DISTINCT job_id FROM {schema}.taskward_watches
    WHERE job_id = ANY(%(ids)s::bigint[])
) AS w;
