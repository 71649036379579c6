-- Cancel workflow ARGV[2] at ARGV[3] (ISO JSON ARGV[4]) for reason ARGV[5] (a JSON string):
-- every waiting step but the finalizers is cancelled (an end its dependents see), a running
-- one flagged. Answers the workflow as read_workflow does ({} if there is none).
local wid, now, at_json, reason = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', wkey(wid)) == 0 then return {} end
local woken = {}
for _, id in ipairs(redis.call('ZRANGE', wstepskey(wid), 0, -1)) do
  local h = load_fields(id, STEP_FIELDS)
  if h and h.wf_finalizer ~= '1' then
    if WAITING[h.state] then
      cancel_waiting(id, h, now, at_json, 'Cancelled', reason, false)
      step_ended(id, 'cancelled', now, at_json, woken)
    elseif h.state == 'running' then
      redis.call('HSET', jkey(id), 'cancel_requested', '1')
    end
  end
end
publish(woken)
return read_workflow(wid)
