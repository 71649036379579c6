-- Store progress ARGV[4] (JSON) of job ARGV[2] if worker ARGV[3] still runs it: 1, else 0.
local key = jkey(ARGV[2])
local state, by = unpack(redis.call('HMGET', key, 'state', 'attempted_by'))
if state ~= 'running' or by ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'progress', ARGV[4])
return 1
