-- Jobs finished at or after ARGV[2], counted per minute (since the epoch) and final state:
-- a flat list of minute, state, count. One ZCOUNT per minute that has jobs, found by jumping
-- to the next finish time: O(minutes with jobs x log n), never a read of every job.
local MINUTE = 60000000
local out = {}
for state in pairs(FINISHED) do
  local key = donekey(state)
  local from = ARGV[2]
  while true do
    local next = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #next == 0 then break end
    local minute = math.floor(tonumber(next[2]) / MINUTE)
    local stop = string.format('%d', (minute + 1) * MINUTE)
    local count = redis.call('ZCOUNT', key, from, '(' .. stop)
    out[#out + 1] = string.format('%d', minute)
    out[#out + 1] = state
    out[#out + 1] = count
    from = stop
  end
end
return out
