-- 0006: how often a limit held jobs back (issue 21): QueueFlow.waits, by reason.
--
-- waits_held, waits_global_limit, waits_rate_limit: how many claims of the queue the queue's
-- hold, its global limit or its rate window turned away while it had pending jobs left (a key's
-- own hold, limit or window of a partitioned queue counts under the same three). A claim counts
-- at most once per reason; a claim that took all it asked, that emptied the queue, or of a
-- paused queue counts nothing. Only a claim that a limit capped writes them: one UPDATE of this
-- row, in the claim's own BEGIN IMMEDIATE transaction, whose WHERE probes for a pending job
-- (count_wait, count_key_waits). They live with the row: gone when it goes (limits cleared and
-- no hold, migration 0003), kept while a hold or a limit keeps it.
ALTER TABLE taskward_queue_limits
    ADD COLUMN waits_held INTEGER NOT NULL DEFAULT 0 CHECK (waits_held >= 0);
ALTER TABLE taskward_queue_limits
    ADD COLUMN waits_global_limit INTEGER NOT NULL DEFAULT 0 CHECK (waits_global_limit >= 0);
ALTER TABLE taskward_queue_limits
    ADD COLUMN waits_rate_limit INTEGER NOT NULL DEFAULT 0 CHECK (waits_rate_limit >= 0);
