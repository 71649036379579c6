-- 0006: queue limits (issue 21). One row per limited queue: at most global_limit of its jobs
-- run at once across every worker and host. No row: no limit.
-- A claim of a limited queue (fetch_limit_lock, then fetch_jobs_limited, in one transaction)
-- locks its row FOR UPDATE, so claims of one limited queue take turns, and each counts the
-- queue's running jobs (the (queue, state, id) index of 0001) in a statement that starts after
-- its turn came. The plain claim (fetch_jobs) and direct dispatch never hand out a job of a
-- queue that has a row (see lock_queue_limits in queries.sql for the first limit of a queue).
CREATE TABLE IF NOT EXISTS {schema}.taskward_queue_limits (
    queue text PRIMARY KEY,
    global_limit integer NOT NULL CHECK (global_limit >= 1),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Direct dispatch (0005) skips a limited queue: its job is stored pending and claimed as usual
-- (the claim counts it against the limit). The offer is checked twice: the first statement
-- reads taskward_queue_limits, so its table lock is held from there to the end of this
-- transaction (set_queue_limits, which locks the table ACCESS EXCLUSIVE, then waits for us);
-- the DELETE, a later statement, takes its snapshot after that lock was granted, so it sees
-- any limit committed before, and no limit can be committed while we hold the lock.
CREATE OR REPLACE FUNCTION {schema}.taskward_insert_dispatch(
    p_task text, p_queue text, p_args json, p_kwargs json, p_priority integer,
    p_max_attempts integer, p_scheduled_at timestamptz, p_now timestamptz,
    OUT o_id bigint, OUT o_worker text, OUT o_lease timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    v_lease double precision;
    v_row text;
BEGIN
    IF EXISTS (SELECT 1 FROM {schema}.taskward_offers AS f WHERE f.queue = p_queue)
        AND NOT EXISTS (
            SELECT 1 FROM {schema}.taskward_queue_limits AS l WHERE l.queue = p_queue
        )
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
            task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at
        ) VALUES (
            p_task, p_queue, p_args, p_kwargs, 'pending', p_priority, p_max_attempts,
            p_scheduled_at, p_now
        )
        RETURNING j.id INTO o_id;
        PERFORM pg_notify('{channel}', p_queue);
        RETURN;
    END IF;
    o_lease := p_now + make_interval(secs => v_lease);
    INSERT INTO {schema}.taskward_jobs AS j (
        task, queue, args, kwargs, state, priority, max_attempts, scheduled_at, inserted_at,
        attempt, attempted_at, attempted_by, lease_until
    ) VALUES (
        p_task, p_queue, p_args, p_kwargs, 'running', p_priority, p_max_attempts,
        p_scheduled_at, p_now, 1, p_now, o_worker, o_lease
    )
    RETURNING j.id, 'run:' || length(o_worker) || ':' || o_worker || row_to_json(j)::text
    INTO o_id, v_row;
    PERFORM pg_notify('{channel}', CASE WHEN octet_length(v_row) > 7900 THEN p_queue
                                        ELSE v_row END);
END
$$;
