-- 0007: cron catch-up, overlap and fire history (issue 25, item 2).
--
-- The schedule's policies are columns of its row (replaced by save_schedule); its state,
-- last_fire_at (the newest fire time a scheduler handled, REAL epoch seconds) and last_job_id
-- (the job it inserted last), is written only by record_cron_fires, so re-saving a schedule
-- keeps them. The defaults are the behaviour before this migration: missed fire times are
-- skipped, and a fire time inserts its job whatever the previous run is doing.
ALTER TABLE taskward_schedules ADD COLUMN catch_up TEXT NOT NULL DEFAULT 'skip'
    CHECK (catch_up IN ('skip', 'latest', 'all'));
ALTER TABLE taskward_schedules ADD COLUMN max_catch_up INTEGER NOT NULL DEFAULT 10
    CHECK (max_catch_up >= 1);
ALTER TABLE taskward_schedules ADD COLUMN catch_up_within REAL CHECK (catch_up_within > 0);
ALTER TABLE taskward_schedules ADD COLUMN overlap TEXT NOT NULL DEFAULT 'allow'
    CHECK (overlap IN ('allow', 'skip', 'cancel_running'));
ALTER TABLE taskward_schedules ADD COLUMN last_fire_at REAL;
ALTER TABLE taskward_schedules ADD COLUMN last_job_id INTEGER;

-- One row per planned time a scheduler handled (a summary row stands for `count` skipped
-- ones); the primary key makes a second scheduler's record of the same slot a no-op. Trimmed
-- to the newest rows per schedule on every write; gone with the schedule (the trigger: the
-- store does not turn on foreign keys).
CREATE TABLE taskward_cron_history (
    schedule TEXT NOT NULL,
    planned_at REAL NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('inserted', 'caught_up', 'skipped')),
    job_id INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1),
    recorded_at REAL NOT NULL,
    PRIMARY KEY (schedule, planned_at)
) WITHOUT ROWID;

CREATE TRIGGER taskward_cron_history_gone AFTER DELETE ON taskward_schedules
BEGIN
    DELETE FROM taskward_cron_history WHERE schedule = old.name;
END;
