-- One page of jobs. ARGV[2] sort field, ARGV[3] '1' for descending, ARGV[4] offset,
-- ARGV[5] page size, ARGV[6] '=' and the task ('' for any task), ARGV[7] number of queues, the queues,
-- then the number of states and the states (0 queues or states: all of them), then the most
-- candidates an order other than by id may read, then a workflow's id ('' for any: only its
-- steps, each read as for an order other than by id). Answers {total, {job hash, ...}}, or
-- {-1, candidates} when there are more candidates than that.
local field, desc = ARGV[2], ARGV[3] == '1'
local offset, size = tonumber(ARGV[4]), tonumber(ARGV[5])
local has_task, task = ARGV[6] ~= '', string.sub(ARGV[6], 2)
local nq = tonumber(ARGV[7])
local queues = {}
for i = 1, nq do queues[i] = ARGV[7 + i] end
local ns = tonumber(ARGV[8 + nq])
local states = {}
for i = 1, ns do states[i] = ARGV[8 + nq + i] end
local wf = ARGV[10 + nq + ns] or ''
local want_queues, want_states = nil, nil  -- a workflow's steps: what each must match
if wf ~= '' then
  if nq > 0 then
    want_queues = {}
    for _, queue in ipairs(queues) do want_queues[queue] = true end
  end
  if ns > 0 then
    want_states = {}
    for _, state in ipairs(states) do want_states[state] = true end
  end
end
if nq == 0 then queues = redis.call('SMEMBERS', QUEUES) end
if ns == 0 then states = STATES end
-- The candidate sets: per queue and state, or per task and state when only the task is
-- filtered (a queue and a task filter: the task's sets, each job's queue checked below).
local sets = {}
local by_task = has_task and nq <= 1 and wf == ''
if wf ~= '' then
  sets[1] = wstepskey(wf)
elseif by_task then
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

local LATER_ONLY = {scheduled = true, retryable = true}
local later_only = ns > 0
for _, state in ipairs(states) do later_only = later_only and LATER_ONLY[state] == true end

local page = {}
local total = 0
if wf == '' and field == 'scheduled_at' and not desc and offset == 0 and not has_task and later_only
    and nq == 1 then
  -- The next due jobs of a queue (what a drain asks for): B:later:<queue> is ordered by due
  -- time already; a job's state is read only when one of the two states is asked for.
  local wanted_state = {}
  for _, state in ipairs(states) do wanted_state[state] = true end
  local both = wanted_state.scheduled and wanted_state.retryable
  for _, set in ipairs(sets) do total = total + redis.call('ZCARD', set) end
  local found = {}
  local last = nil
  local rank = 0
  while total > 0 do
    local chunk = redis.call('ZRANGE', laterkey(queues[1]), rank, rank + 499, 'WITHSCORES')
    if #chunk == 0 then break end
    local done = false
    for i = 1, #chunk, 2 do
      local score = tonumber(chunk[i + 1])
      if #found >= size and score ~= last then done = true break end
      if both or wanted_state[redis.call('HGET', jkey(chunk[i]), 'state')] then
        found[#found + 1] = {tonumber(chunk[i]), score}
        last = score
      end
    end
    if done then break end
    rank = rank + 500
  end
  table.sort(found, function(x, y)
    if x[2] ~= y[2] then return x[2] < y[2] end
    return x[1] < y[1]
  end)
  for i = 1, math.min(#found, size) do page[#page + 1] = found[i][1] end
elseif wf == '' and field == 'id' and want_queue == nil and (not has_task or by_task) then
  -- The indexes are ordered by id: the first offset + size of each set, merged.
  local need = offset + size
  local ids = {}
  for _, set in ipairs(sets) do
    local n = redis.call('ZCARD', set)
    if n > 0 then
      total = total + n
      local part
      local first, stop = '0', string.format('%d', need - 1)
      if #sets == 1 then first = ARGV[4] end
      if desc then part = redis.call('ZREVRANGE', set, first, stop)
      else part = redis.call('ZRANGE', set, first, stop) end
      for _, id in ipairs(part) do ids[#ids + 1] = tonumber(id) end
    end
  end
  table.sort(ids, before)
  local first = 1
  if #sets > 1 then first = offset + 1 end
  for i = first, math.min(#ids, first + size - 1) do page[#page + 1] = ids[i] end
else
  -- Any other order, or a queue and a task filter: every candidate is read, so the number
  -- of candidates is bounded (a script holds the whole server while it runs).
  local candidates = 0
  for _, set in ipairs(sets) do candidates = candidates + redis.call('ZCARD', set) end
  if candidates > tonumber(ARGV[9 + nq + ns]) then return {-1, candidates} end
  local rows = {}
  for _, set in ipairs(sets) do
    for _, id in ipairs(redis.call('ZRANGE', set, 0, -1)) do
      local t, q, v, st = unpack(redis.call('HMGET', jkey(id), 'task', 'queue', field, 'state'))
      if t and (not has_task or t == task) and (want_queue == nil or q == want_queue)
          and (want_queues == nil or want_queues[q]) and (want_states == nil or want_states[st])
      then
        local value = nil  -- HMGET answers false for a missing field
        if v then value = tonumber(v) end
        rows[#rows + 1] = {tonumber(id), value}
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
