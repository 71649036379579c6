-- Move up to ARGV[3] scheduled and retryable jobs due at ARGV[2] to pending; answer how many.
-- Due times are kept per queue (B:later:<queue>): one range query per queue.
local now, batch = ARGV[2], tonumber(ARGV[3])
local woken = {}
local moved = 0
for _, queue in ipairs(redis.call('SMEMBERS', QUEUES)) do
  if moved >= batch then break end
  local key = laterkey(queue)
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, batch - moved)
  for _, id in ipairs(due) do
    local h = load(id)
    if h == nil or not (h.state == 'scheduled' or h.state == 'retryable') then
      redis.call('ZREM', key, id)  -- cannot happen while every move goes through index()
    else
      check_sets(h.queue, h.task, 'pending')
      check_key_sets(h.queue, 'pending', h.partition_key)
      unindex(id, h)
      h.state = 'pending'
      redis.call('HSET', jkey(id), 'state', 'pending')
      index(id, h)
      woken[h.queue] = true
      moved = moved + 1
    end
  end
end
for queue in pairs(woken) do redis.call('PUBLISH', WAKE, queue) end
return moved
