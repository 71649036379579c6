-- Claim up to ARGV[3] pending jobs of queue ARGV[2] for worker ARGV[4] at ARGV[5], leased
-- until ARGV[6]: priority, then scheduled time, then id. ARGV[7]: how many keys a partitioned
-- claim may visit beyond ARGV[3] (taskward.limits.MAX_KEYS_PER_CLAIM_EXTRA); ARGV[8]:
-- taskward.limits.CLOCK_LAG_TOLERATED in ms. Answers {retry_at, job, job...}: retry_at is ''
-- or, when a hold or a full rate window held the claim back, the time (us) it ends, so the
-- caller wakes its waiters then. A paused queue yields nothing.
-- The queue's limits and hold are applied here, in the claim's own script, so racing claims
-- never exceed them; the arithmetic is taskward.limits.allowance (`allow` in common.lua).
-- A claim a limit capped while the queue keeps pending jobs after it counts once per reason
-- in B:waits (note_wait), before any job is claimed; a claim no limit capped does nothing more.
local queue, limit, worker, now, lease = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local extra, lag_ms = tonumber(ARGV[7]), tonumber(ARGV[8])
if redis.call('SISMEMBER', PAUSED, queue) == 1 then return {''} end
limit = math.max(limit, 0)

-- Claim the job of one popped pending member ("%016d%016d": scheduled time, id): running,
-- leased to the worker. Answers its hash, or nil for a stale member (never while every move
-- goes through index()).
local function claim(member)
  local id = string.format('%d', tonumber(string.sub(member, 17)))
  local key = jkey(id)
  local state, task, pk = unpack(redis.call('HMGET', key, 'state', 'task', 'partition_key'))
  if state ~= 'pending' then return nil end
  redis.call('ZREM', ixkey(queue, 'pending'), id)
  redis.call('ZREM', txkey(task, 'pending'), id)
  redis.call('HINCRBY', key, 'attempt', 1)
  redis.call('HSET', key, 'state', 'running', 'attempted_at', now, 'attempted_by', worker,
             'lease_until', lease)
  redis.call('ZADD', ixkey(queue, 'running'), id, id)
  redis.call('ZADD', txkey(task, 'running'), id, id)
  redis.call('ZADD', RUNNING, lease, id)
  if pk then redis.call('ZADD', krkey(queue, pk), id, id) end
  return redis.call('HGETALL', key)
end

-- Pop up to `count` members of a pending set in claim order and claim their jobs onto `out`.
local function claim_from(set, count, out)
  if count <= 0 then return end
  local popped = redis.call('ZPOPMIN', set, count)
  for i = 1, #popped, 2 do
    local job = claim(popped[i])
    if job then out[#out + 1] = job end
  end
end

local stored = redis.call('HGET', LIMITS, queue)  -- nil for a queue without limits or hold
if not stored then  -- the common case: nothing more to read
  local out = {''}
  claim_from(pkey(queue), limit, out)
  return out
end
local flow = parse_flow(stored)
if flow == nil then
  error('the limits of queue ' .. queue .. ' in ' .. LIMITS .. ' are not '
        .. 'global|count:period_ms|held_until|window:used[|rule]: ' .. stored)
end
-- A hold of the queue holds every key of a partitioned one too.
if flow.held and tonumber(now) < tonumber(flow.held) then
  if redis.call('EXISTS', flow.rule and keyskey(queue) or pkey(queue)) == 1 then
    note_wait(queue, 'held')  -- jobs wait for the hold to end
  end
  return {flow.held}
end

if not flow.rule then
  -- A global limit leaves the limit minus the queue's running jobs; a rate limit what the
  -- current window has not used.
  local running = 0
  if flow.global then running = redis.call('ZCARD', ixkey(queue, 'running')) end
  local count, retry_at, window, used, reason = allow(flow, flow, limit, running, now, lag_ms)
  -- Capped, and jobs are left after the claim pops `count` (every member is a pending job).
  if reason and redis.call('ZCARD', pkey(queue)) > count then note_wait(queue, reason) end
  local out = {retry_at}
  claim_from(pkey(queue), count, out)
  -- Count the starts in the window (B:limits's type was checked by the read above).
  if window and #out > 1 then
    flow.window, flow.used = window, used + #out - 1
    redis.call('HSET', LIMITS, queue, flow_text(flow))
  end
  return out
end

-- == A partitioned queue: keys take turns (the last paragraph of Backend.fetch's docstring).
-- Visit the keys with pending jobs in key order after the cursor, wrapping once; stop after
-- `limit` keys that can give a job or `limit + extra` keys visited. Each visit costs an
-- O(log n) probe of the queue's keys (in batches) and of the key's own state and sets: the
-- claim costs what it visits and takes, whatever the backlog or the number of keys.
local keys_set, states = keyskey(queue), kstatekey(queue)
local picks = {}  -- the keys that can give jobs, in visiting order: {key, count, st, window, used}
local waited = {}  -- reason -> true: a key its own limits capped keeps pending jobs
local visited, last, retry_at = 0, nil, nil
local most = limit + extra
-- No key of the queue has a hold or a rate window yet: no visit needs to look for one.
local any_state = redis.call('EXISTS', states) == 1

local function visit(key)
  visited = visited + 1
  last = key
  local st = {}
  if any_state then st = parse_key_state(redis.call('HGET', states, key)) end
  local running = 0
  if flow.global then running = redis.call('ZCARD', krkey(queue, key)) end
  local count, retry, window, used, reason = allow(flow, st, limit, running, now, lag_ms)
  if retry ~= '' and (retry_at == nil or tonumber(retry) < tonumber(retry_at)) then
    retry_at = retry
  end
  if count > 0 then
    local available = redis.call('ZCARD', kpkey(queue, key))
    if available == 0 then
      redis.call('ZREM', keys_set, key)  -- a key left without jobs (cannot happen)
    else
      picks[#picks + 1] = {key = key, count = math.min(count, available), st = st,
                           window = window, used = used, available = available,
                           reason = reason}
    end
  elseif reason and redis.call('EXISTS', kpkey(queue, key)) == 1 then
    waited[reason] = true  -- capped at nothing, with jobs waiting
  end
end

-- Visit the keys between `from` and `to` (ZRANGEBYLEX bounds) until the claim has enough.
local function walk(from, to)
  while #picks < limit and visited < most do
    local want = math.min(most - visited, limit - #picks + 8)
    local batch = redis.call('ZRANGEBYLEX', keys_set, from, to, 'LIMIT', 0, want)
    for _, key in ipairs(batch) do
      if #picks >= limit or visited >= most then return end
      visit(key)
    end
    if #batch < want then return end
    from = '(' .. batch[#batch]
  end
end

if limit > 0 then
  local cursor = redis.call('HGET', CURSORS, queue)
  if cursor then
    walk('(' .. cursor, '+')
    walk('-', '[' .. cursor)
  else
    walk('-', '+')
  end
  if last then redis.call('HSET', CURSORS, queue, last) end
end

-- Take turns (taskward.limits.take_turns) on the counts alone, so each key's set is popped
-- once, for exactly what it gives.
local gives, taken, turn = {}, 0, 0
for i = 1, #picks do gives[i] = 0 end
local more = true
while more and taken < limit do
  more = false
  turn = turn + 1
  for i, pick in ipairs(picks) do
    if taken >= limit then break end
    if turn <= pick.count then
      gives[i] = gives[i] + 1
      taken = taken + 1
      more = true
    end
  end
end

-- A capped key that does not give all its pending jobs waits (before any job is claimed),
-- unless the claim got all it asked from the other keys: then nobody was turned away.
for i, pick in ipairs(picks) do
  if pick.reason and gives[i] < pick.available then waited[pick.reason] = true end
end
if taken < limit then
  for _, reason in ipairs(WAIT_REASONS) do
    if waited[reason] then note_wait(queue, reason) end
  end
end

local claimed, depth = {}, 0
for i, pick in ipairs(picks) do
  local jobs = {}
  local set = kpkey(queue, pick.key)
  claim_from(set, gives[i], jobs)
  if gives[i] >= pick.available then redis.call('ZREM', keys_set, pick.key) end  -- now empty
  claimed[i] = jobs
  depth = math.max(depth, #jobs)
  if pick.window and #jobs > 0 then  -- count the key's starts in its window
    pick.st.window, pick.st.used = pick.window, pick.used + #jobs
    redis.call('HSET', states, pick.key, key_state_text(pick.st))
  end
end

local out = {retry_at or ''}
for t = 1, depth do
  for i = 1, #picks do
    local job = claimed[i][t]
    if job then out[#out + 1] = job end
  end
end
return out
