-- 0005: direct dispatch. A worker idle on a queue offers one slot of it here; an insert of one
-- plain job that finds an offer takes it (deleting the row: one offer, at most one job) and
-- stores its job already running for that worker, whose LISTEN connection receives the whole
-- job in the NOTIFY and starts it: an idle worker's start skips the claim round trip.
-- UNLOGGED: offers are as short-lived as the workers' connections; a crash empties the table,
-- and the next idle wait offers again.
CREATE UNLOGGED TABLE IF NOT EXISTS {schema}.taskward_offers (
    worker_id text NOT NULL,
    queue text NOT NULL,
    lease_seconds double precision NOT NULL,
    PRIMARY KEY (queue, worker_id)
);

-- The insert of one plain, due job (see insert_job_dispatch in queries.sql). A function, not
-- one statement: PL/pgSQL keeps its plans, and the common case (no offer standing) is an
-- index probe, then the same INSERT and NOTIFY as insert_job_basic; as one statement with
-- the offer in a CTE, every enqueue cost 0.13 ms more.
-- The offer taken is one from a worker that heartbeated within its lease (a dead worker's
-- offer is never taken), SKIP LOCKED (producers never queue on one offer), not for a paused
-- queue. A dispatched job's NOTIFY is "run:", the worker id's length, ":", the worker id and
-- the row as JSON (other processes skip it unread); a row too large for a NOTIFY (8,000
-- bytes) wakes the queue instead, and its worker adopts the job after its wait.
CREATE OR REPLACE FUNCTION {schema}.taskward_insert_dispatch(
    p_task text, p_queue text, p_args json, p_kwargs json, p_priority integer,
    p_max_attempts integer, p_scheduled_at timestamptz, p_now timestamptz,
    OUT o_id bigint, OUT o_worker text, OUT o_lease timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    v_lease double precision;
    v_row text;
BEGIN
    IF EXISTS (SELECT 1 FROM {schema}.taskward_offers AS f WHERE f.queue = p_queue) THEN
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
