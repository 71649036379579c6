-- Write outcomes for worker ARGV[2]: ARGV[3] count, then 10 fields per outcome (see
-- codec.finish_args): the last is '' or, for a workflow step others wait for (JobUpdate
-- .dependents), its time as ISO JSON text, and an end then releases or cancels its dependents
-- (flows.lua); other outcomes never look them up. Each is written only if the job is still running at that attempt,
-- leased to this worker (and, for a rescue, with its lease expired): 1 written, 0 refused.
local worker = ARGV[2]
local n = tonumber(ARGV[3])
local WIDTH = 10
local FIELDS = {'state', 'attempt', 'attempted_by', 'lease_until', 'queue', 'task', 'priority',
                'scheduled_at', 'errors', 'partition_key'}
-- First every fence and every key the writes will touch, then the writes: a foreign key
-- refuses the whole batch before anything of it is written.
local fenced = {}
local seen = {}
-- Queue -> whether it has a global limit (B:limits: a value that starts with its digits, see
-- parse_flow), read here before any write (a foreign B:limits fails the read): a job leaving
-- `running` there frees a slot, so the queue is published and a worker held back by the limit
-- on another node claims at once. A rate limit or a hold alone gains nothing from a finish.
local limited = {}
for i = 0, n - 1 do
  local a = 4 + i * WIDTH
  local id, attempt, expired_before = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local h = load_fields(id, FIELDS)
  local ok = h ~= nil and not seen[id] and h.state == 'running' and h.attempt == attempt
    and h.attempted_by == worker
  if ok and expired_before ~= '' then
    ok = h.lease_until ~= nil and tonumber(h.lease_until) < tonumber(expired_before)
  end
  if ok then
    seen[id] = true  -- the same job twice in one batch: only its first outcome is written
    check_sets(h.queue, h.task, 'running')
    check_sets(h.queue, h.task, ARGV[a + 3])
    check_key_sets(h.queue, 'running', h.partition_key)
    check_key_sets(h.queue, ARGV[a + 3], h.partition_key)
    fenced[i] = h
    if limited[h.queue] == nil then
      local stored = redis.call('HGET', LIMITS, h.queue)
      limited[h.queue] = stored ~= false and string.match(stored, '^%d') ~= nil
    end
  end
end
local out = {}
-- Queues to publish on the wake channel, once each: a job became pending there, or a job
-- left `running` in a queue with a global limit (see `limited`).
local woken = {}
for i = 0, n - 1 do
  local a = 4 + i * WIDTH
  local id = ARGV[a]
  local state, refund, sched, err, result, at, dependents =
    ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local h = fenced[i]
  if h then
    unindex(id, h)
    local key = jkey(id)
    h.state = state
    local fields = {'state', state}
    if refund == '1' then
      fields[#fields + 1] = 'attempt'
      fields[#fields + 1] = tostring(tonumber(h.attempt) - 1)
    end
    if sched ~= '' then
      h.scheduled_at = sched
      fields[#fields + 1] = 'scheduled_at'
      fields[#fields + 1] = sched
    end
    if err ~= '' then
      fields[#fields + 1] = 'errors'
      fields[#fields + 1] = with_error(h.errors, err)
    end
    if state == 'completed' then
      fields[#fields + 1] = 'result'
      fields[#fields + 1] = result
    end
    if state == 'completed' or state == 'failed' then
      h.completed_at = at
      fields[#fields + 1] = 'completed_at'
      fields[#fields + 1] = at
    elseif state == 'cancelled' then
      h.cancelled_at = at
      fields[#fields + 1] = 'cancelled_at'
      fields[#fields + 1] = at
    elseif state == 'discarded' then
      h.discarded_at = at
      fields[#fields + 1] = 'discarded_at'
      fields[#fields + 1] = at
    end
    redis.call('HSET', key, unpack(fields))
    redis.call('HDEL', key, 'lease_until', 'cancel_requested')
    index(id, h)
    if state == 'pending' or limited[h.queue] then woken[h.queue] = true end
    if dependents ~= '' and FINISHED[state] then step_ended(id, state, at, dependents, woken) end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for queue in pairs(woken) do redis.call('PUBLISH', WAKE, queue) end
return out
