-- Insert workflow ARGV[2] (its id, taken from B:wseq by the caller) at ARGV[3]: name ARGV[4]
-- ('=' and the name, or '' for none), ARGV[5] step count, then per step the 15 fields of
-- codec.insert_args and 5 of its own: name, label (repr of the name), on_failure, finalizer
-- ('1' or ''), its dependencies as 0-based indexes of earlier steps, comma-separated. All the
-- steps or none; no unique key is honoured (as by the memory store). Answers each step's id,
-- or "id:key" when its key was read here by its queue's partition rule (as insert.lua).
local wid, now, name = ARGV[2], ARGV[3], ARGV[4]
local n = tonumber(ARGV[5])
local WIDTH = 20
must_be(SEQ, 'string')
must_be(QUEUES, 'set')
if redis.call('EXISTS', wkey(wid)) == 1 or redis.call('EXISTS', wstepskey(wid)) == 1 then
  error('WRONGTYPE the key ' .. wkey(wid) .. ' exists already, not written by this insert')
end
local keys, by_rule = {}, {}
local checked = {}
for i = 0, n - 1 do
  local a = 6 + i * WIDTH
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
  local sets = queue .. '\0' .. ARGV[a] .. '\0' .. state .. '\0' .. (key or '')
  if not checked[sets] then
    check_sets(queue, ARGV[a], state)
    check_key_sets(queue, state, key)
    checked[sets] = true
  end
end
local next_id = tonumber(redis.call('GET', SEQ) or '0')
for i = 1, n do
  local key = jkey(string.format('%d', next_id + i))
  if redis.call('EXISTS', key) == 1 then
    error('WRONGTYPE the key ' .. key .. ' exists already, not written by this insert')
  end
end
local ids = {}
local out = {}
local children = {}
local known_queues = {}
local woken = {}
for i = 0, n - 1 do
  local a = 6 + i * WIDTH
  local id = string.format('%d', redis.call('INCR', SEQ))
  ids[i] = id
  local deps = {}
  for index in string.gmatch(ARGV[a + 19], '%d+') do
    local dep = ids[tonumber(index)]
    deps[#deps + 1] = dep
    local list = children[dep]
    if list == nil then
      list = {}
      children[dep] = list
    end
    list[#list + 1] = id
  end
  local h = {id = id, task = ARGV[a], queue = ARGV[a + 1], state = ARGV[a + 4],
             priority = ARGV[a + 5], scheduled_at = ARGV[a + 7], inserted_at = now}
  local fields = {'id', id, 'task', h.task, 'queue', h.queue, 'args', ARGV[a + 2],
                  'kwargs', ARGV[a + 3], 'state', h.state, 'priority', h.priority,
                  'attempt', '0', 'max_attempts', ARGV[a + 6], 'scheduled_at', h.scheduled_at,
                  'inserted_at', now, 'wf_id', wid, 'wf_name', ARGV[a + 15],
                  'wf_label', ARGV[a + 16], 'wf_on_failure', ARGV[a + 17],
                  'wf_waiting', string.format('%d', #deps)}
  local optional = {unique_key = ARGV[a + 8], tags = ARGV[a + 10], meta = ARGV[a + 11],
                    timeout = ARGV[a + 13], wf_finalizer = ARGV[a + 18]}
  if #deps > 0 then optional.depends_on = '[' .. table.concat(deps, ',') .. ']' end
  for field, value in pairs(optional) do
    if value ~= '' then
      fields[#fields + 1] = field
      fields[#fields + 1] = value
    end
  end
  local key = keys[i]
  if key ~= nil then
    h.partition_key = key
    fields[#fields + 1] = 'partition_key'
    fields[#fields + 1] = key
  end
  redis.call('HSET', jkey(id), unpack(fields))
  index(id, h)
  redis.call('ZADD', wstepskey(wid), id, id)
  if not known_queues[h.queue] then
    redis.call('SADD', QUEUES, h.queue)
    known_queues[h.queue] = true
  end
  if h.state == 'pending' then woken[h.queue] = true end
  if by_rule[i] then out[#out + 1] = id .. ':' .. key else out[#out + 1] = id end
end
for parent, list in pairs(children) do
  redis.call('HSET', jkey(parent), 'wf_children', table.concat(list, ','))
end
local fields = {'inserted_at', now}
if name ~= '' then
  fields[3] = 'name'
  fields[4] = string.sub(name, 2)
end
redis.call('HSET', wkey(wid), unpack(fields))
publish(woken)
return out
