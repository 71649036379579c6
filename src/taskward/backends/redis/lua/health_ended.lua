-- Runs that ended in the health check's windows, one page of one final state's finish-time set
-- (B:done:<state>, ARGV[2]): its jobs that ended at or after ARGV[3] (µs), from rank ARGV[5]
-- of that range, at most ARGV[6] of them. Each job's queue and task are read here (one HMGET
-- each, on the server: a page costs one round trip, not one per job) and counted per (queue,
-- task): the reply is the number of jobs read, then queue, task, runs, runs at or after
-- ARGV[4] (the short window), run-time buckets, for each pair. The caller asks for the next
-- page while a page comes back full, so no call holds the server for long. Read-only.
-- Run times (taskward.health.run_times), when ARGV[7] is '1' (the completed set): a job's
-- finish time (its score) minus its attempted_at, in µs, counted in log-scale buckets
-- floor(ln(us) / ln(ARGV[8])) (-1 under 1 µs), as text "bucket:count,..." (else '').
local key = donekey(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', key, ARGV[3], '+inf', 'WITHSCORES', 'LIMIT',
  tonumber(ARGV[5]), tonumber(ARGV[6]))
local recent = tonumber(ARGV[4])
local timed = ARGV[7] == '1'
local log, floor = math.log, math.floor  -- locals: a global lookup per job is measurable
local log_ratio = log(tonumber(ARGV[8]))
local counts = {}
local order = {}
for i = 1, #ids, 2 do
  local h = redis.call('HMGET', jkey(ids[i]), 'queue', 'task', 'attempted_at')
  if h[1] and h[2] then  -- a job pruned meanwhile has no hash left
    local pair = h[1] .. '\0' .. h[2]
    local c = counts[pair]
    if not c then
      c = {h[1], h[2], 0, 0, {}}
      counts[pair] = c
      order[#order + 1] = pair
    end
    local ended = tonumber(ids[i + 1])
    c[3] = c[3] + 1
    if ended >= recent then c[4] = c[4] + 1 end
    if timed and h[3] then
      local us = ended - tonumber(h[3])
      local bucket = -1
      if us >= 1 then bucket = floor(log(us) / log_ratio) end
      c[5][bucket] = (c[5][bucket] or 0) + 1
    end
  end
end
local out = {#ids / 2}
for _, pair in ipairs(order) do
  local c = counts[pair]
  out[#out + 1] = c[1]
  out[#out + 1] = c[2]
  out[#out + 1] = c[3]
  out[#out + 1] = c[4]
  local buckets = {}
  for bucket, n in pairs(c[5]) do buckets[#buckets + 1] = bucket .. ':' .. n end
  out[#out + 1] = table.concat(buckets, ',')
end
return out
