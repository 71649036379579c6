-- Insert jobs: ARGV[2] now, ARGV[3] count, then 14 fields per job (see codec.insert_args).
-- A unique clash answers {id, hash} of the existing job; a new job answers its id.
local now = ARGV[2]
local n = tonumber(ARGV[3])
local WIDTH = 14
local BLOCKING = {scheduled = true, pending = true, running = true, retryable = true,
                  completed = true}
must_be(SEQ, 'string')
must_be(UNIQUE, 'hash')
must_be(QUEUES, 'set')
local checked = {}  -- jobs of a bulk insert share their sets: check each once
for i = 0, n - 1 do
  local a = 4 + i * WIDTH
  local sets = ARGV[a + 1] .. '\0' .. ARGV[a] .. '\0' .. ARGV[a + 4]
  if not checked[sets] then
    check_sets(ARGV[a + 1], ARGV[a], ARGV[a + 4])
    checked[sets] = true
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
    redis.call('HSET', jkey(id), unpack(fields))
    index(id, h)
    if not known_queues[h.queue] then
      redis.call('SADD', QUEUES, h.queue)
      known_queues[h.queue] = true
    end
    if ukey ~= '' then redis.call('HSET', UNIQUE, ukey, id) end
    if h.state == 'pending' then woken[h.queue] = true end
    out[#out + 1] = id
  end
end
for queue in pairs(woken) do redis.call('PUBLISH', WAKE, queue) end
return out
