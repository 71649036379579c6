-- 0010: how often a limit held jobs back (issue 21): QueueFlow.waits, by reason.
--
-- waits_held, waits_global_limit, waits_rate_limit: how many claims of the queue its hold, its
-- global limit or its rate window turned away while it had pending jobs left (a key's own hold,
-- limit or window of a partitioned queue counts under the same three). A claim counts at most
-- once per reason; a claim that took all it asked, that emptied the queue, or of a paused queue
-- counts nothing. A claim that took all it asked does no work for them; one that a limit may
-- have capped runs one statement:
-- - the claim of a queue with only a global limit (fetch_jobs_limited): when it took fewer jobs
--   than it asked, count_wait after it (the limit capped it exactly when pending jobs are left,
--   which count_wait looks for: a claim that emptied the queue writes nothing);
-- - the general limited claim (work.py's _claim_flow): count_wait in the claim's transaction,
--   in the same pipeline, when its hold or its rate window capped it (or after it, as above,
--   when it took fewer than they allowed under a global limit);
-- - the partitioned claim: taskward_claim_by_key below, on the row it holds locked.
-- They live with the queue's row: gone when it goes (limits cleared and no hold), reset to 0
-- when its limits are cleared and a hold keeps the row (clear_queue_limits). bigint: they only
-- grow. A column with a constant default is added without rewriting the table.
ALTER TABLE {schema}.taskward_queue_limits
    ADD COLUMN waits_held bigint NOT NULL DEFAULT 0,
    ADD COLUMN waits_global_limit bigint NOT NULL DEFAULT 0,
    ADD COLUMN waits_rate_limit bigint NOT NULL DEFAULT 0;

-- Migration 0008's partitioned claim, which now counts the waits: per key, the reason of
-- taskward.limits.allowance that capped it (the reference: memory.py's _fetch_by_key, its
-- "cut"); after the claim, one wait per reason when a key capped for it still has pending jobs
-- (step 5); a hold of the whole queue counts "held" when the queue has a pending job. The rest
-- is 0008's, unchanged (its comment says how the claim works).
CREATE OR REPLACE FUNCTION {schema}.taskward_claim_by_key(
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
    -- The waits (this migration): the reason that capped the key visited, whether some key
    -- capped for each reason surely has jobs left (it gave none), and the keys capped for it
    -- that gave some (looked at after the claim).
    v_reason text;
    s_held boolean := false;
    s_global boolean := false;
    s_rate boolean := false;
    c_global text[] := '{}';
    c_rate text[] := '{}';
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
    -- As every claim: no wait for the WAL flush (see fetch_jobs in queries.sql).
    PERFORM set_config('synchronous_commit', 'off', true);
    IF v_held IS NOT NULL AND p_now < v_held THEN  -- the queue's hold holds every key
        o_retry_at := v_held;
        IF (  -- a wait, if jobs wait
            SELECT 1 FROM {schema}.taskward_jobs AS j
            WHERE j.queue = p_queue AND j.state BETWEEN 'pending' AND 'pending'
                AND j.partition_key IS NOT NULL
            ORDER BY j.partition_key, j.priority, j.scheduled_at, j.id
            LIMIT 1
        ) IS NOT NULL THEN
            UPDATE {schema}.taskward_queue_limits SET waits_held = waits_held + 1
            WHERE queue = p_queue;
        END IF;
        RETURN NEXT;
        RETURN;
    END IF;
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
            v_reason := NULL;
            IF NOT v_limited THEN
                NULL;
            ELSIF k_held IS NOT NULL AND p_now < k_held THEN
                v_allow := 0;
                v_reason := 'held';
                v_retry := LEAST(v_retry, k_held);
            ELSE
                IF v_global IS NOT NULL AND v_global - v_running < v_allow THEN
                    v_allow := GREATEST(v_global - v_running, 0);
                    v_reason := 'global_limit';
                END IF;
                IF v_rate IS NOT NULL THEN
                    -- What is left of the window of p_now (another window counts as empty).
                    v_rest := v_rate - (CASE WHEN k_window = v_window THEN k_used ELSE 0 END);
                    IF k_window IS NOT NULL AND v_window < k_window
                        AND k_window <= v_lag_window
                    THEN
                        -- A newer window, counted by a claim with a later clock: wait for it.
                        v_allow := 0;
                        v_reason := 'rate_limit';
                        v_retry := LEAST(v_retry, timestamptz 'epoch'
                                         + (k_window * v_period) * interval '1 millisecond');
                    ELSIF v_rest < v_allow THEN
                        v_allow := GREATEST(v_rest, 0);
                        v_reason := 'rate_limit';
                        v_retry := LEAST(v_retry, timestamptz 'epoch'
                                         + ((v_window + 1) * v_period) * interval '1 millisecond');
                    END IF;
                END IF;
            END IF;
            IF v_reason IS NULL THEN
                NULL;
            ELSIF v_allow = 0 THEN  -- it gave nothing: its jobs wait
                s_held := s_held OR v_reason = 'held';
                s_global := s_global OR v_reason = 'global_limit';
                s_rate := s_rate OR v_reason = 'rate_limit';
            ELSIF v_reason = 'global_limit' THEN
                c_global := c_global || v_key;
            ELSE
                c_rate := c_rate || v_key;
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
    -- 5. The waits, when the claim got less than it asked: one per reason when a key capped for
    -- it has pending jobs left (a key that gave some is looked at now: one probe of the walk's
    -- index each, in its order, so that no plan prefers a scan, as the walk's). Only a claim
    -- that a key's limits capped writes them, on the row it holds.
    IF cardinality(v_ids) < p_limit
        AND (s_held OR s_global OR s_rate OR cardinality(c_global) > 0 OR cardinality(c_rate) > 0)
    THEN
        UPDATE {schema}.taskward_queue_limits
        SET waits_held = waits_held + s_held::integer,
            waits_global_limit = waits_global_limit + (s_global OR EXISTS (
                SELECT 1 FROM unnest(c_global) AS k (key) CROSS JOIN LATERAL (
                    SELECT 1 FROM {schema}.taskward_jobs AS j
                    WHERE j.queue = p_queue AND j.state BETWEEN 'pending' AND 'pending'
                        AND j.partition_key IS NOT NULL AND j.partition_key = k.key
                    ORDER BY j.priority, j.scheduled_at, j.id
                    LIMIT 1
                ) AS x
            ))::integer,
            waits_rate_limit = waits_rate_limit + (s_rate OR EXISTS (
                SELECT 1 FROM unnest(c_rate) AS k (key) CROSS JOIN LATERAL (
                    SELECT 1 FROM {schema}.taskward_jobs AS j
                    WHERE j.queue = p_queue AND j.state BETWEEN 'pending' AND 'pending'
                        AND j.partition_key IS NOT NULL AND j.partition_key = k.key
                    ORDER BY j.priority, j.scheduled_at, j.id
                    LIMIT 1
                ) AS x
            ))::integer
        WHERE queue = p_queue;
    END IF;
    o_retry_at := v_retry;
    RETURN NEXT;
END
$$;
