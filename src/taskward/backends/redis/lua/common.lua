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
-- Outcome watches (watches.py): B:watch:<id> exists while some process waits for job <id>'s
-- outcome; an end of such a job is published on B:ends (its id). One EXISTS per ended job.
local ENDS = B .. ':ends'
local function notice_end(id)
  if redis.call('EXISTS', B .. ':watch:' .. id) == 1 then redis.call('PUBLISH', ENDS, id) end
end
local LIMITS = B .. ':limits'
-- How often a limit turned a claim away while its queue had due jobs left (QueueFlow.waits):
-- field "<queue>|<reason>" (taskward.limits.WAIT_REASONS) -> count, dropped with the queue's
-- B:limits field. Written only by claims a limit capped.
local WAITS = B .. ':waits'
local WAIT_REASONS = {'held', 'global_limit', 'rate_limit'}
local FINISHED = {completed = true, failed = true, discarded = true, cancelled = true}
local WAITING = {blocked = true, scheduled = true, pending = true, retryable = true}
local STATES = {'blocked', 'scheduled', 'pending', 'running', 'retryable',
                'completed', 'failed', 'discarded', 'cancelled'}

local function jkey(id) return B .. ':job:' .. id end
local function ixkey(queue, state) return B .. ':ix:' .. queue .. ':' .. state end
local function txkey(task, state) return B .. ':tx:' .. task .. ':' .. state end
local function laterkey(queue) return B .. ':later:' .. queue end
local function pkey(queue) return B .. ':pending:' .. queue end
local function donekey(state) return B .. ':done:' .. state end
-- Workflows (taskward.graph; flows.lua has the rules): B:wseq the last workflow id, B:workflow:<id>
-- its hash (name, inserted_at), B:wsteps:<id> its steps' job ids (score = id: insert order).
-- A step's own fields live in its job hash, prefixed wf_ (see flows.lua).
local WSEQ = B .. ':wseq'
local function wkey(wid) return B .. ':workflow:' .. wid end
local function wstepskey(wid) return B .. ':wsteps:' .. wid end

-- Partitioned queues (see docs/DESIGN.md). Key text may hold any byte, so it comes last in a
-- key's name, after the queue's name prefixed by its length: no (queue, key) pair spells the
-- name of another. Every name starts with B, so one store stays in one Redis Cluster slot.
local CURSORS = B .. ':cursors'  -- queue -> the last key the previous claim visited
local function qpart(queue) return string.format('%d', #queue) .. ':' .. queue end
-- The keys of a queue that have pending jobs (score 0: ordered by key, walked by ZRANGEBYLEX).
local function keyskey(queue) return B .. ':pkeys:' .. qpart(queue) end
-- One key's pending jobs, scored and ordered as B:pending:<queue>.
local function kpkey(queue, key) return B .. ':kpending:' .. qpart(queue) .. ':' .. key end
-- One key's running jobs (score = id): its global limit counts them, partition_flow lists them.
local function krkey(queue, key) return B .. ':krunning:' .. qpart(queue) .. ':' .. key end
-- Key -> its hold and rate window ("held_until_us|window:used", a part empty when unset).
local function kstatekey(queue) return B .. ':kstate:' .. qpart(queue) end

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

-- B:limits: queue -> its limits, hold and rate window in one field, so a claim reads them
-- with the one HGET a global limit alone cost: "G" (a global limit alone, as before rate
-- limits) or "G|count:period_ms|held_until_us|window:used" with "|rule" appended when the
-- queue is partitioned (str(PartitionBy): "kwarg:tenant", "arg:0"), a part left empty when
-- unset. As a table: global, count, period, held (the text, exact), window, used, rule; nil if
-- malformed.
local function parse_flow(text)
  if not string.find(text, '|', 1, true) then  -- the common case first: a global limit alone
    if not string.match(text, '^%d+$') then return nil end
    return {global = tonumber(text)}
  end
  local global, rate, held, win, rule =
    string.match(text, '^(%d*)|([^|]*)|([^|]*)|([^|]*)|?([^|]*)$')
  if global == nil then return nil end
  local f = {}
  if global ~= '' then f.global = tonumber(global) end
  if rate ~= '' then
    local count, period = string.match(rate, '^(%d+):(%d+)$')
    if count == nil or tonumber(count) < 1 or tonumber(period) < 1 then return nil end
    f.count, f.period = tonumber(count), tonumber(period)
  end
  if held ~= '' then
    if not string.match(held, '^%-?%d+$') then return nil end
    f.held = held
  end
  if win ~= '' then
    local window, used = string.match(win, '^(%-?%d+):(%d+)$')
    if window == nil then return nil end
    f.window, f.used = tonumber(window), tonumber(used)
  end
  if rule ~= '' then
    if not (string.match(rule, '^kwarg:[%a_][%w_]*$') or string.match(rule, '^arg:%d+$')) then
      return nil
    end
    f.rule = rule
  end
  return f
end

-- The text of a parsed flow (see parse_flow); nil when nothing is left to store.
local function flow_text(f)
  local global = f.global and string.format('%d', f.global) or ''
  if not (f.count or f.held or f.rule) then
    if global == '' then return nil end
    return global  -- a global limit alone keeps the layout older versions read
  end
  local rate, win = '', ''
  if f.count then
    rate = string.format('%d:%d', f.count, f.period)
    if f.window then win = string.format('%d:%d', f.window, f.used) end
  end
  local text = global .. '|' .. rate .. '|' .. (f.held or '') .. '|' .. win
  if f.rule then return text .. '|' .. f.rule end
  return text
end

-- One key's hold and rate window (B:kstate:<queue>) as a table: held (text), window, used.
local function parse_key_state(text)
  local st = {}
  if not text then return st end
  local held, window, used = string.match(text, '^(%-?%d*)|(%-?%d*):?(%d*)$')
  if held and held ~= '' then st.held = held end
  if window and window ~= '' and used ~= '' then
    st.window, st.used = tonumber(window), tonumber(used)
  end
  return st
end

-- The text of a key's state; nil when it holds nothing (the field is then deleted).
local function key_state_text(st)
  if not (st.held or st.window) then return nil end
  local win = st.window and string.format('%d:%d', st.window, st.used) or ''
  return (st.held or '') .. '|' .. win
end

-- How many of `wanted` jobs a claim at `now` may take: taskward.limits.allowance, for the
-- limits of `limits` (global, count, period) and the hold and window of `st` (a queue's flow,
-- or one key's state), with `running` jobs of it. Answers the count, the time ('' or us) a
-- hold or a full window held it back until, (with a rate) the window of `now` and the starts
-- already counted in it, and the reason ('held', 'global_limit', 'rate_limit') that capped the
-- count below `wanted`, or nil. `lag_ms`: taskward.limits.CLOCK_LAG_TOLERATED.
local function allow(limits, st, wanted, running, now, lag_ms)
  if st.held and tonumber(now) < tonumber(st.held) then return 0, st.held, nil, nil, 'held' end
  local count = math.max(wanted, 0)
  local reason = nil
  if limits.global and limits.global - running < count then
    count = math.max(limits.global - running, 0)
    reason = 'global_limit'
  end
  if not limits.count then return count, '', nil, nil, reason end
  -- Fixed windows from the epoch: index = floor(ms / period). Exact: now is below 2^53 us,
  -- and so are the products below.
  local ms = math.floor(tonumber(now) / 1000)
  local window = math.floor(ms / limits.period)
  local stored = st.window
  if stored and window < stored and stored <= math.floor((ms + lag_ms) / limits.period) then
    -- A claim that waited behind one with a later clock waits for that window, rather than
    -- reset its count by counting in an older one.
    return 0, string.format('%d', stored * limits.period * 1000), nil, nil, 'rate_limit'
  end
  local used = stored == window and st.used or 0
  local left = math.max(limits.count - used, 0)
  if left < count then
    return left, string.format('%d', (window + 1) * limits.period * 1000), window, used,
      'rate_limit'
  end
  return count, '', window, used, reason
end

-- Count one claim of `queue` turned away for `reason` (see WAITS).
local function note_wait(queue, reason)
  redis.call('HINCRBY', WAITS, queue .. '|' .. reason, 1)
end

-- Forget the waits of `queue` (its B:limits field is gone).
local function drop_waits(queue)
  local fields = {}
  for i, reason in ipairs(WAIT_REASONS) do fields[i] = queue .. '|' .. reason end
  redis.call('HDEL', WAITS, unpack(fields))
end

-- == A job's partition key, read by its queue's rule from its stored arguments =============
-- taskward.limits.PartitionBy.key_of on the JSON text the store holds, exact for what
-- taskward writes (compact JSON, non-ASCII as is): a string value is its own text, null or a
-- missing value is '', any other value is its compact JSON with non-ASCII escaped (Python's
-- json.dumps), which is the stored text itself with those characters escaped.

-- Index just past the JSON string that opens at s[i] (a '"'); nil if it never closes.
local function json_string_end(s, i)
  local pos = i + 1
  while true do
    local j = string.find(s, '["\\]', pos)
    if j == nil then return nil end
    if string.byte(s, j) == 34 then return j + 1 end
    pos = j + 2  -- an escaped character
  end
end

-- Index just past the JSON value that opens at s[i]; nil if it never ends.
local function json_value_end(s, i)
  local c = string.byte(s, i)
  if c == 34 then return json_string_end(s, i) end
  if c ~= 91 and c ~= 123 then  -- a number, true, false or null
    return string.match(s, '^[^,%]}%s]*()', i)
  end
  local depth, pos = 0, i
  while true do
    local j = string.find(s, '[%[%]{}"]', pos)
    if j == nil then return nil end
    local b = string.byte(s, j)
    if b == 34 then
      pos = json_string_end(s, j)
      if pos == nil then return nil end
    else
      if b == 91 or b == 123 then depth = depth + 1 else depth = depth - 1 end
      pos = j + 1
      if depth == 0 then return pos end
    end
  end
end

local function json_space(s, i) return string.match(s, '^[ \t\r\n]*()', i) end

-- The JSON text of member `name` of the object `s`, or of element `index` (0-based) of the
-- array `s` (name nil); nil when absent, or when `s` is not that kind of value.
local function json_part(s, name, index)
  local pos = json_space(s, 1)
  if string.byte(s, pos) ~= (name and 123 or 91) then return nil end
  pos = json_space(s, pos + 1)
  local n = 0
  while pos <= #s do
    local found = true
    if name then
      local stop = json_string_end(s, pos)
      if string.byte(s, pos) ~= 34 or stop == nil then return nil end
      found = string.sub(s, pos + 1, stop - 2) == name
      pos = json_space(s, stop)
      if string.byte(s, pos) ~= 58 then return nil end  -- ':'
      pos = json_space(s, pos + 1)
    else
      found = n == index
    end
    local stop = json_value_end(s, pos)
    if stop == nil or stop == pos then return nil end
    if found then return string.sub(s, pos, stop - 1) end
    pos = json_space(s, stop)
    if string.byte(s, pos) ~= 44 then return nil end  -- ','
    pos = json_space(s, pos + 1)
    n = n + 1
  end
  return nil
end

-- One character that Python's ASCII-only JSON escapes (DEL, or a UTF-8 sequence) as \uXXXX
-- (astral characters as a surrogate pair), lower-case hex as Python writes them.
local function json_escape_char(c)
  local b = {string.byte(c, 1, -1)}
  local cp
  if #b == 1 then cp = b[1]
  elseif #b == 2 then cp = (b[1] % 32) * 64 + b[2] % 64
  elseif #b == 3 then cp = ((b[1] % 16) * 64 + b[2] % 64) * 64 + b[3] % 64
  else cp = (((b[1] % 8) * 64 + b[2] % 64) * 64 + b[3] % 64) * 64 + b[4] % 64 end
  if cp >= 65536 then
    cp = cp - 65536
    return string.format('\\u%04x\\u%04x', 55296 + math.floor(cp / 1024), 56320 + cp % 1024)
  end
  return string.format('\\u%04x', cp)
end

-- The key of a job whose queue has rule `rule`, from its stored args and kwargs (JSON text).
local function key_by_rule(rule, args, kwargs)
  local kind, name = string.match(rule, '^(%a+):(.*)$')
  local text
  if kind == 'kwarg' then text = json_part(kwargs, name)
  else text = json_part(args, nil, tonumber(name)) end
  if text == nil or text == 'null' then return '' end
  if string.byte(text, 1) == 34 then
    local ok, value = pcall(cjson.decode, text)
    if ok and type(value) == 'string' then return value end
  end
  return (string.gsub(text, '[\127-\244][\128-\191]*', json_escape_char))
end

-- == Routing: where a job of each state is kept ============================================

-- Queue -> its partition rule, or false: read once per script call (one HGET per queue).
local rules = {}
local function rule_of(queue)
  local rule = rules[queue]
  if rule == nil then
    local stored = redis.call('HGET', LIMITS, queue)
    local flow = stored and parse_flow(stored)
    rule = flow and flow.rule or false
    rules[queue] = rule
  end
  return rule
end

-- True when the pending job `h` is kept in its key's set: its queue is partitioned and the job
-- has a key (every job of a partitioned queue has one: insert.lua gives it, limits.lua gives
-- one to every job of the queue when the rule is set). A job without a key costs nothing here.
local function keyed(h)
  return h.partition_key ~= nil and rule_of(h.queue) ~= false
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

-- The sets of the job's key (`key`, or nil) in state `state`, checked with must_be (the
-- queue's set of keys once per script call).
local keys_checked = {}
local function check_key_sets(queue, state, key)
  if key == nil then return end
  if state == 'pending' and rule_of(queue) then
    must_be(kpkey(queue, key), 'zset')
    if not keys_checked[queue] then
      must_be(keyskey(queue), 'zset')
      keys_checked[queue] = true
    end
  elseif state == 'running' then
    must_be(krkey(queue, key), 'zset')
  end
end

-- Take a pending job out of its key's set (and the key out of the queue's keys when it has no
-- pending job left).
local function unkey_pending(queue, key, member)
  local set = kpkey(queue, key)
  redis.call('ZREM', set, member)
  if redis.call('EXISTS', set) == 0 then redis.call('ZREM', keyskey(queue), key) end
end

-- Take a job out of the sets of its current state.
local function unindex(id, h)
  local state = h.state
  redis.call('ZREM', ixkey(h.queue, state), id)
  redis.call('ZREM', txkey(h.task, state), id)
  if state == 'pending' then
    if keyed(h) then
      unkey_pending(h.queue, h.partition_key, pmember(h.scheduled_at, id))
    else
      redis.call('ZREM', pkey(h.queue), pmember(h.scheduled_at, id))
    end
  elseif state == 'scheduled' or state == 'retryable' then
    redis.call('ZREM', laterkey(h.queue), id)
  elseif state == 'running' then
    redis.call('ZREM', RUNNING, id)
    if h.partition_key then redis.call('ZREM', krkey(h.queue, h.partition_key), id) end
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
    if keyed(h) then
      redis.call('ZADD', kpkey(h.queue, h.partition_key), h.priority, pmember(h.scheduled_at, id))
      redis.call('ZADD', keyskey(h.queue), 0, h.partition_key)
    else
      redis.call('ZADD', pkey(h.queue), h.priority, pmember(h.scheduled_at, id))
    end
  elseif state == 'scheduled' or state == 'retryable' then
    redis.call('ZADD', laterkey(h.queue), h.scheduled_at, id)
  elseif state == 'running' then
    redis.call('ZADD', RUNNING, h.lease_until, id)
    if h.partition_key then redis.call('ZADD', krkey(h.queue, h.partition_key), id, id) end
  elseif FINISHED[state] then
    redis.call('ZADD', donekey(state), finished_at(h), id)
    notice_end(id)
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
  notice_end(id)
  redis.call('DEL', jkey(id))
  if h.wf_id then redis.call('ZREM', wstepskey(h.wf_id), id) end
  if h.unique_key and redis.call('HGET', UNIQUE, h.unique_key) == id then
    redis.call('HDEL', UNIQUE, h.unique_key)
  end
end

-- The jobs of an insert (insert.lua, workflow_insert.lua): n of them, job i's 15 fields
-- (codec.insert_args) at ARGV[first + i * width]. Each one's partition key: the producer's
-- ('=' and the key), else its queue's rule's (by_rule[i]: the answer says so), else none;
-- the sets each job will join are checked, once per kind, before anything is written.
local function insert_keys(first, width, n)
  local keys, by_rule = {}, {}
  local checked, checked_keys = {}, {}  -- jobs of one insert share sets: check each once
  for i = 0, n - 1 do
    local a = first + i * width
    local queue, state, given = ARGV[a + 1], ARGV[a + 4], ARGV[a + 14]
    local key = nil
    if given ~= '' then
      key = string.sub(given, 2)
    else
      local rule = rule_of(queue)
      if rule then
        key = key_by_rule(rule, ARGV[a + 2], ARGV[a + 3])
        by_rule[i] = true
      end
    end
    keys[i] = key
    local sets = queue .. '\0' .. ARGV[a] .. '\0' .. state
    if not checked[sets] then
      check_sets(queue, ARGV[a], state)
      checked[sets] = true
    end
    if key ~= nil then
      local key_sets = queue .. '\0' .. state .. '\0' .. key
      if not checked_keys[key_sets] then
        check_key_sets(queue, state, key)
        checked_keys[key_sets] = true
      end
    end
  end
  return keys, by_rule
end

-- Refuse an insert if a hash its next n jobs will take exists (ids come in order from SEQ).
local function check_new_ids(n)
  local next_id = tonumber(redis.call('GET', SEQ) or '0')
  for i = 1, n do
    local key = jkey(string.format('%d', next_id + i))
    if redis.call('EXISTS', key) == 1 then
      error('WRONGTYPE the key ' .. key .. ' exists already, not written by this insert')
    end
  end
end

-- Store new job `id` from its insert fields at ARGV[a] (see insert_keys), its partition
-- `key` (or nil) and `more` fields (name -> value; '' left out), and index it. Returns the
-- job as index() reads it.
local function store_new_job(a, id, now, key, more)
  local h = {id = id, task = ARGV[a], queue = ARGV[a + 1], state = ARGV[a + 4],
             priority = ARGV[a + 5], scheduled_at = ARGV[a + 7], inserted_at = now}
  local fields = {'id', id, 'task', h.task, 'queue', h.queue, 'args', ARGV[a + 2],
                  'kwargs', ARGV[a + 3], 'state', h.state, 'priority', h.priority,
                  'attempt', '0', 'max_attempts', ARGV[a + 6], 'scheduled_at', h.scheduled_at,
                  'inserted_at', now}
  for name, value in pairs(more) do
    if value ~= '' then
      fields[#fields + 1] = name
      fields[#fields + 1] = value
    end
  end
  if key ~= nil then  -- '' is a key too (the rule's argument is missing or null)
    h.partition_key = key
    fields[#fields + 1] = 'partition_key'
    fields[#fields + 1] = key
  end
  redis.call('HSET', jkey(id), unpack(fields))
  index(id, h)
  return h
end
