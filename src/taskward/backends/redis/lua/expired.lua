-- The running jobs whose lease expired before ARGV[2], lowest ids first, at most ARGV[3].
local ids = redis.call('ZRANGEBYSCORE', RUNNING, '-inf', '(' .. ARGV[2])
table.sort(ids, function(x, y) return tonumber(x) < tonumber(y) end)
local out = {}
for i = 1, math.min(#ids, tonumber(ARGV[3])) do
  out[#out + 1] = redis.call('HGETALL', jkey(ids[i]))
end
return out
