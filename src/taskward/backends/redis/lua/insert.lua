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
local keys, by_rule = insert_keys(4, WIDTH, n)
check_new_ids(n)
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
    local h = store_new_job(a, id, now, keys[i], {
      unique_key = ukey, tags = ARGV[a + 10], meta = ARGV[a + 11], depends_on = ARGV[a + 12],
      timeout = ARGV[a + 13],
    })
    if not known_queues[h.queue] then
      redis.call('SADD', QUEUES, h.queue)
      known_queues[h.queue] = true
    end
    if ukey ~= '' then redis.call('HSET', UNIQUE, ukey, id) end
    if h.state == 'pending' then woken[h.queue] = true end
    if by_rule[i] then out[#out + 1] = id .. ':' .. keys[i] else out[#out + 1] = id end
  end
end
for queue in pairs(woken) do redis.call('PUBLISH', WAKE, queue) end
return out
