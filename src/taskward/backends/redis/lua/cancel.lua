-- Cancel job ARGV[2] at ARGV[3] (ISO text ARGV[4]) for reason ARGV[5] (a JSON string): a
-- waiting job is cancelled, a running one flagged; a workflow step's end reaches its
-- dependents (flows.lua). Answers the job's hash ({} if none).
local id, now, at_json, reason = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local h = load(id)
if h == nil then return {} end
local key = jkey(id)
if WAITING[h.state] then
  unindex(id, h)
  local record = '{"attempt":' .. h.attempt .. ',"at":' .. at_json ..
    ',"kind":"Cancelled","message":' .. reason .. ',"traceback":null}'
  h.state = 'cancelled'
  h.cancelled_at = now
  redis.call('HSET', key, 'state', 'cancelled', 'cancelled_at', now,
             'errors', with_error(h.errors, record))
  index(id, h)
  if h.wf_id then
    local woken = {}
    step_ended(id, 'cancelled', now, at_json, woken)
    publish(woken)
  end
elseif h.state == 'running' then
  redis.call('HSET', key, 'cancel_requested', '1')
end
return redis.call('HGETALL', key)
