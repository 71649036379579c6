-- Pause (ARGV[3] = '1') or resume (ARGV[3] = '0') cron schedule ARGV[2], in one step.
-- Keys: B:schedules (the schedule must exist: a deleted one is not paused again, so a
-- schedule saved later under its name starts unpaused) and B:cronpaused (set of the names of
-- paused schedules; save_schedule does not touch it, so a pause survives a re-save).
-- Returns 1, or 0 when there is no such schedule.
local name, paused = ARGV[2], ARGV[3]
if redis.call('HEXISTS', B .. ':schedules', name) == 0 then return 0 end
if paused == '1' then
  redis.call('SADD', B .. ':cronpaused', name)
else
  redis.call('SREM', B .. ':cronpaused', name)
end
return 1
