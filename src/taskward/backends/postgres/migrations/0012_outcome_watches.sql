-- 0012: outcome watches (TaskManager.wait_for, issue 25, item 1).
--
-- A process that waits for jobs' outcomes stores the ids it watches here (one row per job and
-- watching backend instance, `watcher` a random token), refreshed while it waits (`until`: a
-- watch of a process that died without dropping it expires), and LISTENs on the schema's
-- channel suffixed `_ends`. The statements that end jobs (finish_jobs, cancel, delete, a
-- workflow's cancel) notify that channel only for ended jobs found here: while nobody waits,
-- an ack pays one probe of this empty table's primary key per row and never a NOTIFY (a
-- notifying commit takes a cluster-wide lock while it flushes).
-- UNLOGGED: watches live as long as their waiters; a crash empties the table, and the waiters'
-- next refresh (at most 20 s later) writes them again (their fallback reads cover the gap).
CREATE UNLOGGED TABLE IF NOT EXISTS {schema}.taskward_watches (
    job_id bigint NOT NULL,
    watcher text NOT NULL,
    until timestamptz NOT NULL,
    PRIMARY KEY (job_id, watcher)
);
