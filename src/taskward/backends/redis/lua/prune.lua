-- Delete up to ARGV[2] finished jobs per state ARGV[3], ARGV[5]… that finished before the
-- cutoff that follows it (ARGV[4], ARGV[6]…). Answers {deleted, 1 if a batch was full}.
local batch = tonumber(ARGV[2])
local deleted, full = 0, 0
for i = 3, #ARGV, 2 do
  local state, cutoff = ARGV[i], ARGV[i + 1]
  if FINISHED[state] then
    local ids = redis.call('ZRANGEBYSCORE', donekey(state), '-inf', '(' .. cutoff,
                           'LIMIT', 0, batch)
    if #ids == batch then full = 1 end
    for _, id in ipairs(ids) do
      local h = load(id)
      if h then forget(id, h) else redis.call('ZREM', donekey(state), id) end
      deleted = deleted + 1
    end
  end
end
return {deleted, full}
