-- 0013: pausing a recurring schedule (issue 26).
--
-- paused is state like last_fire_at: only set_schedule_paused writes it, so the app saving its
-- schedules again at start (save_schedule) keeps an operator's pause. The default is the
-- behaviour before this migration (every schedule fires); a constant default adds the column
-- without rewriting the table.
ALTER TABLE {schema}.taskward_schedules
    ADD COLUMN paused boolean NOT NULL DEFAULT false;
