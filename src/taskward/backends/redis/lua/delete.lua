-- Delete job ARGV[2] unless it is running: 1 deleted, 0 no such job, -1 running, -2 in none
-- of the states ARGV[5] lists (",failed,discarded,"; empty: any state). A workflow step that
-- has not ended ends for its dependents (flows.lua) at ARGV[3] (ISO JSON ARGV[4]).
local id, now, at_json, states = ARGV[2], ARGV[3], ARGV[4], ARGV[5] or ''
local h = load(id)
if h == nil then return 0 end
if h.state == 'running' then return -1 end
if states ~= '' and not string.find(states, ',' .. h.state .. ',', 1, true) then return -2 end
if h.wf_id and not FINISHED[h.state] then
  local woken = {}
  step_ended(id, false, now, at_json, woken)
  publish(woken)
end
forget(id, h)
return 1
