-- 0008: pausing a recurring schedule (issue 26).
--
-- paused (0 or 1) is state like last_fire_at: only set_schedule_paused writes it, so the app
-- saving its schedules again at start (save_schedule) keeps an operator's pause. The default
-- is the behaviour before this migration: every schedule fires.
ALTER TABLE taskward_schedules ADD COLUMN paused INTEGER NOT NULL DEFAULT 0
    CHECK (paused IN (0, 1));
