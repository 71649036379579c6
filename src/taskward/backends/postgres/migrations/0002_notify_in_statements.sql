-- 0002: the insert statements notify their queues themselves (queries.sql, insert_job), so the
-- statement-level trigger goes: with its transition table it cost about 0.2 ms per insert.
-- Rows inserted by other means than taskward no longer wake workers; polling still finds them.
DROP TRIGGER IF EXISTS taskward_jobs_notify_inserted ON {schema}.taskward_jobs;
DROP FUNCTION IF EXISTS {schema}.taskward_notify_inserted();
