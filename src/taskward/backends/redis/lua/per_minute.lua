-- Jobs finished at or after ARGV[2], counted per minute (since the epoch) and final state:
-- a flat list of minute, state, count.
local out = {}
for state in pairs(FINISHED) do
  local rows = redis.call('ZRANGEBYSCORE', donekey(state), ARGV[2], '+inf', 'WITHSCORES')
  local counts = {}
  for i = 2, #rows, 2 do
    local minute = math.floor(tonumber(rows[i]) / 60000000)
    counts[minute] = (counts[minute] or 0) + 1
  end
  for minute, count in pairs(counts) do
    out[#out + 1] = string.format('%d', minute)
    out[#out + 1] = state
    out[#out + 1] = count
  end
end
return out
