-- Hold queue ARGV[2] until ARGV[3] (us since the epoch): the later of it and the stored hold
-- wins, so two jobs that hit an upstream limit at once keep the longer wait. ARGV[3] = ''
-- releases the hold and publishes the queue, so waiters held back on every node claim now.
-- A script because a hold only grows: the compare and the write must be one step.
local queue, until_us = ARGV[2], ARGV[3]
local field = 'hold:' .. queue
local held = redis.call('HGET', FLOW, field)  -- fails first on a foreign B:flow
if until_us == '' then
  if redis.call('HDEL', FLOW, field) == 1 then redis.call('PUBLISH', WAKE, queue) end
  return 0
end
-- A stored value that is not a time (written by something else) is replaced.
if not held or not string.match(held, '^%-?%d+$') or tonumber(held) < tonumber(until_us) then
  redis.call('HSET', FLOW, field, until_us)
end
return 0
