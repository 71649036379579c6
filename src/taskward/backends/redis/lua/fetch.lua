-- Claim up to ARGV[3] pending jobs of queue ARGV[2] for worker ARGV[4] at ARGV[5], leased
-- until ARGV[6]: priority, then scheduled time, then id. A paused queue yields nothing.
local queue, limit, worker, now, lease = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
if redis.call('SISMEMBER', PAUSED, queue) == 1 then return {} end
-- A queue with a global limit (B:limits) yields at most the limit minus its running jobs,
-- counted here, in the claim's own script: racing claims never exceed it.
local global = redis.call('HGET', LIMITS, queue)
if global then
  local cap = tonumber(global)
  if cap == nil or cap ~= math.floor(cap) or cap < 0 then
    error('the limit of queue ' .. queue .. ' in ' .. LIMITS .. ' is not a whole number: ' .. global)
  end
  limit = math.min(limit, math.max(cap - redis.call('ZCARD', ixkey(queue, 'running')), 0))
  if limit <= 0 then return {} end
end
local popped = redis.call('ZPOPMIN', pkey(queue), limit)
local out = {}
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
return out
