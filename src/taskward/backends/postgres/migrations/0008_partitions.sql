-- 0008: partitioned queues (issue 21). A queue's row of taskward_queue_limits may carry a rule
-- (partition_kwarg: a keyword argument, or partition_arg: an args position); each job of the
-- queue then has a key (taskward_jobs.partition_key), its limits apply to each key on its
-- own, and keys take turns at every claim (taskward_claim_by_key below).
--
-- The key is read from the stored arguments by the insert statement itself
-- (taskward_key_of, on the rule of the queue's row, unless the producer gave a key), or, for a
-- bulk COPY, computed by the client from the rules it read in the same transaction. Exact under
-- concurrency: every insert reads taskward_queue_limits, so its table lock is held to the end
-- of the insert's transaction, and setting or changing a rule takes that table ACCESS EXCLUSIVE
-- (lock_queue_limits) before it re-keys the queue's waiting jobs (re_key_jobs): it waits for
-- every insert in flight, which then has committed and is re-keyed, and every insert after it
-- waits for its commit and reads the new rule.
--
-- "C" collation for keys: keys are visited in the order of their code points (as every
-- taskward store visits them), and compare faster.
ALTER TABLE {schema}.taskward_jobs ADD COLUMN partition_key text COLLATE "C";

-- The partitioned claim's walk: the keys that have pending jobs, in key order, each key's jobs
-- in claim order. Partial: only keyed pending rows, so the jobs of queues that are not
-- partitioned (no key) cost it nothing but the predicate's check.
-- Its state is a range ("state BETWEEN 'pending' AND 'pending'"), and so is every condition of
-- the statements that use it: a range proves no "state = 'pending'" predicate, so those
-- statements cannot use 0001's claim index instead. Before the table's first ANALYZE the
-- planner estimated one row for either, and chose that index (plus a filter of the key, or a
-- sort): every probe of the walk then read every pending job of the queue.
CREATE INDEX taskward_jobs_claim_by_key ON {schema}.taskward_jobs
    (queue, partition_key, priority, scheduled_at, id)
    WHERE partition_key IS NOT NULL AND state BETWEEN 'pending' AND 'pending';
-- A key's running jobs: counted for a global limit per key by the claim, listed by
-- partition_flow. Without it each key's count would read every running job of the queue. A
-- range for the same reason (here: not 0001's lease index).
CREATE INDEX taskward_jobs_running_by_key ON {schema}.taskward_jobs (queue, partition_key, id)
    WHERE partition_key IS NOT NULL AND state BETWEEN 'running' AND 'running';

-- The rule, and the claim's cursor: the last key the previous claim of the queue visited.
ALTER TABLE {schema}.taskward_queue_limits
    ADD COLUMN partition_kwarg text,
    ADD COLUMN partition_arg integer CHECK (partition_arg BETWEEN 0 AND 255),
    ADD COLUMN partition_cursor text COLLATE "C",
    ADD CONSTRAINT taskward_queue_limits_one_rule
        CHECK (partition_kwarg IS NULL OR partition_arg IS NULL);

-- Each key's own hold and rate window, created on demand: by a hold of the key, and by the
-- first claim of the key in a queue with a rate limit. The claim reads a key's row under the
-- queue's row lock and writes its window in the same transaction. Rows whose hold and window
-- are long over are deleted by prune (prune_partitions).
CREATE TABLE {schema}.taskward_partitions (
    queue text NOT NULL,
    partition_key text COLLATE "C" NOT NULL,
    held_until timestamptz,
    rate_window bigint,
    rate_window_used integer NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, partition_key)
);

-- JSON text as Python's json.dumps writes it by default (ensure_ascii): every character past
-- '~' as a \u escape, astral ones as a surrogate pair. The stored arguments keep non-ASCII
-- text as it is; a key that is a JSON object or array must still equal taskward.limits.key_text.
CREATE FUNCTION {schema}.taskward_json_ascii(p_text text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    v_out text := '';
    v_char text;
    v_code integer;
BEGIN
    IF p_text !~ '[^ -~]' THEN
        RETURN p_text;
    END IF;
    FOREACH v_char IN ARRAY string_to_array(p_text, NULL) LOOP
        v_code := ascii(v_char);
        IF v_code < 127 THEN
            v_out := v_out || v_char;
        ELSIF v_code < 65536 THEN
            v_out := v_out || '\u' || lpad(to_hex(v_code), 4, '0');
        ELSE
            v_code := v_code - 65536;
            v_out := v_out || '\u' || to_hex(55296 + (v_code >> 10))
                           || '\u' || to_hex(56320 + (v_code & 1023));
        END IF;
    END LOOP;
    RETURN v_out;
END
$$;

-- A key as taskward.limits.key_text makes it: a string as it is, null or missing as '', any
-- other JSON as its compact text (the stored text is compact JSON already). SQL functions
-- made of one expression: the planner inlines them into the statements that call them.
CREATE FUNCTION {schema}.taskward_key_text(p_value json) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE json_typeof(p_value)
        WHEN 'string' THEN p_value #>> '{}'
        WHEN 'number' THEN p_value::text
        WHEN 'boolean' THEN p_value::text
        WHEN 'object' THEN {schema}.taskward_json_ascii(p_value::text)
        WHEN 'array' THEN {schema}.taskward_json_ascii(p_value::text)
        ELSE ''
    END
$$;

-- The key a rule reads from a job's arguments (taskward.limits.PartitionBy.key_of); NULL
-- without a rule.
CREATE FUNCTION {schema}.taskward_key_of(
    p_kwarg text, p_arg integer, p_args json, p_kwargs json
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_kwarg IS NOT NULL THEN {schema}.taskward_key_text(p_kwargs -> p_kwarg)
        WHEN p_arg IS NOT NULL THEN {schema}.taskward_key_text(p_args -> p_arg)
    END
$$;

-- 0006's dispatch function with the job's key: the producer's (p_partition_key), else the one
-- the rule of its queue reads (a partitioned queue has a row, so its jobs are never
-- dispatched: they are inserted pending, keyed). Returns the stored key. The limits table is
-- read by the first statement, so its lock is held from there to the end of the transaction
-- (see the head of this file).
CREATE FUNCTION {schema}.taskward_insert_dispatch(
    p_task text, p_queue text, p_args json, p_kwargs json, p_priority integer,
    p_max_attempts integer, p_scheduled_at timestamptz, p_now timestamptz, p_partition_key text,
    OUT o_id bigint, OUT o_worker text, OUT o_lease timestamptz, OUT o_key text
) LANGUAGE plpgsql AS $$
DECLARE
    v_lease double precision;
    v_row text;
    v_kwarg text;
    v_arg integer;
    v_limited boolean;
BEGIN
    SELECT true, l.partition_kwarg, l.partition_arg INTO v_limited, v_kwarg, v_arg
    FROM {schema}.taskward_queue_limits AS l WHERE l.queue = p_queue;
    o_key := COALESCE(p_partition_key,
                      {schema}.taskward_key_of(v_kwarg, v_arg, p_args, p_kwargs));
    IF v_limited IS NULL
        AND EXISTS (SELECT 1 FROM {schema}.taskward_offers AS f WHERE f.queue = p_queue)
    THEN
        DELETE FROM {schema}.taskward_offers AS o
        WHERE (o.queue, o.worker_id) = (
            SELECT f.queue, f.worker_id
            FROM {schema}.taskward_offers AS f
            JOIN {schema}.taskward_workers AS w ON w.id = f.worker_id
            WHERE f.queue = p_queue
                AND w.heartbeat_at >= p_now - make_interval(secs => f.lease_seconds)
                AND NOT EXISTS (
                    SELECT 1 FROM {schema}.taskward_paused_queues AS p WHERE p.queue = p_queue
                )
                AND NOT EXISTS (
                    SELECT 1 FROM {schema}.taskward_queue_limits AS l WHERE l.queue = p_queue
                )
            LIMIT 1
            FOR UPDATE OF f SKIP LOCKED
        )
        RETURNING o.worker_id, o.lease_seconds INTO o_worker, v_lease;
    END IF;
    IF o_worker IS NULL THEN
        INSERT INTO {schema}.taskward_jobs AS j (
            task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
            partition_key
        ) VALUES (
            p_task, p_queue, p_args, p_kwargs, 'pending', p_priority, p_max_attempts,
            p_scheduled_at, p_now, o_key
        )
        RETURNING j.id INTO o_id;
        PERFORM pg_notify('{channel}', p_queue);
        RETURN;
    END IF;
    o_lease := p_now + make_interval(secs => v_lease);
    INSERT INTO {schema}.taskward_jobs AS j (
        task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
        attempt, attempted_at, attempted_by, lease_until, partition_key
    ) VALUES (
        p_task, p_queue, p_args, p_kwargs, 'running', p_priority, p_max_attempts,
        p_scheduled_at, p_now, 1, p_now, o_worker, o_lease, o_key
    )
    RETURNING j.id, 'run:' || length(o_worker) || ':' || o_worker || row_to_json(j)::text
    INTO o_id, v_row;
    PERFORM pg_notify('{channel}', CASE WHEN octet_length(v_row) > 7900 THEN p_queue
                                        ELSE v_row END);
END
$$;

-- 0006's signature, for a producer still running the code before this migration: the same,
-- keyed by the rule.
CREATE OR REPLACE FUNCTION {schema}.taskward_insert_dispatch(
    p_task text, p_queue text, p_args json, p_kwargs json, p_priority integer,
    p_max_attempts integer, p_scheduled_at timestamptz, p_now timestamptz,
    OUT o_id bigint, OUT o_worker text, OUT o_lease timestamptz
) LANGUAGE sql AS $$
    SELECT d.o_id, d.o_worker, d.o_lease
    FROM {schema}.taskward_insert_dispatch(
        p_task, p_queue, p_args, p_kwargs, p_priority, p_max_attempts, p_scheduled_at, p_now,
        NULL::text
    ) AS d
$$;

-- The claim of a partitioned queue, in one statement (taskward.backends.base.Backend.fetch
-- says what it does; memory.py's _fetch_by_key is the reference):
-- 1. Lock the queue's row: claims of the queue take turns, and every statement below takes
--    its snapshot after the turn came (a function's statements each take their own), so it
--    sees the claims before it, and none can commit until this one does.
-- 2. Walk the keys that have pending jobs, in key order, after the row's cursor, then from the
--    first key up to the cursor: a recursive statement whose every step is one probe of
--    taskward_jobs_claim_by_key ("the first pending job of a key greater than the last"),
--    which also gives that key's first job in claim order, and, when needed, the key's running
--    jobs (a global limit) and its row of taskward_partitions. The loop fetches it a row at a
--    time (a cursor), so no step past the end of the walk is taken. Per key, the arithmetic of
--    taskward.limits.allowance with the queue's limits and the key's own hold, rate window
--    and running jobs (p_lag_ms: its CLOCK_LAG_TOLERATED). Stop after p_limit keys that give,
--    or p_limit + p_extra keys visited (MAX_KEYS_PER_CLAIM_EXTRA).
-- 3. taskward.limits.take_turns: every key that gives gives its first job (turn 0). If fewer
--    keys than p_limit gave, the rest comes in rounds, one statement each: each key still open
--    (it may give more) is asked for its next ceil(left / open) jobs (a keyset probe after its
--    last), all open keys being at the same turn; a round that brings enough keeps the first
--    in (turn, key) order, else all it brought, and the keys that gave less than asked are
--    closed. So the jobs read are about those claimed, whatever the backlog of each key.
-- 4. Claim them, count each key's starts in its rate window, move the cursor to the last key
--    visited. No FOR UPDATE SKIP LOCKED pass first (the plain claim needs one: its claims run
--    side by side): claims of the queue take turns, so only an operator's write of one job
--    (a cancel, a delete) can hold a row; the UPDATE waits for it, then re-checks that the job
--    is pending.
-- Returns the claimed jobs in turn order, then one row without a job: when the claim may
-- succeed again if time held it back (a hold, a full or newer window; NULL otherwise), and what
-- the row held: 'partitioned', 'partitioned, global limit', or 'none' (no row, or no rule:
-- nothing was done, and the caller claims the other way).
CREATE FUNCTION {schema}.taskward_claim_by_key(
    p_queue text, p_limit integer, p_worker text, p_now timestamptz,
    p_lease_until timestamptz, p_now_ms bigint, p_lag_ms bigint, p_extra integer
) RETURNS TABLE (
    -- taskward_jobs' columns, as they are (flat: a composite column cost a deforming of the
    -- row per column read), then the two of the row without a job.
    o_id bigint, o_task text, o_queue text, o_args json, o_kwargs json, o_state text,
    o_priority smallint, o_attempt integer, o_max_attempts integer, o_scheduled_at timestamptz,
    o_inserted_at timestamptz, o_attempted_at timestamptz, o_completed_at timestamptz,
    o_cancelled_at timestamptz, o_discarded_at timestamptz, o_attempted_by text,
    o_lease_until timestamptz, o_errors jsonb, o_result json, o_progress json,
    o_unique_key text, o_tags text[], o_meta json, o_depends_on bigint[],
    o_timeout double precision, o_cancel_requested boolean, o_partition_key text,
    o_retry_at timestamptz, o_found text
)
-- Generic plans, made once per session: a custom plan of the walk costs more to make than to
-- run, and each of these statements uses its indexes whatever the values. No sort where an
-- index gives the order: before the table's first ANALYZE the planner, estimating one row a
-- probe, found an index of the queue's jobs plus a sort as cheap as the walk's index, and
-- each probe read every pending job of the queue. No JIT: the cost of a disabled sort (where
-- no index can give the order) is past its threshold, and compiling took 200 ms.
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_sort = off SET jit = off AS $$
DECLARE
    v_global integer;
    v_rate integer;
    v_period bigint;
    v_held timestamptz;
    v_kwarg text;
    v_arg integer;
    v_cursor text COLLATE "C";
    v_window bigint;
    v_lag_window bigint;
    v_states boolean;
    v_limited boolean;
    v_retry timestamptz;
    -- The walk: where a pass starts (a key >= v_from), where the last one stops (v_bound).
    v_from text COLLATE "C";
    v_bound text COLLATE "C";
    v_wrapped boolean;
    v_done boolean := false;
    v_visited integer := 0;
    v_last text COLLATE "C";
    v_key text COLLATE "C";
    v_priority smallint;
    v_at timestamptz;
    v_id bigint;
    v_allow integer;
    v_running bigint;
    v_rest integer;
    k_held timestamptz;
    k_window bigint;
    k_used integer;
    -- The keys that give, in visiting order: each one's cap, jobs taken so far and last job.
    g_keys text[] := '{}';
    g_caps integer[] := '{}';
    g_taken integer[] := '{}';
    g_priority smallint[] := '{}';
    g_at timestamptz[] := '{}';
    g_id bigint[] := '{}';
    v_ids bigint[];
    v_left integer;
    v_open integer[];
    v_before integer[];
    v_still integer[];
    v_share integer;
    v_index integer;
    v_walk refcursor;
BEGIN
    SELECT l.global_limit, l.rate_count, l.rate_period_ms, l.held_until, l.partition_kwarg,
           l.partition_arg, l.partition_cursor
    INTO v_global, v_rate, v_period, v_held, v_kwarg, v_arg, v_cursor
    FROM {schema}.taskward_queue_limits AS l WHERE l.queue = p_queue
    FOR UPDATE;
    IF NOT FOUND OR (v_kwarg IS NULL AND v_arg IS NULL) THEN
        o_found := 'none';
        RETURN NEXT;
        RETURN;
    END IF;
    o_found := CASE WHEN v_global IS NULL THEN 'partitioned' ELSE 'partitioned, global limit' END;
    IF EXISTS (SELECT 1 FROM {schema}.taskward_paused_queues AS p WHERE p.queue = p_queue) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_held IS NOT NULL AND p_now < v_held THEN  -- the queue's hold holds every key
        o_retry_at := v_held;
        RETURN NEXT;
        RETURN;
    END IF;
    -- As every claim: no wait for the WAL flush (see fetch_jobs in queries.sql).
    PERFORM set_config('synchronous_commit', 'off', true);
    IF v_rate IS NOT NULL THEN
        v_window := floor(p_now_ms::numeric / v_period);
        v_lag_window := floor((p_now_ms + p_lag_ms)::numeric / v_period);
    END IF;
    v_states := EXISTS (
        SELECT 1 FROM {schema}.taskward_partitions AS p WHERE p.queue = p_queue
    );
    v_limited := v_global IS NOT NULL OR v_rate IS NOT NULL OR v_states;

    -- 2. The walk: after the cursor, then (wrapped) from the first key to the cursor. "After
    -- c" is ">= c || chr(1)": in "C" order nothing lies between (text holds no NUL).
    v_wrapped := v_cursor IS NULL;  -- no cursor: from the first key, nothing to wrap to
    v_from := CASE WHEN v_cursor IS NULL THEN '' ELSE v_cursor || chr(1) END;
    LOOP
        v_bound := CASE WHEN v_wrapped THEN v_cursor END;
        OPEN v_walk NO SCROLL FOR
            WITH RECURSIVE walk (k, priority, scheduled_at, id, n) AS (
                (SELECT j.partition_key, j.priority, j.scheduled_at, j.id, 1
                 FROM {schema}.taskward_jobs AS j
                 WHERE j.queue = p_queue AND j.state BETWEEN 'pending' AND 'pending'
                     AND j.partition_key IS NOT NULL AND j.partition_key >= v_from
                 ORDER BY j.partition_key, j.priority, j.scheduled_at, j.id
                 LIMIT 1)
                UNION ALL
                SELECT x.partition_key, x.priority, x.scheduled_at, x.id, w.n + 1
                FROM walk AS w
                CROSS JOIN LATERAL (
                    SELECT j.partition_key, j.priority, j.scheduled_at, j.id
                    FROM {schema}.taskward_jobs AS j
                    WHERE j.queue = p_queue AND j.state BETWEEN 'pending' AND 'pending'
                        AND j.partition_key IS NOT NULL AND j.partition_key > w.k
                    ORDER BY j.partition_key, j.priority, j.scheduled_at, j.id
                    LIMIT 1
                ) AS x
                WHERE w.n < p_limit + p_extra - v_visited
                    AND (v_bound IS NULL OR w.k < v_bound)
            )
            -- No join (the planner may hash one, losing the walk's order): the running jobs
            -- and the key's row are subqueries of each step; OFFSET 0 keeps the row's one
            -- lookup from being copied into each of its three fields.
            SELECT v.k, v.priority, v.scheduled_at, v.id, v.running,
                   (v.state).held_until, (v.state).rate_window, (v.state).rate_window_used
            FROM (
                SELECT w.k, w.priority, w.scheduled_at, w.id,
                       CASE WHEN v_global IS NOT NULL THEN (
                           SELECT count(*) FROM {schema}.taskward_jobs AS r
                           WHERE r.queue = p_queue AND r.partition_key = w.k
                               AND r.state BETWEEN 'running' AND 'running'
                       ) END AS running,
                       CASE WHEN v_states THEN (
                           SELECT p FROM {schema}.taskward_partitions AS p
                           WHERE p.queue = p_queue AND p.partition_key = w.k
                       ) END AS state
                FROM walk AS w
                OFFSET 0
            ) AS v;
        LOOP
            FETCH v_walk INTO v_key, v_priority, v_at, v_id, v_running, k_held, k_window, k_used;
            EXIT WHEN NOT FOUND;
            IF v_wrapped AND v_cursor IS NOT NULL AND v_key > v_cursor THEN
                v_done := true;  -- all the way round
                EXIT;
            END IF;
            v_visited := v_visited + 1;
            v_last := v_key;
            -- taskward.limits.allowance for this key (nothing to do without per-key limits).
            v_allow := p_limit;
            IF NOT v_limited THEN
                NULL;
            ELSIF k_held IS NOT NULL AND p_now < k_held THEN
                v_allow := 0;
                v_retry := LEAST(v_retry, k_held);
            ELSE
                IF v_global IS NOT NULL THEN
                    v_allow := LEAST(v_allow, GREATEST(v_global - v_running, 0));
                END IF;
                IF v_rate IS NOT NULL THEN
                    -- What is left of the window of p_now (another window counts as empty).
                    v_rest := v_rate - (CASE WHEN k_window = v_window THEN k_used ELSE 0 END);
                    IF k_window IS NOT NULL AND v_window < k_window
                        AND k_window <= v_lag_window
                    THEN
                        -- A newer window, counted by a claim with a later clock: wait for it.
                        v_allow := 0;
                        v_retry := LEAST(v_retry, timestamptz 'epoch'
                                         + (k_window * v_period) * interval '1 millisecond');
                    ELSIF v_rest < v_allow THEN
                        v_allow := GREATEST(v_rest, 0);
                        v_retry := LEAST(v_retry, timestamptz 'epoch'
                                         + ((v_window + 1) * v_period) * interval '1 millisecond');
                    END IF;
                END IF;
            END IF;
            IF v_allow > 0 THEN
                g_keys := g_keys || v_key;
                g_caps := g_caps || v_allow;
                g_taken := g_taken || 1;
                g_priority := g_priority || v_priority;
                g_at := g_at || v_at;
                g_id := g_id || v_id;
            END IF;
            IF cardinality(g_keys) >= p_limit OR v_visited >= p_limit + p_extra THEN
                v_done := true;
                EXIT;
            END IF;
        END LOOP;
        CLOSE v_walk;
        EXIT WHEN v_done OR v_wrapped;  -- else the keys after the cursor ran out: wrap
        v_wrapped := true;
        v_from := '';
    END LOOP;
    IF v_last IS NOT NULL THEN
        UPDATE {schema}.taskward_queue_limits SET partition_cursor = v_last
        WHERE queue = p_queue;
    END IF;

    -- 3. Turns: the first job of every key that gives, then rounds while jobs are wanted.
    v_ids := g_id;
    v_left := p_limit - cardinality(g_keys);
    v_open := ARRAY(
        SELECT i FROM generate_subscripts(g_caps, 1) AS i WHERE g_caps[i] > 1 ORDER BY i
    );
    WHILE v_left > 0 AND cardinality(v_open) > 0 LOOP
        v_share := ceil(v_left::numeric / cardinality(v_open));
        v_before := g_taken;
        FOR v_index, v_priority, v_at, v_id IN
            SELECT r.i, x.priority, x.scheduled_at, x.id
            FROM unnest(v_open) AS r (i)
            CROSS JOIN LATERAL (
                SELECT j.priority, j.scheduled_at, j.id,
                       row_number() OVER (ORDER BY j.priority, j.scheduled_at, j.id) AS turn
                FROM (
                    SELECT f.priority, f.scheduled_at, f.id
                    FROM {schema}.taskward_jobs AS f
                    WHERE f.queue = p_queue AND f.state BETWEEN 'pending' AND 'pending'
                        AND f.partition_key IS NOT NULL AND f.partition_key = g_keys[r.i]
                        AND (f.priority, f.scheduled_at, f.id)
                            > (g_priority[r.i], g_at[r.i], g_id[r.i])
                    ORDER BY f.priority, f.scheduled_at, f.id
                    LIMIT LEAST(v_share, g_caps[r.i] - g_taken[r.i])
                ) AS j
            ) AS x
            ORDER BY x.turn, r.i
        LOOP
            IF v_left > 0 THEN
                v_ids := v_ids || v_id;
                v_left := v_left - 1;
            END IF;
            -- Rows come in turn order: a key's last row is its last job.
            g_taken[v_index] := g_taken[v_index] + 1;
            g_priority[v_index] := v_priority;
            g_at[v_index] := v_at;
            g_id[v_index] := v_id;
        END LOOP;
        v_still := '{}';
        FOREACH v_index IN ARRAY v_open LOOP
            IF g_taken[v_index] - v_before[v_index] = v_share
                AND g_taken[v_index] < g_caps[v_index]
            THEN
                v_still := v_still || v_index;
            END IF;
        END LOOP;
        v_open := v_still;
    END LOOP;

    -- 4. The claim, the keys' windows, and the row without a job.
    IF cardinality(v_ids) > 0 THEN
        RETURN QUERY
        WITH claimed AS (
            UPDATE {schema}.taskward_jobs AS j
            SET state = 'running', attempt = j.attempt + 1, attempted_at = p_now,
                attempted_by = p_worker, lease_until = p_lease_until
            -- A range: by the primary key, not a whole scan of a pending jobs' index.
            WHERE j.id = ANY(v_ids) AND j.state BETWEEN 'pending' AND 'pending'
            RETURNING j.id, j.task, j.queue, j.args, j.kwargs, j.state, j.priority, j.attempt,
                j.max_attempts, j.scheduled_at, j.inserted_at, j.attempted_at, j.completed_at,
                j.cancelled_at, j.discarded_at, j.attempted_by, j.lease_until, j.errors,
                j.result, j.progress, j.unique_key, j.tags, j.meta, j.depends_on, j.timeout,
                j.cancel_requested, j.partition_key
        ), counted AS (
            INSERT INTO {schema}.taskward_partitions AS p (
                queue, partition_key, rate_window, rate_window_used
            )
            SELECT p_queue, c.partition_key, v_window, count(*)
            FROM claimed AS c
            WHERE v_window IS NOT NULL
            GROUP BY c.partition_key
            ON CONFLICT (queue, partition_key) DO UPDATE
            SET rate_window = excluded.rate_window,
                rate_window_used = CASE WHEN p.rate_window = excluded.rate_window
                                        THEN p.rate_window_used + excluded.rate_window_used
                                        ELSE excluded.rate_window_used END
        )
        SELECT c.*, NULL::timestamptz, NULL::text
        FROM claimed AS c
        ORDER BY array_position(v_ids, c.id);  -- a join on the ids was a nested loop: n * n
    END IF;
    o_retry_at := v_retry;
    RETURN NEXT;
END
$$;
