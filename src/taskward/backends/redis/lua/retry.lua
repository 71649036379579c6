-- Make failed, discarded or cancelled job ARGV[2] pending again at ARGV[3], with at least one
-- attempt left. Other states are unchanged. A workflow step goes back to blocked while a
-- dependency holds it back, and its dependents cancelled by its end wait again (flows.lua).
-- Answers the job's hash ({} if none).
local id, now = ARGV[2], ARGV[3]
local h = load(id)
if h == nil then return {} end
local key = jkey(id)
if h.state == 'failed' or h.state == 'discarded' or h.state == 'cancelled' then
  unindex(id, h)
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
