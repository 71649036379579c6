-- Runs that ended in the health check's windows, one page of one final state's finish-time set
-- (B:done:<state>, ARGV[2]): its jobs that ended at or after ARGV[3] (µs), from rank ARGV[5]
-- of that range, at most ARGV[6] of them. Each job's queue and task are read here (one HMGET
-- each, on the server: a page costs one round trip, not one per job) and counted per (queue,
-- task): the reply is the number of jobs read, then queue, task, runs, runs at or after
-- ARGV[4] (the short window), for each pair. The caller asks for the next page while a page
-- comes back full, so no call holds the server for long. Read-only.
local key = donekey(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', key, ARGV[3], '+inf', 'WITHSCORES', 'LIMIT',
  tonumber(ARGV[5]), tonumber(ARGV[6]))
local recent = tonumber(ARGV[4])
local counts = {}
local order = {}
for i = 1, #ids, 2 do
  local h = redis.call('HMGET', jkey(ids[i]), 'queue', 'task')
  if h[1] and h[2] then  -- a job pruned meanwhile has no hash left
    local pair = h[1] .. '\0' .. h[2]
    local c = counts[pair]
    if not c then
      c = {h[1], h[2], 0, 0}
      counts[pair] = c
      order[#order + 1] = pair
    end
    c[3] = c[3] + 1
    if tonumber(ids[i + 1]) >= recent then c[4] = c[4] + 1 end
  end
end
local out = {#ids / 2}
for _, pair in ipairs(order) do
  local c = counts[pair]
  out[#out + 1] = c[1]
  out[#out + 1] = c[2]
  out[#out + 1] = c[3]
  out[#out + 1] = c[4]
end
return out
