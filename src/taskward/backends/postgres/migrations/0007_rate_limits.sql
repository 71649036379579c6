-- 0007: rate limits and holds (issue 21), in the row of 0006's taskward_queue_limits.
-- A row now carries any of: a global limit (global_limit, now nullable), a rate limit
-- (rate_count starts per window of rate_period_ms milliseconds, windows aligned to the epoch:
-- taskward.limits.Rate), and a hold (held_until: no job of the queue starts before it). The
-- rate's state is the index of the window of its last claim (rate_window) and the starts
-- counted in it (rate_window_used); the limited claim reads them under its row lock and
-- writes them back in its own transaction, so racing claims of every process are exact.
--
-- Any row sends the queue's claims down the limited path (fetch_limit_lock, then the claim,
-- one transaction), and keeps direct dispatch away from it: 0005's function, as replaced in
-- 0006, skips a queue that has a row, whatever the row carries, so a held or rate-limited
-- queue's jobs are stored pending and claimed (and counted) as usual. A row is created only
-- under the lock of lock_queue_limits (the first limit or the first hold of a queue), for the
-- reason given there.
--
-- When a row goes: clearing the limits (set_queue_limits with no limit) deletes it unless it
-- carries a hold (ended or not: the stores compare holds with the workers' clocks, not the
-- database's), and only nulls the limits of a held queue. Releasing a hold (hold_queue with
-- None) deletes it unless it carries a limit. A row left with nothing but a hold that ended
-- long ago (work.HOLD_ROW_KEPT by the clock of the claim) is deleted by the next claim of its
-- queue, which goes back to the plain claim: a queue that was held once does not pay for the
-- limited path for ever, and one held again and again keeps its row (no table lock each time).
-- The window survives a change of the limits (a changed rate applies to the current window).
ALTER TABLE {schema}.taskward_queue_limits
    ALTER COLUMN global_limit DROP NOT NULL,
    ADD COLUMN rate_count integer CHECK (rate_count >= 1),
    ADD COLUMN rate_period_ms integer CHECK (rate_period_ms >= 1),
    ADD COLUMN rate_window bigint,
    ADD COLUMN rate_window_used integer NOT NULL DEFAULT 0,
    ADD COLUMN held_until timestamptz,
    ADD CONSTRAINT taskward_queue_limits_rate_whole
        CHECK ((rate_count IS NULL) = (rate_period_ms IS NULL));
