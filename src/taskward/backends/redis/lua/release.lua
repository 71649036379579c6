-- The safety net: recount up to ARGV[3] blocked steps (by id) from their dependencies' states
-- (a deleted one counts as ended) and release at ARGV[2] those nothing holds back. Never
-- cancels. Answers how many were released.
local now, limit = ARGV[2], tonumber(ARGV[3])
local ids = {}
for _, queue in ipairs(redis.call('SMEMBERS', QUEUES)) do
  for _, id in ipairs(redis.call('ZRANGE', ixkey(queue, 'blocked'), 0, limit - 1)) do
    ids[#ids + 1] = tonumber(id)
  end
end
table.sort(ids)
local woken = {}
local released = 0
for i = 1, math.min(#ids, limit) do
  local id = string.format('%d', ids[i])
  local h = load_fields(id, STEP_FIELDS)
  if h and h.wf_id and h.state == 'blocked' then
    local waiting = waiting_for(h.depends_on, h.wf_on_failure)
    if waiting == 0 then
      release(id, h, now, woken)
      released = released + 1
    else
      redis.call('HSET', jkey(id), 'wf_waiting', string.format('%d', waiting))
    end
  end
end
publish(woken)
return released
