-- Store queue ARGV[2]'s limits: ARGV[3] its global limit (B:limits), ARGV[4] its rate limit as
-- "count:period_ms" (B:flow); '' clears that limit. Its hold is left alone. Answers 1, and
-- publishes the queue, when a limit was raised or cleared: a worker held back by the old one
-- may claim now (lowering one wakes nobody). A script: both hashes are read (and so their types
-- checked) before either is written, and the old values are compared with the new ones.
local queue, global, rate = ARGV[2], ARGV[3], ARGV[4]
local rate_field = 'rate:' .. queue
local old_global = redis.call('HGET', LIMITS, queue)
local old_rate = redis.call('HGET', FLOW, rate_field)
if global == '' then
  redis.call('HDEL', LIMITS, queue)
else
  redis.call('HSET', LIMITS, queue, global)
end
if rate == '' then
  -- The window's count goes with the rate: a queue without one keeps no window.
  redis.call('HDEL', FLOW, rate_field, 'window:' .. queue)
else
  redis.call('HSET', FLOW, rate_field, rate)
end
local raised = false
if old_global then
  raised = global == '' or not string.match(old_global, '^%d+$')
    or tonumber(global) > tonumber(old_global)
end
if old_rate and not raised then
  -- A larger count or another period (a new window index: an empty window) allows more.
  local old_count, old_period = string.match(old_rate, '^(%d+):(%d+)$')
  local count, period = string.match(rate, '^(%d+):(%d+)$')
  raised = rate == '' or old_count == nil or tonumber(count) > tonumber(old_count)
    or tonumber(period) ~= tonumber(old_period)
end
if raised then redis.call('PUBLISH', WAKE, queue) end
return raised and 1 or 0
