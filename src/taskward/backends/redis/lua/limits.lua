-- Store queue ARGV[2]'s limits in its B:limits field (see parse_flow): ARGV[3] its global
-- limit, ARGV[4] its rate limit as "count:period_ms", ARGV[5] its partition rule
-- (str(PartitionBy)); '' clears that limit. Its hold is left alone (a stored value that cannot
-- be read is replaced whole). Answers 1, and publishes the queue, when a limit was raised or
-- cleared or the rule changed: a worker held back by the old one may claim now (lowering one
-- wakes nobody). A script: the old value is read and compared in the step that writes the new
-- one, and a new or changed rule re-keys the queue's jobs in that same step, so no insert
-- stores a job by the old rule after it (insert.lua reads the rule in its own script).
local queue, global, rate, rule = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local stored = redis.call('HGET', LIMITS, queue)  -- fails first on a foreign B:limits
local old = nil
if stored then old = parse_flow(stored) end
local flow = {}
if old then flow.held = old.held end
if global ~= '' then flow.global = tonumber(global) end
if rate ~= '' then
  local count, period = string.match(rate, '^(%d+):(%d+)$')
  flow.count, flow.period = tonumber(count), tonumber(period)
  -- The starts counted in the current window still count under the new rate.
  if old and old.window then flow.window, flow.used = old.window, old.used end
end
if rule ~= '' then flow.rule = rule end
local old_rule = old and old.rule or nil
local CHUNK = 1000  -- job ids read per range of an index (bounds the script's memory)

-- Every job id of `queue` in `state`, chunk by chunk, to `each` (the index does not change
-- meanwhile: `each` moves jobs between pending sets and keys, never between states).
local function each_job(state, each)
  local set = ixkey(queue, state)
  local start = 0
  while true do
    local ids = redis.call('ZRANGE', set, start, start + CHUNK - 1)
    for _, id in ipairs(ids) do each(id) end
    if #ids < CHUNK then return end
    start = start + CHUNK
  end
end

-- Move the queue's pending jobs to the sets of the new rule (per key) or, with none, back to
-- B:pending:<queue>. With a rule, every job of the queue gets its key by that rule: waiting
-- ones, running ones (a retry brings them back to pending, where the claim sees only jobs with
-- a key, and they count against their key's global limit meanwhile) and finished ones (an
-- operator's retry brings them back), as taskward.backends.memory does. One pass over the
-- queue's jobs, in this one script: no insert or claim sees the queue half re-keyed.
local function repartition(new_rule)
  local keys_set = keyskey(queue)
  must_be(pkey(queue), 'zset')
  must_be(keys_set, 'zset')
  if old_rule then
    local start = 0
    while true do
      local keys = redis.call('ZRANGE', keys_set, start, start + CHUNK - 1)
      for _, key in ipairs(keys) do redis.call('DEL', kpkey(queue, key)) end
      if #keys < CHUNK then break end
      start = start + CHUNK
    end
    redis.call('DEL', keys_set)
  end
  redis.call('DEL', pkey(queue))
  for _, state in ipairs(STATES) do
    if new_rule or state == 'pending' then
      each_job(state, function(id)
        local key = jkey(id)
        local args, kwargs, priority, sched, old = unpack(redis.call(
          'HMGET', key, 'args', 'kwargs', 'priority', 'scheduled_at', 'partition_key'))
        if not new_rule then  -- pending, the rule cleared: back to the queue's own set
          redis.call('ZADD', pkey(queue), priority, pmember(sched, id))
          return
        end
        local pk = key_by_rule(new_rule, args or '[]', kwargs or '{}')
        redis.call('HSET', key, 'partition_key', pk)
        if state == 'pending' then
          redis.call('ZADD', kpkey(queue, pk), priority, pmember(sched, id))
          redis.call('ZADD', keys_set, 0, pk)
        elseif state == 'running' then
          if old then redis.call('ZREM', krkey(queue, old), id) end
          redis.call('ZADD', krkey(queue, pk), id, id)
        end
      end)
    end
  end
  rules[queue] = new_rule or false
end

if flow.rule ~= old_rule then repartition(flow.rule) end
local text = flow_text(flow)
if text then
  redis.call('HSET', LIMITS, queue, text)
else
  redis.call('HDEL', LIMITS, queue)
end
if flow.global == nil and flow.count == nil and not flow.rule then
  drop_waits(queue)  -- counted since the limits were set: cleared, they are gone (a hold stays)
end
local raised = flow.rule ~= old_rule
if stored and not old then
  raised = true  -- an unreadable value was replaced
elseif old then
  -- A larger count or another period (a new window index: an empty window) allows more.
  raised = raised or (old.global ~= nil and (flow.global == nil or flow.global > old.global))
    or (old.count ~= nil and (flow.count == nil or flow.count > old.count
                              or flow.period ~= old.period))
end
if raised then redis.call('PUBLISH', WAKE, queue) end
return raised and 1 or 0
