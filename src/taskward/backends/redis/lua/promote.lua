-- Move up to ARGV[3] scheduled and retryable jobs due at ARGV[2] to pending; answer how many.
local now, batch = ARGV[2], tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', LATER, '-inf', now, 'LIMIT', 0, batch)
local woken = {}
local moved = 0
for _, id in ipairs(due) do
  local h = load(id)
  if h == nil or not (h.state == 'scheduled' or h.state == 'retryable') then
    redis.call('ZREM', LATER, id)  -- cannot happen while every move goes through index()
  else
    unindex(id, h)
    h.state = 'pending'
    redis.call('HSET', jkey(id), 'state', 'pending')
    index(id, h)
    woken[h.queue] = true
    moved = moved + 1
  end
end
for queue in pairs(woken) do redis.call('PUBLISH', WAKE, queue) end
return moved
