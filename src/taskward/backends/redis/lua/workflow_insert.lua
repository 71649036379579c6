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
local keys, by_rule = insert_keys(6, WIDTH, n)
check_new_ids(n)
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
  local more = {unique_key = ARGV[a + 8], tags = ARGV[a + 10], meta = ARGV[a + 11],
                timeout = ARGV[a + 13], wf_id = wid, wf_name = ARGV[a + 15],
                wf_label = ARGV[a + 16], wf_on_failure = ARGV[a + 17],
                wf_waiting = string.format('%d', #deps), wf_finalizer = ARGV[a + 18]}
  if #deps > 0 then more.depends_on = '[' .. table.concat(deps, ',') .. ']' end
  local h = store_new_job(a, id, now, keys[i], more)
  redis.call('ZADD', wstepskey(wid), id, id)
  if not known_queues[h.queue] then
    redis.call('SADD', QUEUES, h.queue)
    known_queues[h.queue] = true
  end
  if h.state == 'pending' then woken[h.queue] = true end
  if by_rule[i] then out[#out + 1] = id .. ':' .. keys[i] else out[#out + 1] = id end
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
