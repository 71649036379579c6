-- Counts by queue and state from the per-queue, per-state index sizes: a flat list of queue,
-- state, count (non-zero counts only), O(queues).
local out = {}
local seen = {}
local queues = redis.call('SMEMBERS', QUEUES)
for _, queue in ipairs(redis.call('SMEMBERS', PAUSED)) do queues[#queues + 1] = queue end
for _, queue in ipairs(queues) do
  if not seen[queue] then
    seen[queue] = true
    for _, state in ipairs(STATES) do
      local count = redis.call('ZCARD', ixkey(queue, state))
      if count > 0 then
        out[#out + 1] = queue
        out[#out + 1] = state
        out[#out + 1] = count
      end
    end
  end
end
return out
