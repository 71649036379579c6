-- 0011: cron catch-up, overlap and fire history (issue 25, item 2).
--
-- The schedule's policies are columns of its row (replaced by save_schedule); its state,
-- last_fire_at (the newest fire time a scheduler handled) and last_job_id (the job it inserted
-- last), is written only by record_cron_fires, so re-saving a schedule keeps them. The
-- defaults are the behaviour before this migration: missed fire times are skipped, and a fire
-- time inserts its job whatever the previous run is doing. Columns with constant defaults are
-- added without rewriting the table.
ALTER TABLE {schema}.taskward_schedules
    ADD COLUMN catch_up text NOT NULL DEFAULT 'skip'
        CHECK (catch_up IN ('skip', 'latest', 'all')),
    ADD COLUMN max_catch_up integer NOT NULL DEFAULT 10 CHECK (max_catch_up >= 1),
    ADD COLUMN catch_up_within double precision CHECK (catch_up_within > 0),
    ADD COLUMN overlap text NOT NULL DEFAULT 'allow'
        CHECK (overlap IN ('allow', 'skip', 'cancel_running')),
    ADD COLUMN last_fire_at timestamptz,
    ADD COLUMN last_job_id bigint;

-- One row per planned time a scheduler handled (a summary row stands for `count` skipped
-- ones); the primary key makes a second scheduler's record of the same slot a no-op. Trimmed
-- to the newest rows per schedule on every write (the primary key's index serves the trim and
-- the newest-first read); gone with the schedule.
CREATE TABLE {schema}.taskward_cron_history (
    schedule text NOT NULL
        REFERENCES {schema}.taskward_schedules (name) ON DELETE CASCADE,
    planned_at timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('inserted', 'caught_up', 'skipped')),
    job_id bigint,
    reason text NOT NULL DEFAULT '',
    count integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (schedule, planned_at)
);
