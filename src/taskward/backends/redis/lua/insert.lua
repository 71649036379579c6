-- Insert jobs: ARGV[2] now, ARGV[3] count, then 15 fields per job (see codec.insert_args).
-- A unique clash answers {id, hash} of the existing job; a new job answers its id, or
-- "id:key" when its key was read here by its queue's partition rule (taskward.limits
-- .PartitionBy.key_of, `key_by_rule`): the rule is read in this script, so no job is stored
-- by a rule that another script has replaced (limits.lua re-keys the waiting jobs).
local now = ARGV[2]
local n = tonumber(ARGV[3])
local WIDTH = 15
local BLOCKING = {scheduled = true, pending = true, running = true, retryable = true,
                  completed = true}
must_be(SEQ, 'string')
must_be(UNIQUE, 'hash')
must_be(QUEUES, 'set')
-- Each job's key: the producer's ('=' and the key), else its queue's rule's, else none.
local keys, by_rule = {}, {}
local checked, checked_keys = {}, {}  -- jobs of a bulk insert share sets: check each once
for i = 0, n - 1 do
  local a = 4 + i * WIDTH
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
-- The hashes the new jobs will take (ids are handed out in order; a duplicate takes none).
local next_id = tonumber(redis.call('GET', SEQ) or '0')
for i = 1, n do
  local key = jkey(string.format('%d', next_id + i))
  if redis.call('EXISTS', key) == 1 then
    error('WRONGTYPE the key ' .. key .. ' exists already, not written by this insert')
  end
end
local known_queues = {}
local out = {}
local woken = {}
for i = 0, n - 1 do
  local a = 4 + i * WIDTH
  local ukey, uwin = ARGV[a + 8], ARGV[a + 9]
  local dup = nil
  if ukey ~= '' then
    local old = redis.call('HGET', UNIQUE, ukey)
    if old then
      local state, inserted = unpack(redis.call('HMGET', jkey(old), 'state', 'inserted_at'))
      if state then
        if uwin == '' then
          dup = old
        elseif BLOCKING[state] and tonumber(inserted) >= tonumber(now) - tonumber(uwin) then
          dup = old
        end
      end
    end
  end
  if dup then
    out[#out + 1] = {dup, redis.call('HGETALL', jkey(dup))}
  else
    local id = string.format('%d', redis.call('INCR', SEQ))
    local h = {id = id, task = ARGV[a], queue = ARGV[a + 1], state = ARGV[a + 4],
               priority = ARGV[a + 5], scheduled_at = ARGV[a + 7], inserted_at = now}
    local fields = {'id', id, 'task', h.task, 'queue', h.queue, 'args', ARGV[a + 2],
                    'kwargs', ARGV[a + 3], 'state', h.state, 'priority', h.priority,
                    'attempt', '0', 'max_attempts', ARGV[a + 6], 'scheduled_at', h.scheduled_at,
                    'inserted_at', now}
    local optional = {unique_key = ukey, tags = ARGV[a + 10], meta = ARGV[a + 11],
                      depends_on = ARGV[a + 12], timeout = ARGV[a + 13]}
    for name, value in pairs(optional) do
      if value ~= '' then
        fields[#fields + 1] = name
        fields[#fields + 1] = value
      end
    end
    local key = keys[i]
    if key ~= nil then  -- '' is a key too (the rule's argument is missing or null)
      h.partition_key = key
      fields[#fields + 1] = 'partition_key'
      fields[#fields + 1] = key
    end
    redis.call('HSET', jkey(id), unpack(fields))
    index(id, h)
    if not known_queues[h.queue] then
      redis.call('SADD', QUEUES, h.queue)
      known_queues[h.queue] = true
    end
    if ukey ~= '' then redis.call('HSET', UNIQUE, ukey, id) end
    if h.state == 'pending' then woken[h.queue] = true end
    if by_rule[i] then out[#out + 1] = id .. ':' .. key else out[#out + 1] = id end
  end
end
for queue in pairs(woken) do redis.call('PUBLISH', WAKE, queue) end
return out
