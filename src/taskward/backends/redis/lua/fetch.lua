-- Claim up to ARGV[3] pending jobs of queue ARGV[2] for worker ARGV[4] at ARGV[5], leased
-- until ARGV[6]: priority, then scheduled time, then id. Answers {retry_at, job, job...}:
-- retry_at is '' or, when a hold or a full rate window held the claim back, the time (us) it
-- ends, so the caller wakes its waiters then. A paused queue yields nothing.
-- The limits are applied here, in the claim's own script, so racing claims never exceed
-- them; the arithmetic is taskward.limits.allowance.
local queue, limit, worker, now, lease = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
if redis.call('SISMEMBER', PAUSED, queue) == 1 then return {''} end
limit = math.max(limit, 0)
local global = redis.call('HGET', LIMITS, queue)
-- Rate limit, hold and rate window (B:flow) in one read: nils for a queue with none of them.
local rate, held, stored_window = unpack(redis.call(
  'HMGET', FLOW, 'rate:' .. queue, 'hold:' .. queue, 'window:' .. queue))
if held and tonumber(now) < flow_number(held, queue, 'hold', '^%-?%d+$') then
  return {held}
end
-- A global limit (B:limits) leaves the limit minus the queue's running jobs.
if global then
  local cap = flow_number(global, queue, 'limit', '^%d+$')
  limit = math.min(limit, math.max(cap - redis.call('ZCARD', ixkey(queue, 'running')), 0))
  if limit <= 0 then return {''} end
end
-- A rate limit leaves what the current window has not used; a stored window other than the
-- current one counts as empty (fixed windows from the epoch: index = floor(ms / period)).
local retry_at = ''
local window, used
if rate then
  local count, period = parse_rate(rate, queue)
  -- Exact: now is below 2^53 us, and so are the products below.
  window = math.floor(math.floor(tonumber(now) / 1000) / period)
  used = 0
  if stored_window then
    local w, u = parse_window(stored_window, queue)
    if w == window then used = u end
  end
  local left = math.max(count - used, 0)
  if left < limit then
    limit = left
    retry_at = string.format('%d', (window + 1) * period * 1000)
  end
end
local out = {retry_at}
if limit <= 0 then return out end
local popped = redis.call('ZPOPMIN', pkey(queue), limit)
for i = 1, #popped, 2 do
  local id = string.format('%d', tonumber(string.sub(popped[i], 17)))
  local key = jkey(id)
  local state, task = unpack(redis.call('HMGET', key, 'state', 'task'))
  if state == 'pending' then
    redis.call('ZREM', ixkey(queue, 'pending'), id)
    redis.call('ZREM', txkey(task, 'pending'), id)
    redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'running', 'attempted_at', now, 'attempted_by', worker,
               'lease_until', lease)
    redis.call('ZADD', ixkey(queue, 'running'), id, id)
    redis.call('ZADD', txkey(task, 'running'), id, id)
    redis.call('ZADD', RUNNING, lease, id)
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
-- Count the starts in the window (B:flow's type was checked by the read above).
if window and #out > 1 then
  redis.call('HSET', FLOW, 'window:' .. queue, string.format('%d:%d', window, used + #out - 1))
end
return out
