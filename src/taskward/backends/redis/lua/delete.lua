-- Delete job ARGV[2] unless it is running: 1 deleted, 0 no such job, -1 running. A workflow
-- step that has not ended ends for its dependents (flows.lua) at ARGV[3] (ISO JSON ARGV[4]).
local id, now, at_json = ARGV[2], ARGV[3], ARGV[4]
local h = load(id)
if h == nil then return 0 end
if h.state == 'running' then return -1 end
if h.wf_id and not FINISHED[h.state] then
  local woken = {}
  step_ended(id, false, now, at_json, woken)
  publish(woken)
end
forget(id, h)
return 1
