-- Make failed, discarded or cancelled job ARGV[2] pending again at ARGV[3], with at least one
-- attempt left. Other states are unchanged. A workflow step goes back to blocked while a
-- dependency holds it back, and its dependents cancelled by its end wait again (flows.lua).
-- Answers the job's hash ({} if none).
--
-- With an operator's edit (ARGV[4] = '1'; taskward.edits, codec.edit_args), in this same
-- script: ARGV[5] the meta the client read ('=' .. text, '' when absent) and ARGV[6] the meta
-- to store (the client appended the replay record to it): the script answers {'conflict'},
-- writing nothing, when the stored meta changed since (another replay), and the client reads
-- again. ARGV[7]/ARGV[8] the new args/kwargs JSON ('' keeps them), ARGV[9] the new queue and
-- ARGV[10] the new priority ('' keeps them), ARGV[11] '1' when the partition key follows the
-- new arguments or queue, ARGV[12] the producer's key ('=' .. key, '' for none): else the
-- rule of the new queue reads it (key_by_rule), else the job keeps its key.
local id, now = ARGV[2], ARGV[3]
local h = load(id)
if h == nil then return {} end
local key = jkey(id)
if h.state == 'failed' or h.state == 'discarded' or h.state == 'cancelled' then
  local edit = ARGV[4] == '1'
  local queue, pk = h.queue, h.partition_key
  if edit then
    if (h.meta and ('=' .. h.meta) or '') ~= ARGV[5] then return {'conflict'} end
    if ARGV[9] ~= '' then queue = ARGV[9] end
    if ARGV[11] == '1' then
      if ARGV[12] ~= '' then
        pk = string.sub(ARGV[12], 2)
      else
        local rule = rule_of(queue)
        if rule then
          local args = ARGV[7] ~= '' and ARGV[7] or (h.args or '[]')
          local kwargs = ARGV[8] ~= '' and ARGV[8] or (h.kwargs or '{}')
          pk = key_by_rule(rule, args, kwargs)
        end
      end
    end
    -- Refused before the first write: a script that fails halfway keeps what it wrote.
    check_sets(queue, h.task, 'pending')
    check_sets(queue, h.task, 'blocked')
    check_key_sets(queue, 'pending', pk)
    must_be(QUEUES, 'set')
  end
  unindex(id, h)
  if edit then
    local fields = {'meta', ARGV[6], 'queue', queue}
    if ARGV[7] ~= '' then fields[#fields + 1] = 'args'; fields[#fields + 1] = ARGV[7] end
    if ARGV[8] ~= '' then fields[#fields + 1] = 'kwargs'; fields[#fields + 1] = ARGV[8] end
    if ARGV[10] ~= '' then
      h.priority = ARGV[10]
      fields[#fields + 1] = 'priority'; fields[#fields + 1] = ARGV[10]
    end
    if pk ~= nil then fields[#fields + 1] = 'partition_key'; fields[#fields + 1] = pk end
    redis.call('HSET', key, unpack(fields))
    redis.call('SADD', QUEUES, queue)
    h.queue, h.partition_key, h.meta = queue, pk, ARGV[6]
  end
  local max_attempts = math.max(tonumber(h.max_attempts), tonumber(h.attempt) + 1)
  local state = 'pending'
  if h.wf_id then state = retried_state(id, h, state) end
  h.state = state
  h.scheduled_at = now
  redis.call('HSET', key, 'state', state, 'scheduled_at', now,
             'max_attempts', string.format('%d', max_attempts))
  redis.call('HDEL', key, 'completed_at', 'cancelled_at', 'discarded_at', 'cancel_requested')
  index(id, h)
  if h.wf_id then step_retried(id) end
  if state == 'pending' then redis.call('PUBLISH', WAKE, h.queue) end
end
return redis.call('HGETALL', key)
