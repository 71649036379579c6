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
