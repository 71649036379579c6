"""The worker runtime: fetch loop, executor, heartbeats, cron and maintenance services."""
