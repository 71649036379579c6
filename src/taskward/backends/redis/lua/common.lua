-- Prepended to every script when it is loaded: key names and the moves between job sets.
-- ARGV[1] is the store's base ("{prefix}"); KEYS[1] only routes the call to the store's slot.
-- Times are integer microseconds since the epoch, kept as the strings the caller sent
-- (Lua's own number-to-string conversion would round them to 14 digits).
local B = ARGV[1]
local SEQ = B .. ':seq'
local RUNNING = B .. ':running'
local QUEUES = B .. ':queues'
local PAUSED = B .. ':paused'
local UNIQUE = B .. ':unique'
local WAKE = B .. ':wake'
local LIMITS = B .. ':limits'
local FLOW = B .. ':flow'
local FINISHED = {completed = true, failed = true, discarded = true, cancelled = true}
local WAITING = {scheduled = true, pending = true, retryable = true}
local STATES = {'scheduled', 'pending', 'running', 'retryable',
                'completed', 'failed', 'discarded', 'cancelled'}

local function jkey(id) return B .. ':job:' .. id end
local function ixkey(queue, state) return B .. ':ix:' .. queue .. ':' .. state end
local function txkey(task, state) return B .. ':tx:' .. task .. ':' .. state end
local function laterkey(queue) return B .. ':later:' .. queue end
local function pkey(queue) return B .. ':pending:' .. queue end
local function donekey(state) return B .. ':done:' .. state end

-- Order of pending jobs within one priority (the score): scheduled time, then id.
local function pmember(sched, id)
  return string.format('%016d%016d', math.max(tonumber(sched), 0), tonumber(id))
end

local function finished_at(h)
  return h.completed_at or h.cancelled_at or h.discarded_at or h.inserted_at
end

-- A job's hash as a Lua table (field -> string); nil if there is no such job.
local function load(id)
  local flat = redis.call('HGETALL', jkey(id))
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- Refuse a key of another type than a script is about to write, before its first write: a
-- script that fails halfway keeps what it wrote (a job hash without its index entries).
local function must_be(key, kind)
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= kind then
    error('WRONGTYPE the key ' .. key .. ' is a ' .. found .. ', not a ' .. kind)
  end
end

-- The sets a job in state `state` is kept in, checked with must_be.
local function check_sets(queue, task, state)
  must_be(ixkey(queue, state), 'zset')
  must_be(txkey(task, state), 'zset')
  if state == 'pending' then must_be(pkey(queue), 'zset')
  elseif state == 'scheduled' or state == 'retryable' then must_be(laterkey(queue), 'zset')
  elseif state == 'running' then must_be(RUNNING, 'zset')
  elseif FINISHED[state] then must_be(donekey(state), 'zset') end
end

-- Only the named fields of a job's hash (the hot paths skip its args and result).
local function load_fields(id, names)
  local values = redis.call('HMGET', jkey(id), unpack(names))
  if not values[1] then return nil end
  local h = {}
  for i, name in ipairs(names) do
    if values[i] then h[name] = values[i] end
  end
  return h
end

-- Take a job out of the sets of its current state.
local function unindex(id, h)
  local state = h.state
  redis.call('ZREM', ixkey(h.queue, state), id)
  redis.call('ZREM', txkey(h.task, state), id)
  if state == 'pending' then
    redis.call('ZREM', pkey(h.queue), pmember(h.scheduled_at, id))
  elseif state == 'scheduled' or state == 'retryable' then
    redis.call('ZREM', laterkey(h.queue), id)
  elseif state == 'running' then
    redis.call('ZREM', RUNNING, id)
  elseif FINISHED[state] then
    redis.call('ZREM', donekey(state), id)
  end
end

-- Put a job into the sets of the state its hash (h) now holds.
local function index(id, h)
  local state = h.state
  redis.call('ZADD', ixkey(h.queue, state), id, id)
  redis.call('ZADD', txkey(h.task, state), id, id)
  if state == 'pending' then
    redis.call('ZADD', pkey(h.queue), h.priority, pmember(h.scheduled_at, id))
  elseif state == 'scheduled' or state == 'retryable' then
    redis.call('ZADD', laterkey(h.queue), h.scheduled_at, id)
  elseif state == 'running' then
    redis.call('ZADD', RUNNING, h.lease_until, id)
  elseif FINISHED[state] then
    redis.call('ZADD', donekey(state), finished_at(h), id)
  end
end

-- Append one error record (JSON text) to a job's errors (a JSON array).
local function with_error(errors, record)
  if errors == nil or errors == '[]' then return '[' .. record .. ']' end
  return string.sub(errors, 1, -2) .. ',' .. record .. ']'
end

-- Forget a job entirely (delete, prune).
local function forget(id, h)
  unindex(id, h)
  redis.call('DEL', jkey(id))
  if h.unique_key and redis.call('HGET', UNIQUE, h.unique_key) == id then
    redis.call('HDEL', UNIQUE, h.unique_key)
  end
end

-- A queue's stored limit or hold (B:limits, B:flow) as a number, refused unless it matches
-- `pattern`: a value written by something else fails the claim instead of lifting the limit.
local function flow_number(text, queue, what, pattern)
  if not string.match(text, pattern) then
    local key = what == 'limit' and LIMITS or FLOW
    error('the ' .. what .. ' of queue ' .. queue .. ' in ' .. key
          .. ' is not a whole number: ' .. text)
  end
  return tonumber(text)
end

-- A queue's rate limit as stored in B:flow ("count:period_ms"): count, period_ms.
local function parse_rate(text, queue)
  local count, period = string.match(text, '^(%d+):(%d+)$')
  if count == nil or tonumber(count) < 1 or tonumber(period) < 1 then
    error('the rate of queue ' .. queue .. ' in ' .. FLOW
          .. ' is not count:period_ms: ' .. text)
  end
  return tonumber(count), tonumber(period)
end

-- A queue's rate window as stored in B:flow ("window:used"): window index, starts in it.
local function parse_window(text, queue)
  local window, used = string.match(text, '^(%-?%d+):(%d+)$')
  if window == nil then
    error('the rate window of queue ' .. queue .. ' in ' .. FLOW
          .. ' is not window:used: ' .. text)
  end
  return tonumber(window), tonumber(used)
end
