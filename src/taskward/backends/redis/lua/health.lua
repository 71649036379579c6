-- The health check's queue figures (taskward.health.figures): a flat list of, per queue with
-- due or running jobs, queue, backlog, earliest due time (µs, '' without a backlog), running,
-- stuck, the stuck ids (longest running first, at most ARGV[5], comma-separated).
-- ARGV[2] now, ARGV[3] the grace cutoff (a lease or timeout that ended before it is overdue),
-- ARGV[4] the started cutoff (a job without a timeout started before it is stuck), in µs.
-- Read-only. Cost: per queue 10 probes of its pending set (one per priority; the same per key
-- of a partitioned queue, the first MAX_KEYS keys), one of its later set, and one HMGET per
-- running job: O(queues + running jobs), never a read of every waiting job.
local now = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local started = tonumber(ARGV[4])
local shown = tonumber(ARGV[5])
local MAX_KEYS = 1000
local out = {}

-- The earliest scheduled time among a pending set's members (score = priority, member = 16
-- digits of scheduled time + 16 of id): the first member of each priority.
local function earliest(set, best)
  for priority = 0, 9 do
    local first = redis.call('ZRANGEBYSCORE', set, priority, priority, 'LIMIT', 0, 1)
    if #first > 0 then
      local sched = tonumber(string.sub(first[1], 1, 16))
      if best == nil or sched < best then best = sched end
    end
  end
  return best
end

local function is_stuck(h)
  local lease = tonumber(h[3] or '')
  if lease and lease < grace then return true end
  local attempted = tonumber(h[1] or '')
  if not attempted then return false end
  local timeout = tonumber(h[2] or '')
  if timeout then return attempted + timeout * 1000000 < grace end
  return attempted < started
end

for _, queue in ipairs(redis.call('SMEMBERS', QUEUES)) do
  local backlog = redis.call('ZCARD', ixkey(queue, 'pending'))
  local oldest = nil
  if backlog > 0 then
    oldest = earliest(pkey(queue), nil)
    for _, key in ipairs(redis.call('ZRANGE', keyskey(queue), 0, MAX_KEYS - 1)) do
      oldest = earliest(kpkey(queue, key), oldest)
    end
  end
  local due = redis.call('ZCOUNT', laterkey(queue), '-inf', ARGV[2])
  if due > 0 then
    backlog = backlog + due
    local first = redis.call('ZRANGEBYSCORE', laterkey(queue), '-inf', ARGV[2], 'WITHSCORES',
      'LIMIT', 0, 1)
    local sched = tonumber(first[2])
    if oldest == nil or sched < oldest then oldest = sched end
  end
  local running = redis.call('ZRANGE', ixkey(queue, 'running'), 0, -1)
  local stuck = {}
  for _, id in ipairs(running) do
    local h = redis.call('HMGET', jkey(id), 'attempted_at', 'timeout', 'lease_until')
    if is_stuck(h) then stuck[#stuck + 1] = {tonumber(h[1] or '') or 0, tonumber(id)} end
  end
  if backlog > 0 or #running > 0 then
    table.sort(stuck, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
    local ids = {}
    for i = 1, math.min(#stuck, shown) do ids[i] = string.format('%d', stuck[i][2]) end
    out[#out + 1] = queue
    out[#out + 1] = backlog
    out[#out + 1] = oldest and string.format('%d', oldest) or ''
    out[#out + 1] = #running
    out[#out + 1] = #stuck
    out[#out + 1] = table.concat(ids, ',')
  end
end
return out
