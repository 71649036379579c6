-- 0004: extended statistics on (queue, state), for the planner's estimates of a queue's jobs
-- in one state: the statistics estimate a large finished group from them (postgres.py,
-- stats), and listings filtered by queue and state estimate their totals better. Without
-- them the planner multiplies the two columns' frequencies, as if every queue had the same
-- share of failed jobs. Computed by ANALYZE (autovacuum) from its sample only: no cost on a
-- job write, unlike an index. Until the next ANALYZE the planner goes on without them.
CREATE STATISTICS IF NOT EXISTS {schema}.taskward_jobs_queue_state_mcv (mcv)
    ON queue, state FROM {schema}.taskward_jobs;
