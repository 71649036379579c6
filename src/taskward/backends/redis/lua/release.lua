-- The safety net: recount the blocked steps after job ARGV[4] (by id, at most ARGV[3] of them)
-- from their dependencies' states (a deleted one counts as ended) and release at ARGV[2] those
-- nothing holds back. Stops early once ARGV[5] dependencies were looked up (past the first
-- step), so that one script never makes more HGETs than that. Never cancels. Answers
-- {released, the last id examined or 0 when the walk reached its end}.
local now, limit, after, budget = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
-- limit + 1 per queue: more than limit in all tells that the walk goes on after this batch.
local ids = {}
for _, queue in ipairs(redis.call('SMEMBERS', QUEUES)) do
  local found = redis.call('ZRANGEBYSCORE', ixkey(queue, 'blocked'), '(' .. after, '+inf',
                           'LIMIT', 0, limit + 1)
  for _, id in ipairs(found) do
    ids[#ids + 1] = tonumber(id)
  end
end
table.sort(ids)
local woken = {}
local released = 0
local lookups = 0
local last = math.min(#ids, limit)
local cursor = 0
if #ids > limit then cursor = ids[limit] end
for i = 1, last do
  local id = string.format('%d', ids[i])
  local h = load_fields(id, STEP_FIELDS)
  if h and h.wf_id and h.state == 'blocked' then
    local _, deps = string.gsub(h.depends_on or '', '%d+', '')
    lookups = lookups + deps
    local waiting = waiting_for(h.depends_on, h.wf_on_failure)
    if waiting == 0 then
      release(id, h, now, woken)
      released = released + 1
    else
      redis.call('HSET', jkey(id), 'wf_waiting', string.format('%d', waiting))
    end
  end
  if lookups >= budget and i < last then
    cursor = ids[i]
    break
  end
end
publish(woken)
return {released, cursor}
