-- Record fires of cron schedule ARGV[2] (see Backend.record_cron_fires), in one step.
-- Keys: B:schedules (the schedule must exist: nothing is written for a deleted one),
-- B:cronhist:<name> (sorted set: score = planned time in us, member = the record's JSON; a
-- planned time already there keeps its first record; trimmed to the newest ARGV[3]) and
-- B:cronstate (hash: name -> "<last fire us>|<last job id or ''>"; the last fire time never
-- moves back, the job id changes only when one is given and ARGV[4] is not older than the
-- stored fire time: a stale scheduler's late record must not move it back). ARGV[4]: the
-- newest planned time of this call (us), ARGV[5]: the job id of its newest record with a job,
-- or ''. Then pairs from ARGV[6]: planned time (us), record JSON. Returns 1, or 0 when the
-- schedule is gone.
local name, keep, newest, job = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if redis.call('HEXISTS', B .. ':schedules', name) == 0 then return 0 end
local hist = B .. ':cronhist:' .. name
for i = 6, #ARGV, 2 do
  local at = ARGV[i]
  if redis.call('ZCOUNT', hist, at, at) == 0 then redis.call('ZADD', hist, at, ARGV[i + 1]) end
end
redis.call('ZREMRANGEBYRANK', hist, 0, -(keep + 1))
local state = B .. ':cronstate'
local stored = redis.call('HGET', state, name)
local last, last_job = newest, job
if stored then
  local sep = string.find(stored, '|', 1, true)
  local old, old_job = string.sub(stored, 1, sep - 1), string.sub(stored, sep + 1)
  local stale = tonumber(old) > tonumber(newest)
  if stale then last = old end
  if job == '' or stale then last_job = old_job end
end
redis.call('HSET', state, name, last .. '|' .. last_job)
return 1
