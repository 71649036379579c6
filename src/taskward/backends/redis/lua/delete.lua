-- Delete job ARGV[2] unless it is running: 1 deleted, 0 no such job, -1 running.
local id = ARGV[2]
local h = load(id)
if h == nil then return 0 end
if h.state == 'running' then return -1 end
forget(id, h)
return 1
