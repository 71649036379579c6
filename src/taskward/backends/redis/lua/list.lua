-- One page of jobs. ARGV[2] sort field, ARGV[3] '1' for descending, ARGV[4] offset,
-- ARGV[5] page size, ARGV[6] task ('' for any), ARGV[7] number of queues, the queues,
-- then the number of states and the states (0 queues or states: all of them).
-- Answers {total, {job hash, ...}}.
local field, desc = ARGV[2], ARGV[3] == '1'
local offset, size, task = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local nq = tonumber(ARGV[7])
local queues = {}
for i = 1, nq do queues[i] = ARGV[7 + i] end
local ns = tonumber(ARGV[8 + nq])
local states = {}
for i = 1, ns do states[i] = ARGV[8 + nq + i] end
if nq == 0 then queues = redis.call('SMEMBERS', QUEUES) end
if ns == 0 then states = STATES end
-- The candidate sets: per queue and state, or per task and state when only the task is
-- filtered (a queue and a task filter: the task's sets, each job's queue checked below).
local sets = {}
local by_task = task ~= '' and nq <= 1
if by_task then
  for _, state in ipairs(states) do sets[#sets + 1] = txkey(task, state) end
else
  for _, queue in ipairs(queues) do
    for _, state in ipairs(states) do sets[#sets + 1] = ixkey(queue, state) end
  end
end
local want_queue = by_task and nq == 1 and queues[1] or nil

local function before(x, y)  -- numeric id order in the requested direction
  if desc then return x > y end
  return x < y
end

local page = {}
local total = 0
if field == 'id' and want_queue == nil and (task == '' or by_task) then
  -- The indexes are ordered by id: the first offset + size of each set, merged.
  local need = offset + size
  local ids = {}
  for _, set in ipairs(sets) do
    local n = redis.call('ZCARD', set)
    if n > 0 then
      total = total + n
      local part
      if #sets == 1 then
        if desc then part = redis.call('ZREVRANGE', set, offset, need - 1)
        else part = redis.call('ZRANGE', set, offset, need - 1) end
      elseif desc then part = redis.call('ZREVRANGE', set, 0, need - 1)
      else part = redis.call('ZRANGE', set, 0, need - 1) end
      for _, id in ipairs(part) do ids[#ids + 1] = tonumber(id) end
    end
  end
  table.sort(ids, before)
  local first = 1
  if #sets > 1 then first = offset + 1 end
  for i = first, math.min(#ids, first + size - 1) do page[#page + 1] = ids[i] end
else
  -- Any other order, or a task filter: every candidate is read (O(matches); the dashboard's
  -- default listing takes the branch above).
  local rows = {}
  for _, set in ipairs(sets) do
    for _, id in ipairs(redis.call('ZRANGE', set, 0, -1)) do
      local t, q, v = unpack(redis.call('HMGET', jkey(id), 'task', 'queue', field))
      if (task == '' or t == task) and (want_queue == nil or q == want_queue) then
        rows[#rows + 1] = {tonumber(id), v and tonumber(v)}
      end
    end
  end
  total = #rows
  table.sort(rows, function(x, y)
    local a, b = x[2], y[2]
    if a == nil or b == nil then
      if a == nil and b == nil then return before(x[1], y[1]) end
      return b == nil  -- a value sorts before none, in either direction
    end
    if a ~= b then return before(a, b) end
    return before(x[1], y[1])
  end)
  for i = offset + 1, math.min(#rows, offset + size) do page[#page + 1] = rows[i][1] end
end
local out = {}
for i, id in ipairs(page) do out[i] = redis.call('HGETALL', jkey(string.format('%d', id))) end
return {total, out}
